package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/nginxtest"
	"github.com/pkgsync/pkgsync/internal/testtool"
	"github.com/pkgsync/pkgsync/origin"
)

// publish writes v2 as pkg.tar into a fresh origin folder and makes its manifests pointing at base.
func publish(t *testing.T, dir, base string, v2 []byte) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "pkg.tar"), v2)
	mustPkgsync(t, "make", filepath.Join(dir, "pkg.tar"), "--url", base+"pkg.tar")
}

func TestUpdateOverHTTP(t *testing.T) {
	v1 := randomBytes(10, 6<<20)
	v2 := edited(v1, 11, 12)
	servers := map[string]func(t *testing.T, dir string) string{
		"net/http": func(t *testing.T, dir string) string { u, _ := startOrigin(t, dir); return u },
		"nginx": func(t *testing.T, dir string) string {
			testtool.Need(t, "nginx")
			return nginxtest.Start(t, dir) + "/"
		},
	}
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			pub := t.TempDir()
			base := start(t, pub)
			publish(t, pub, base, v2)
			node := t.TempDir()
			old := filepath.Join(node, "v1.tar")
			writeFile(t, old, v1)
			out := filepath.Join(node, "pkg.tar")
			res := parseUpdateJSON(t, mustPkgsync(t, "update", "--no-swarm", "--json", "--old", old, "-o", out, base+"pkg.tar.torrent"))
			sameFile(t, out, v2)
			sameFile(t, old, v1)
			if res.BytesTotal != int64(len(v2)) || res.BytesReused+res.BytesFromOrigin < res.BytesTotal {
				t.Fatalf("accounting: %+v", res)
			}
			if res.BytesFromOrigin > int64(len(v2))/5 || res.BytesReused < int64(len(v2))*3/4 {
				t.Fatalf("fetched too much for 12 small edits: %+v", res)
			}
			if res.RequestsToOrigin == 0 || res.RequestsToOrigin > 20 {
				t.Fatalf("requests to origin: %d", res.RequestsToOrigin)
			}
			if _, err := os.Stat(out + ".part"); !os.IsNotExist(err) {
				t.Fatalf("%s.part left behind: %v", out, err)
			}
			// A second run finds OUT current and fetches nothing.
			again := parseUpdateJSON(t, mustPkgsync(t, "update", "--no-swarm", "--json", "--old", old, "-o", out, base+"pkg.tar.torrent"))
			if !again.UpToDate || again.BytesFromOrigin != 0 || again.RequestsToOrigin != 0 {
				t.Fatalf("second run: %+v", again)
			}
		})
	}
}

func TestUpdateOldIsOut(t *testing.T) {
	v1 := randomBytes(20, 3<<20)
	v2 := edited(v1, 21, 5)
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	node := t.TempDir()
	out := filepath.Join(node, "pkg.tar")
	writeFile(t, out, v1)
	held, err := os.Open(out) // a reader holding the old version must keep seeing it
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	mustPkgsync(t, "update", "--no-swarm", "--old", out, "-o", out, base+"pkg.tar.torrent")
	sameFile(t, out, v2)
	got := make([]byte, len(v1))
	if _, err := held.ReadAt(got, 0); err != nil || string(got) != string(v1) {
		t.Fatalf("the old version was modified in place (err %v)", err)
	}
}

func TestUpdateInteropStockZsync(t *testing.T) {
	tools := testtool.Need(t, "zsync", "zsyncmake")
	v1 := randomBytes(30, 2<<20+999)
	v2 := edited(v1, 31, 8)
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)

	t.Run("stock client reads our .zsync", func(t *testing.T) {
		node := t.TempDir()
		old := filepath.Join(node, "v1.tar")
		writeFile(t, old, v1)
		out := filepath.Join(node, "out.tar")
		// A client that cannot parse a reply re-requests forever: bound it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, tools[0], "-q", "-i", old, "-o", out, base+"pkg.tar.zsync")
		cmd.Dir = node
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zsync: %v\n%s", err, b)
		}
		sameFile(t, out, v2)
	})
	t.Run("we read zsyncmake's .zsync", func(t *testing.T) {
		ref := filepath.Join(pub, "ref.zsync")
		cmd := exec.Command(tools[1], "-u", base+"pkg.tar", "-o", ref, filepath.Join(pub, "pkg.tar"))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zsyncmake: %v\n%s", err, b)
		}
		node := t.TempDir()
		old := filepath.Join(node, "v1.tar")
		writeFile(t, old, v1)
		out := filepath.Join(node, "new.tar")
		res := parseUpdateJSON(t, mustPkgsync(t, "update", "--json", "--old", old, "-o", out, base+"ref.zsync"))
		sameFile(t, out, v2)
		if res.BytesReused == 0 {
			t.Fatalf("nothing reused: %+v", res)
		}
	})
}

