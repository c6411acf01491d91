package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/internal/proclab"
	"github.com/pkgsync/pkgsync/internal/testtool"
	vgen "github.com/pkgsync/pkgsync/internal/versions"
)

// corpusDir returns the folder of real version pairs that testdata/corpus/fetch fills
// ($PKGSYNC_CORPUS, else ~/.cache/pkgsync-corpus), or skips the test (fails it under CI, whose
// .ci/run fetches the corpus first).
func corpusDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PKGSYNC_CORPUS")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "pkgsync-corpus")
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no corpus of real version pairs at %s: .ci/run must run testdata/corpus/fetch", dir)
		}
		t.Skipf("no corpus of real version pairs at %s: run testdata/corpus/fetch (needs npm, go, python3 and apt-get)", dir)
	}
	return dir
}

// zsyncUsedRE is the stock zsync client's last line: blocks reused from local files (whole
// blocks, the last one counted in full) and bytes it downloaded.
var zsyncUsedRE = regexp.MustCompile(`used (\d+) local, fetched (\d+)`)

// TestRealPairs is the delta's differential test, with the stock zsync client as the oracle: on
// every pair of consecutive releases of real software in the corpus (npm packs, Go module zips
// as tars, Debian data.tars and single files out of them), `pkgsync update --no-swarm` given
// the same .zsync (made by pkgsync make), old file and origin must reuse at least the blocks
// zsync reports as "used N local", fetch no more bytes than zsync fetched, and build the exact
// new version.
func TestRealPairs(t *testing.T) {
	zsyncBin := testtool.Need(t, "zsync")[0]
	corpus := corpusDir(t)
	ents, err := os.ReadDir(corpus)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, e := range ents {
		if fileExists(filepath.Join(corpus, e.Name(), "old")) && fileExists(filepath.Join(corpus, e.Name(), "new")) {
			pairs = append(pairs, e.Name())
		}
	}
	sort.Strings(pairs)
	// The default corpus is the one CI fetches, of 20 pairs and more; one given by
	// $PKGSYNC_CORPUS (the larger pairs, by hand) may be smaller.
	if want := 20; len(pairs) < want && os.Getenv("PKGSYNC_CORPUS") == "" || len(pairs) == 0 {
		t.Fatalf("%s holds %d version pairs, want at least %d: run testdata/corpus/fetch", corpus, len(pairs), want)
	}

	l := newLab(t)
	pub := l.Mkdir("pub")
	url, _ := l.serve("origin", pub)
	var table []string
	for _, name := range pairs {
		t.Run(name, func(t *testing.T) {
			old := filepath.Join(corpus, name, "old")
			want, err := os.ReadFile(filepath.Join(corpus, name, "new"))
			if err != nil {
				t.Fatal(err)
			}
			what, _ := os.ReadFile(filepath.Join(corpus, name, "what"))
			table = append(table, compareWithZsync(t, zsyncBin, url, pub, name, strings.TrimSpace(string(what)), old, want))
		})
	}
	t.Logf("\n%s\n%s", zsyncTableHead, strings.Join(table, "\n"))
}

// TestShapesAgainstZsync is TestRealPairs on the generated pairs that model what real releases
// do (internal/versions: content at several alignments, a version string that changes length in
// every file, members added, removed and reordered, runs of zeros and repeated records).
func TestShapesAgainstZsync(t *testing.T) {
	zsyncBin := testtool.Need(t, "zsync")[0]
	l := newLab(t)
	pub := l.Mkdir("pub")
	url, _ := l.serve("origin", pub)
	var table []string
	for _, sh := range vgen.Shapes {
		t.Run(sh.Name, func(t *testing.T) {
			v1, v2 := sh.Make(uint64(len(sh.Name)), 6<<20)
			old := l.Write(v1, sh.Name+".old")
			table = append(table, compareWithZsync(t, zsyncBin, url, pub, sh.Name, sh.What, old, v2))
		})
	}
	t.Logf("\n%s\n%s", zsyncTableHead, strings.Join(table, "\n"))
}

const zsyncTableHead = "| pair | what | new bytes | zsync used | pkgsync reused (whole blocks) | zsync fetched | pkgsync fetched |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |"

// compareWithZsync publishes want as pub/NAME.tar on the origin at url, makes its .zsync with
// pkgsync make, updates old to it with the stock zsync client and with pkgsync update
// --no-swarm, and checks that both build want and that pkgsync reuses at least the blocks zsync
// used and fetches no more than zsync fetched. It returns the pair's row of the table.
func compareWithZsync(t *testing.T, zsyncBin, url, pub, name, what, old string, want []byte) string {
	t.Helper()
	pl := newLab(t)
	pkg := filepath.Join(pub, name+".tar")
	if err := os.WriteFile(pkg, want, 0o644); err != nil {
		t.Fatal(err)
	}
	mk := pl.makeTorrent(pkg, "--url", url+name+".tar")
	zsyncURL := url + name + ".tar.zsync"

	// The stock client, in a folder of its own: it also reads an existing output file.
	zdir := pl.Mkdir("zsync")
	cmd := exec.CommandContext(pl.Ctx, zsyncBin, "-i", old, "-o", "out", zsyncURL)
	cmd.Dir = zdir
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stock zsync: %v\n%s", err, proclab.Tail(string(msg)))
	}
	m := zsyncUsedRE.FindStringSubmatch(string(msg))
	if m == nil {
		t.Fatalf("stock zsync printed no %q:\n%s", zsyncUsedRE, proclab.Tail(string(msg)))
	}
	zUsed, _ := strconv.ParseInt(m[1], 10, 64)
	zFetched, _ := strconv.ParseInt(m[2], 10, 64)
	if got, _ := os.ReadFile(filepath.Join(zdir, "out")); !bytes.Equal(got, want) {
		t.Fatal("stock zsync built a file different from the new version")
	}

	out := pl.Path("pkgsync", "out")
	p := pl.pkgsync("update", "update", "--no-swarm", "--json", "--old", old, "-o", out, zsyncURL)
	if err := p.Wait(pl.Ctx); err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal([]byte(p.Stdout.String()), &s); err != nil {
		t.Fatalf("update --json printed %q: %v", p.Stdout.String(), err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("pkgsync update built a file different from the new version")
	}
	// zsync counts whole blocks, the short last one in full; pkgsync counts bytes.
	bs := int64(mk.BlockSize)
	blocks := (s.BytesReused + bs - 1) / bs
	if blocks*bs < zUsed {
		t.Errorf("pkgsync reused %d blocks (%d bytes), stock zsync %d blocks (used %d local)", blocks, s.BytesReused, zUsed/bs, zUsed)
	}
	if s.BytesFromOrigin > zFetched {
		t.Errorf("pkgsync fetched %d bytes, stock zsync %d", s.BytesFromOrigin, zFetched)
	}
	return fmt.Sprintf("| %s | %s | %d | %d | %d | %d | %d |", name, what, len(want), zUsed, blocks*bs, zFetched, s.BytesFromOrigin)
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
