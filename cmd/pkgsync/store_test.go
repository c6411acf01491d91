package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/store/webhdfstest"
)

// hdfsWithPackage starts a WebHDFS test server that wants user.name=pkg and holds v2 at
// /pkgs/pkg.tar, with its .torrent and .zsync made by `pkgsync make` from the store itself.
func hdfsWithPackage(t *testing.T, v2 []byte, makeArgs ...string) *webhdfstest.Server {
	t.Helper()
	t.Setenv("HADOOP_USER_NAME", "pkg")
	hdfs := webhdfstest.New(webhdfstest.Options{User: "pkg", BlockSize: 1 << 20})
	t.Cleanup(hdfs.Close)
	hdfs.Put("/pkgs/pkg.tar", v2, time.Now().Add(-time.Hour))
	mustPkgsync(t, append([]string{"make", hdfs.URL("/pkgs/pkg.tar")}, makeArgs...)...)
	for _, ext := range []string{".torrent", ".zsync"} {
		if _, ok := hdfs.Get("/pkgs/pkg.tar" + ext); !ok {
			t.Fatalf("make did not put pkg.tar%s beside the package", ext)
		}
	}
	return hdfs
}

// TestUpdateFromWebHDFS updates from a package in HDFS directly: the .torrent, the .zsync, the
// .sig and the missing ranges all come from the store, given as SOURCE (signed, with
// --trust-key), as a .zsync SOURCE (told by content, not by name) and as --url beside a local
// .torrent. --align took the block size. A second run of the same SOURCE finds OUT current by
// the torrent's identity in the store and reads no package byte.
func TestUpdateFromWebHDFS(t *testing.T) {
	v1 := randomBytes(1, 3<<20)
	v2 := edited(v1, 2, 10)
	key := keygen(t, t.TempDir(), "release")
	hdfs := hdfsWithPackage(t, v2, "--sign-key", key)
	tb, _ := hdfs.Get("/pkgs/pkg.tar.torrent")
	tor, err := manifest.ParseTorrent(tb)
	if err != nil {
		t.Fatal(err)
	}
	if (1<<20)%tor.Info.PieceLength != 0 {
		t.Fatalf("piece length %d does not divide the HDFS block size", tor.Info.PieceLength)
	}
	dir := t.TempDir()
	old := filepath.Join(dir, "v1.tar")
	writeFile(t, old, v1)
	localTorrent := filepath.Join(dir, "local.torrent")
	writeFile(t, localTorrent, tb)
	tests := []struct {
		name string
		args []string
	}{
		{"torrent", []string{"--no-swarm", "--trust-key", key + ".pub", hdfs.URL("/pkgs/pkg.tar.torrent")}},
		{"zsync", []string{hdfs.URL("/pkgs/pkg.tar.zsync")}},
		{"url", []string{"--no-swarm", "--zsync", hdfs.URL("/pkgs/pkg.tar.zsync"), "--url", hdfs.URL("/pkgs/pkg.tar"), localTorrent}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "pkg.tar")
			res := parseUpdateJSON(t, mustPkgsync(t, append([]string{"update", "--json", "--old", old, "-o", out}, tc.args...)...))
			sameFile(t, out, v2)
			missing := res.BytesTotal - res.BytesReused
			if res.BytesFromOrigin < missing || res.BytesFromOrigin > missing+missing/2 {
				t.Fatalf("origin sent %d bytes for %d missing", res.BytesFromOrigin, missing)
			}
			if tc.name != "torrent" {
				return
			}
			before, _ := hdfs.DataBytes()
			again := parseUpdateJSON(t, mustPkgsync(t, append([]string{"update", "--json", "--old", old, "-o", out}, tc.args...)...))
			after, _ := hdfs.DataBytes()
			if sig, _ := hdfs.Get("/pkgs/pkg.tar.sig"); !again.UpToDate || after-before != int64(len(sig)) {
				t.Fatalf("second run: up to date %v, the datanode sent %d bytes (the .sig is %d)", again.UpToDate, after-before, len(sig))
			}
		})
	}
}

