package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/seaweedtest"
	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/store"
)

// startS3 starts SeaweedFS with the bucket "pkgs" and points this process's AWS environment at
// it, so that s3:// URLs given to pkgsync reach it with the test's credentials.
func startS3(t *testing.T) *seaweedtest.Server {
	t.Helper()
	srv := seaweedtest.Start(t)
	srv.Setenv(t)
	srv.CreateBucket(t, "pkgs")
	return srv
}

// s3Object returns the bytes of s3://pkgs/KEY, or false when there is no such object.
func s3Object(t *testing.T, key string) ([]byte, bool) {
	t.Helper()
	st, k, err := store.Open(t.Context(), "s3://pkgs/"+key, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Stat(t.Context(), k)
	if err != nil {
		return nil, false
	}
	rc, err := st.ReadRange(t.Context(), k, 0, info.Size, info.ETag)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), true
}

// putS3 writes data to s3://pkgs/KEY and returns the object's modification time as S3 keeps it.
func putS3(t *testing.T, key string, data []byte) time.Time {
	t.Helper()
	st, k, err := store.Open(t.Context(), "s3://pkgs/"+key, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), k, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	info, err := st.Stat(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	return info.ModTime
}

// s3WithPackage puts v2 at s3://pkgs/rel/pkg.tar and makes its .torrent and .zsync with
// `pkgsync make` from the store itself, which puts them beside the package.
func s3WithPackage(t *testing.T, v2 []byte, makeArgs ...string) {
	t.Helper()
	putS3(t, "rel/pkg.tar", v2)
	mustPkgsync(t, append([]string{"make", "s3://pkgs/rel/pkg.tar"}, makeArgs...)...)
	for _, ext := range []string{".torrent", ".zsync"} {
		if _, ok := s3Object(t, "rel/pkg.tar"+ext); !ok {
			t.Fatalf("make did not put pkg.tar%s beside the package", ext)
		}
	}
}

// TestUpdateFromS3 updates from a package in S3 directly: the .torrent, the .zsync, the .sig and
// the missing ranges all come from the store, given as SOURCE (signed, with --trust-key), as a
// .zsync SOURCE and as --url beside a local .torrent. The origin sends the missing bytes about
// once, and a second run of the same SOURCE finds OUT current.
func TestUpdateFromS3(t *testing.T) {
	startS3(t)
	v1 := randomBytes(41, 3<<20)
	v2 := edited(v1, 42, 10)
	key := keygen(t, t.TempDir(), "release")
	s3WithPackage(t, v2, "--sign-key", key)
	tb, _ := s3Object(t, "rel/pkg.tar.torrent")
	dir := t.TempDir()
	old := filepath.Join(dir, "v1.tar")
	writeFile(t, old, v1)
	localTorrent := filepath.Join(dir, "local.torrent")
	writeFile(t, localTorrent, tb)
	tests := []struct {
		name string
		args []string
	}{
		{"torrent", []string{"--no-swarm", "--trust-key", key + ".pub", "s3://pkgs/rel/pkg.tar.torrent"}},
		{"zsync", []string{"s3://pkgs/rel/pkg.tar.zsync"}},
		{"url", []string{"--no-swarm", "--zsync", "s3://pkgs/rel/pkg.tar.zsync", "--url", "s3://pkgs/rel/pkg.tar", localTorrent}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "pkg.tar")
			args := append([]string{"update", "--json", "--old", old, "-o", out}, tc.args...)
			res := parseUpdateJSON(t, mustPkgsync(t, args...))
			sameFile(t, out, v2)
			missing := res.BytesTotal - res.BytesReused
			if res.BytesFromOrigin < missing || res.BytesFromOrigin > missing+missing/2 {
				t.Fatalf("origin sent %d bytes for %d missing", res.BytesFromOrigin, missing)
			}
			again := parseUpdateJSON(t, mustPkgsync(t, args...))
			if !again.UpToDate || again.BytesFromOrigin != 0 {
				t.Fatalf("second run: %+v, want up to date with nothing fetched", again)
			}
		})
	}
}