func TestUpdateResumesFromPart(t *testing.T) {
	v2 := randomBytes(40, 4<<20)
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	node := t.TempDir()
	out := filepath.Join(node, "pkg.tar")
	// An interrupted run left the first half in place.
	part := make([]byte, len(v2))
	copy(part, v2[:len(v2)/2])
	writeFile(t, out+".part", part)
	res := parseUpdateJSON(t, mustPkgsync(t, "update", "--no-swarm", "--json", "-o", out, base+"pkg.tar.torrent"))
	sameFile(t, out, v2)
	if res.BytesFromOrigin > int64(len(v2))/2+int64(64<<10) {
		t.Fatalf("the part file was not reused: fetched %d of %d", res.BytesFromOrigin, len(v2))
	}
}

func TestUpdateBadInput(t *testing.T) {
	v1 := randomBytes(50, 1<<20)
	v2 := edited(v1, 51, 6)
	other := randomBytes(52, 1<<20+5)

	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	writeFile(t, filepath.Join(pub, "other.tar"), other)
	mustPkgsync(t, "make", filepath.Join(pub, "other.tar"), "--url", base+"other.tar")
	raw, _ := os.ReadFile(filepath.Join(pub, "pkg.tar.torrent"))
	writeFile(t, filepath.Join(pub, "corrupt.torrent"), raw[:len(raw)/2])
	zraw, _ := os.ReadFile(filepath.Join(pub, "pkg.tar.zsync"))
	writeFile(t, filepath.Join(pub, "truncated.zsync"), zraw[:len(zraw)-7])
	// A package whose data has vanished from the origin.
	writeFile(t, filepath.Join(pub, "gone.tar"), v2)
	mustPkgsync(t, "make", filepath.Join(pub, "gone.tar"), "--url", base+"gone.tar")
	os.Remove(filepath.Join(pub, "gone.tar"))

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"zsync of another package", []string{"--zsync", base + "other.tar.zsync", base + "pkg.tar.torrent"}, "does not belong"},
		{"corrupt torrent", []string{base + "corrupt.torrent"}, "not a valid .torrent"},
		{"truncated zsync", []string{base + "truncated.zsync"}, "truncated.zsync"},
		{"404 torrent", []string{base + "missing.torrent"}, "404"},
		{"origin lost the package", []string{base + "gone.tar.torrent"}, "404"},
		{"missing old", []string{"--old", "/nonexistent/v1.tar", base + "pkg.tar.torrent"}, "/nonexistent/v1.tar"},
		{"bad header flag", []string{"-H", "NoColon", base + "pkg.tar.torrent"}, "--header"},
		{"unreadable CA file", []string{"--ca-file", "/nonexistent/ca.pem", base + "pkg.tar.torrent"}, "/nonexistent/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := t.TempDir()
			old := filepath.Join(node, "v1.tar")
			writeFile(t, old, v1)
			out := filepath.Join(node, "out.tar")
			writeFile(t, out, []byte("earlier good output"))
			args := append([]string{"update", "--no-swarm", "--old", old, "-o", out}, tt.args...)
			code, _, errs := pkgsync(t, args...)
			if code == 0 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want failure mentioning %q", code, errs, tt.want)
			}
			sameFile(t, old, v1)
			sameFile(t, out, []byte("earlier good output"))
		})
	}
}