// TestUpdateThroughServeStore updates through `serve` fronting HDFS: the node reaches plain HTTP
// and holds no HDFS user, the server makes the manifests on first request and puts them into
// the store.
func TestUpdateThroughServeStore(t *testing.T) {
	v1 := randomBytes(3, 2<<20)
	v2 := edited(v1, 4, 8)
	hdfs := webhdfstest.New(webhdfstest.Options{User: "pkg"})
	defer hdfs.Close()
	hdfs.Put("/pkgs/pkg.tar", v2, time.Now().Add(-time.Hour))
	t.Setenv("HADOOP_USER_NAME", "pkg") // serve's
	srv, err := newOrigin(t.Context(), hdfs.URL("/pkgs"), origin.Options{AutoMake: true}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	t.Setenv("HADOOP_USER_NAME", "") // the node has no store credentials
	dir := t.TempDir()
	old, out := filepath.Join(dir, "v1.tar"), filepath.Join(dir, "pkg.tar")
	writeFile(t, old, v1)
	res := parseUpdateJSON(t, mustPkgsync(t, "update", "--json", "--no-swarm", "--old", old, "-o", out, ts.URL+"/pkg.tar.torrent"))
	sameFile(t, out, v2)
	if missing := res.BytesTotal - res.BytesReused; res.BytesFromOrigin > missing+missing/2 {
		t.Fatalf("origin sent %d bytes for %d missing", res.BytesFromOrigin, missing)
	}
	if _, ok := hdfs.Get("/pkgs/pkg.tar.torrent"); !ok {
		t.Fatal("serve did not put the torrent it made into the store")
	}
}

// TestMakeFromWebHDFSEqualsLocal runs `pkgsync make` on the store and on a local copy (same name
// and modification time) into folders and compares the outputs. The torrents differ only in
// their creation date, which make takes from the clock: the info hash and the .zsync must agree.
func TestMakeFromWebHDFSEqualsLocal(t *testing.T) {
	v2 := randomBytes(5, 5<<20+99)
	t.Setenv("HADOOP_USER_NAME", "pkg")
	hdfs := webhdfstest.New(webhdfstest.Options{User: "pkg"})
	defer hdfs.Close()
	mtime := time.UnixMilli(1_700_000_000_500)
	hdfs.Put("/pkgs/pkg.tar", v2, mtime)
	dir := t.TempDir()
	local := filepath.Join(dir, "pkg.tar")
	writeFile(t, local, v2)
	if err := os.Chtimes(local, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	fromStore, fromLocal := t.TempDir(), t.TempDir()
	url := "--url=http://origin.example/pkgs/pkg.tar"
	mustPkgsync(t, "make", hdfs.URL("/pkgs/pkg.tar"), url, "--align=0", "-o", fromStore)
	mustPkgsync(t, "make", local, url, "-o", fromLocal)
	a, _ := os.ReadFile(filepath.Join(fromStore, "pkg.tar.zsync"))
	b, _ := os.ReadFile(filepath.Join(fromLocal, "pkg.tar.zsync"))
	if len(a) == 0 || string(a) != string(b) {
		t.Fatalf(".zsync from the store (%d bytes) differs from the local one (%d bytes)", len(a), len(b))
	}
	var hashes []string
	for _, d := range []string{fromStore, fromLocal} {
		raw, _ := os.ReadFile(filepath.Join(d, "pkg.tar.torrent"))
		tor, err := manifest.ParseTorrent(raw)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, tor.InfoHash.HexString())
	}
	if hashes[0] != hashes[1] {
		t.Fatalf("info hash from the store %s, locally %s", hashes[0], hashes[1])
	}
}

// TestMakeFromWebHDFSAligns checks that --align defaults to the file's HDFS block size: a piece
// size that would straddle a block is refused unless --align says otherwise.
func TestMakeFromWebHDFSAligns(t *testing.T) {
	t.Setenv("HADOOP_USER_NAME", "pkg")
	hdfs := webhdfstest.New(webhdfstest.Options{User: "pkg", BlockSize: 1 << 20})
	defer hdfs.Close()
	hdfs.Put("/pkgs/pkg.tar", randomBytes(9, 5<<20), time.Now())
	out := t.TempDir()
	code, _, errs := pkgsync(t, "make", hdfs.URL("/pkgs/pkg.tar"), "--piece-size", "2097152", "-o", out)
	if code == 0 || !strings.Contains(errs, "--align 1048576") {
		t.Fatalf("2 MiB pieces over 1 MiB blocks: exit %d, %s", code, errs)
	}
	mustPkgsync(t, "make", hdfs.URL("/pkgs/pkg.tar"), "--piece-size", "2097152", "--align", "0", "-o", out)
}

// TestSwarmFromWebHDFS runs four nodes, each on its own loopback address, updating at once
// from a package in HDFS: the store is the swarm's origin (the web seed of the pieces no peer
// has, asked last), and together the nodes take less than 1.5 times the bytes one node misses
// from it; every node ends with v2 exactly.
func TestSwarmFromWebHDFS(t *testing.T) {
	const nodes = 4
	v1 := randomBytes(7, 8<<20)
	v2 := versions.Edit(v1, 8, 12, 20_000, 60_000)
	announce := startTracker(t)
	hdfs := hdfsWithPackage(t, v2, "--tracker", announce)
	src := hdfs.URL("/pkgs/pkg.tar.torrent")
	madeBytes, madeOpens := hdfs.DataBytes() // make's read of the package
	fromOrigin, fromPeers, missing := storeSwarm(t, src, v1, v2, nodes)
	sent, opens := hdfs.DataBytes()
	t.Logf("missing per node %d; from the store %d (%.2fx), from peers %d; the datanode sent %d bytes in %d OPENs, .torrent and .zsync reads included",
		missing, fromOrigin, float64(fromOrigin)/float64(missing), fromPeers, sent-madeBytes, opens-madeOpens)
	if float64(fromOrigin) >= 1.5*float64(missing) {
		t.Fatalf("the store sent %d bytes for %d missing per node: not origin-once", fromOrigin, missing)
	}
	if !strings.HasPrefix(src, "webhdfs://") || fromPeers == 0 {
		t.Fatalf("no node got anything from a peer")
	}
}

// storeSwarm runs nodes updaters at once, each on its own loopback address and holding v1, from
// the package whose .torrent is at src (a store URL, so that the store is the swarm's origin). It
// checks that every node ends with v2 exactly, and returns the bytes all nodes took from the
// origin and from peers, and what one node missed.
func storeSwarm(t *testing.T, src string, v1, v2 []byte, nodes int) (fromOrigin, fromPeers, missing int64) {
	t.Helper()
	hosts := make([]string, nodes)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("127.0.0.%d", 2+i)
	}
	results := runNodesOn(t, src, v1, v2, hosts, 0) // 0: the default wait for the info from peers
	for _, r := range results {
		fromOrigin += r.BytesFromOrigin
		fromPeers += r.BytesFromPeers
	}
	return fromOrigin, fromPeers, results[0].BytesTotal - results[0].BytesReused
}