// TestUpdateThroughServeS3 runs `pkgsync serve s3://pkgs/rel` as a process of its own holding
// the store's credentials, and updates a node that has none over plain HTTP ranges. serve makes
// the manifests on first request and puts them into the bucket.
func TestUpdateThroughServeS3(t *testing.T) {
	s3srv := startS3(t)
	v1 := randomBytes(43, 2<<20)
	v2 := edited(v1, 44, 8)
	putS3(t, "rel/pkg.tar", v2)
	addr := freeLoopbackAddr(t)
	startPkgsync(t, "serve", "s3://pkgs/rel", "--listen", addr, "--cache-dir", t.TempDir())
	base := "http://" + addr + "/"
	waitFor(t, "serve s3://pkgs/rel to answer", func() bool {
		resp, err := http.Head(base + "pkg.tar")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// The node holds no store credentials: an s3:// request from it would fail.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	old, out := filepath.Join(dir, "v1.tar"), filepath.Join(dir, "pkg.tar")
	writeFile(t, old, v1)
	res := parseUpdateJSON(t, mustPkgsync(t, "update", "--json", "--no-swarm", "--old", old, "-o", out, base+"pkg.tar.torrent"))
	sameFile(t, out, v2)
	if missing := res.BytesTotal - res.BytesReused; res.BytesFromOrigin < missing || res.BytesFromOrigin > missing+missing/2 {
		t.Fatalf("origin sent %d bytes for %d missing", res.BytesFromOrigin, missing)
	}
	s3srv.Setenv(t) // the test's own credentials again, to look into the bucket
	for _, ext := range []string{".torrent", ".zsync"} {
		if _, ok := s3Object(t, "rel/pkg.tar"+ext); !ok {
			t.Errorf("serve did not put the pkg.tar%s it made into the bucket", ext)
		}
	}
}

// freeLoopbackAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestMakeFromS3EqualsLocal runs `pkgsync make` on the object and on a local copy with the same
// name and modification time, into folders, and compares the outputs: the .zsync byte for byte,
// the torrents by info hash (their creation date comes from the clock).
func TestMakeFromS3EqualsLocal(t *testing.T) {
	startS3(t)
	v2 := randomBytes(45, 5<<20+99)
	mtime := putS3(t, "rel/pkg.tar", v2)
	local := filepath.Join(t.TempDir(), "pkg.tar")
	writeFile(t, local, v2)
	if err := os.Chtimes(local, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	fromStore, fromLocal := t.TempDir(), t.TempDir()
	url := "--url=http://origin.example/rel/pkg.tar"
	mustPkgsync(t, "make", "s3://pkgs/rel/pkg.tar", url, "-o", fromStore)
	mustPkgsync(t, "make", local, url, "-o", fromLocal)
	a, _ := os.ReadFile(filepath.Join(fromStore, "pkg.tar.zsync"))
	b, _ := os.ReadFile(filepath.Join(fromLocal, "pkg.tar.zsync"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf(".zsync from S3 (%d bytes) differs from the local one (%d bytes)", len(a), len(b))
	}
	var hashes []string
	for _, d := range []string{fromStore, fromLocal} {
		raw, err := os.ReadFile(filepath.Join(d, "pkg.tar.torrent"))
		if err != nil {
			t.Fatal(err)
		}
		tor, err := manifest.ParseTorrent(raw)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, tor.InfoHash.HexString())
	}
	if hashes[0] != hashes[1] {
		t.Fatalf("info hash from S3 %s, locally %s", hashes[0], hashes[1])
	}
	if _, ok := s3Object(t, "rel/pkg.tar.torrent"); ok {
		t.Fatal("make -o also wrote into the bucket")
	}
}

// TestSwarmFromS3 runs four nodes, each on its own loopback address, updating at once from a
// package in S3: the store is the swarm's origin (asked last, for the pieces no peer has), and
// together the nodes take less than 1.5 times the bytes one node misses from it; every node ends
// with v2 exactly.
func TestSwarmFromS3(t *testing.T) {
	const nodes = 4
	startS3(t)
	v1 := randomBytes(47, 8<<20)
	v2 := versions.Edit(v1, 48, 12, 20_000, 60_000)
	announce := startTracker(t)
	s3WithPackage(t, v2, "--tracker", announce)
	fromOrigin, fromPeers, missing := storeSwarm(t, "s3://pkgs/rel/pkg.tar.torrent", v1, v2, nodes)
	t.Logf("missing per node %d; from S3 %d (%.2fx), from peers %d", missing, fromOrigin, float64(fromOrigin)/float64(missing), fromPeers)
	if float64(fromOrigin) >= 1.5*float64(missing) {
		t.Fatalf("S3 sent %d bytes for %d missing per node: not origin-once", fromOrigin, missing)
	}
	if fromPeers == 0 {
		t.Fatal("no node got anything from a peer")
	}
}