// TestUpdateOriginChangesMidway serves v2's manifests but switches the package to other content
// (new ETag) after the first range request: update must fail, not write a mix.
func TestUpdateOriginChangesMidway(t *testing.T) {
	v1 := randomBytes(60, 2<<20)
	v2 := edited(v1, 61, 30)
	pub := t.TempDir()
	var ranges atomic.Int64
	mux := http.NewServeMux()
	var base string
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Join(pub, filepath.Base(r.URL.Path))
		if r.URL.Path == "/pkg.tar" && r.Header.Get("Range") != "" && ranges.Add(1) > 1 {
			name = filepath.Join(pub, "v3.tar")
		}
		f, err := os.Open(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		st, _ := f.Stat()
		w.Header().Set("ETag", fmt.Sprintf(`"%s-%d"`, filepath.Base(name), st.Size()))
		http.ServeContent(w, r, "", st.ModTime(), f)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	base = ts.URL + "/"
	publish(t, pub, base, v2)
	v3 := append([]byte(nil), v2...)
	for i := 0; i < len(v3); i += 4096 {
		v3[i] ^= 0xff
	}
	writeFile(t, filepath.Join(pub, "v3.tar"), v3)
	node := t.TempDir()
	old := filepath.Join(node, "v1.tar")
	writeFile(t, old, v1)
	out := filepath.Join(node, "pkg.tar")
	code, _, errs := pkgsync(t, "update", "--no-swarm", "--parallel", "1", "--old", old, "-o", out, base+"pkg.tar.torrent")
	if code == 0 {
		t.Fatal("update succeeded although the origin changed the package mid-way")
	}
	if !strings.Contains(errs, "pkg.tar") {
		t.Fatalf("error does not name the URL: %q", errs)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("%s exists after a failed update", out)
	}
	sameFile(t, old, v1)
}

// TestUpdateDiskFull runs update into a 2 MiB tmpfs for a 4 MiB package: a clear error, nothing
// else touched.
func TestUpdateDiskFull(t *testing.T) {
	testtool.NeedRoot(t)
	v2 := randomBytes(70, 4<<20)
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	code, _, errs := pkgsync(t, "update", "--no-swarm", "-o", filepath.Join(mnt, "pkg.tar"), base+"pkg.tar.torrent")
	if code == 0 || !strings.Contains(errs, "no space left") {
		t.Fatalf("exit %d, stderr %q: want a no-space error", code, errs)
	}
	if _, err := os.Stat(filepath.Join(mnt, "pkg.tar")); !os.IsNotExist(err) {
		t.Fatal("output exists after a failed update")
	}
}

// TestUpdateWithoutOldSkipsZsync: a node with nothing to rebuild from verifies with the torrent's
// piece hashes alone and never asks the origin for the .zsync.
func TestUpdateWithoutOldSkipsZsync(t *testing.T) {
	v2 := randomBytes(100, 3<<20+17)
	pub := t.TempDir()
	var log lockedLog
	srv, err := origin.New(pub, origin.Options{AccessLog: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()
	publish(t, pub, ts.URL+"/", v2)
	out := filepath.Join(t.TempDir(), "pkg.tar")
	// Without a .zsync the whole-file SHA-1 verifies nothing. --no-swarm computes it with the
	// piece hashes from the same buffers; a swarm update only with --sha1 (after the rename).
	for _, tc := range []struct {
		args []string
		sha1 bool
	}{
		{[]string{"--no-swarm"}, true},
		{[]string{"--seed-time=0", "--sha1"}, true},
		{[]string{"--seed-time=0"}, false},
	} {
		os.Remove(out)
		args := append([]string{"update", "--listen", "127.0.0.1:0", "--json", "-o", out}, tc.args...)
		res := parseUpdateJSON(t, mustPkgsync(t, append(args, ts.URL+"/pkg.tar.torrent")...))
		sameFile(t, out, v2)
		if res.BytesFromOrigin != int64(len(v2)) {
			t.Fatalf("%v: fetched %d bytes from the origin, want %d", tc.args, res.BytesFromOrigin, len(v2))
		}
		want := ""
		if tc.sha1 {
			want = fmt.Sprintf("%x", sha1.Sum(v2))
		}
		if res.SHA1 != want {
			t.Fatalf("%v: sha1 %q, want %q", tc.args, res.SHA1, want)
		}
	}
	if strings.Contains(log.String(), ".zsync") {
		t.Fatalf("the .zsync was fetched by a node with no old data:\n%s", log.String())
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUpdateCatchesSpeculation: the scan takes a block that continues a run of matches on its
// weak sum alone. An old file whose block was changed without changing its weak sum (+1 -2 +1
// leaves both rolling sums as they are) fools it; the verification must catch that and the
// update still end with the right bytes: by a second scan with every block confirmed when the
// source is a .zsync (no piece hashes), by fetching the bad piece when it is a torrent.
func TestUpdateCatchesSpeculation(t *testing.T) {
	v2 := randomBytes(130, 2<<20+333)
	forged := bytes.Clone(v2)
	at := 40*4096 + 1000 // inside a block for block sizes 2048 and 4096
	forged[at]++
	forged[at+1] -= 2
	forged[at+2]++
	// A real change too, so that the first pass fetches something: the strict scan must not
	// fetch it again.
	copy(forged[1<<20:], randomBytes(131, 10000))
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	node := t.TempDir()
	old := filepath.Join(node, "v1.tar")
	writeFile(t, old, forged)
	tests := []struct {
		source string
		log    string // in the -v log
	}{
		{"pkg.tar.zsync", "scanning again, every block confirmed"},
		{"pkg.tar.torrent", "piece(s) failed their SHA-1"},
	}
	for _, tc := range tests {
		t.Run(tc.source, func(t *testing.T) {
			out := filepath.Join(node, "out-"+tc.source)
			code, stdout, stderr := pkgsync(t, "update", "--no-swarm", "-v", "--json", "--old", old, "-o", out, base+tc.source)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			sameFile(t, out, v2)
			sameFile(t, old, forged)
			if !strings.Contains(stderr, tc.log) {
				t.Fatalf("the log does not say %q:\n%s", tc.log, stderr)
			}
			res := parseUpdateJSON(t, stdout)
			if res.BytesFromOrigin == 0 || res.BytesFromOrigin > int64(len(v2))/4 {
				t.Fatalf("fetched %d bytes from the origin, want some (the forged block) and far from all", res.BytesFromOrigin)
			}
			// The changed blocks (5 of 2048 bytes) and the forged one, each fetched once, with a
			// block to spare and the framing of multipart answers.
			if want := int64(7*2048 + 2048); tc.source == "pkg.tar.zsync" && res.BytesFromOrigin > want {
				t.Errorf("fetched %d bytes from the origin, want at most %d: the strict scan fetched again what the first pass had", res.BytesFromOrigin, want)
			}
		})
	}
}