// TestMakePartFromWebHDFS runs make as a map-and-merge job on a package in a store: three
// --part runs read their stretches with ranged reads and write part files into -o, and --merge
// reads the package from the store again for the whole-file SHA-1. The .torrent and .zsync are
// those of a one-pass make of the same object, byte for byte. Without -o, both refuse at once:
// a part file has no place in the store's folder.
func TestMakePartFromWebHDFS(t *testing.T) {
	t.Setenv("HADOOP_USER_NAME", "pkg")
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	hdfs := webhdfstest.New(webhdfstest.Options{User: "pkg"})
	defer hdfs.Close()
	hdfs.Put("/pkgs/pkg.tar", randomBytes(11, 3<<20+12345), time.UnixMilli(1_700_000_000_500))
	src := hdfs.URL("/pkgs/pkg.tar")
	flags := []string{"--url=http://origin.example/pkgs/pkg.tar", "--piece-size=262144", "--align=0"}
	one, parts, merged := t.TempDir(), t.TempDir(), t.TempDir()
	mustPkgsync(t, append([]string{"make", src, "-o", one}, flags...)...)
	var files []string
	for i := range 3 {
		mustPkgsync(t, append([]string{"make", "--part", fmt.Sprintf("%d/3", i), src, "-o", parts}, flags...)...)
		files = append(files, filepath.Join(parts, fmt.Sprintf("pkg.tar.%d-of-3.mkpart", i)))
	}
	mustPkgsync(t, append(append([]string{"make", "--merge", "-o", merged}, files...), flags...)...)
	for _, name := range []string{"pkg.tar.torrent", "pkg.tar.zsync"} {
		a, errA := os.ReadFile(filepath.Join(one, name))
		b, errB := os.ReadFile(filepath.Join(merged, name))
		if errA != nil || errB != nil || len(a) == 0 || string(a) != string(b) {
			t.Fatalf("%s: one pass (%d bytes, %v) and merged parts (%d bytes, %v) differ", name, len(a), errA, len(b), errB)
		}
	}
	for _, args := range [][]string{
		{"make", "--part", "0/3", src},
		append([]string{"make", "--merge"}, files...),
	} {
		code, _, errs := pkgsync(t, args...)
		if code == 0 || !strings.Contains(errs, "give -o DIR") {
			t.Errorf("%q without -o: exit %d, %s", args, code, errs)
		}
	}
}
