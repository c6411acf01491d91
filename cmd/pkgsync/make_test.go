package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/internal/testtool"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// zsyncTable returns the block table of a .zsync file: everything after the blank line.
func zsyncTable(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("\n\n"))
	if i < 0 {
		t.Fatalf("%s: no end of header", path)
	}
	return b[i+2:]
}

func TestMakeMatchesStockTools(t *testing.T) {
	tools := testtool.Need(t, "zsyncmake", "transmission-show", "aria2c")
	for _, size := range []int{1, 2047, 2048, 3<<20 + 12345} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			dir := t.TempDir()
			pkg := filepath.Join(dir, "pkg.bin")
			writeFile(t, pkg, randomBytes(uint64(size), size))
			out := mustPkgsync(t, "make", pkg, "--url", "http://origin.invalid/pkg.bin", "--tracker", "http://tracker.invalid/announce", "--json")
			var res manifest.MakeResult
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("--json: %v: %q", err, out)
			}
			// zsyncmake with the same block size must write the same table, byte for byte.
			ref := filepath.Join(dir, "ref.zsync")
			cmd := exec.Command(tools[0], "-b", strconv.Itoa(res.BlockSize), "-u", "http://origin.invalid/pkg.bin", "-o", ref, pkg)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("zsyncmake: %v\n%s", err, b)
			}
			if !bytes.Equal(zsyncTable(t, ref), zsyncTable(t, res.Zsync)) {
				t.Fatal("our block table differs from zsyncmake's")
			}
			rf, err := os.Open(ref)
			if err != nil {
				t.Fatal(err)
			}
			defer rf.Close()
			theirs, err := zsyncfile.Read(rf)
			if err != nil {
				t.Fatalf("reading zsyncmake's file: %v", err)
			}
			of, err := os.Open(res.Zsync)
			if err != nil {
				t.Fatal(err)
			}
			defer of.Close()
			ours, err := zsyncfile.Read(of)
			if err != nil {
				t.Fatal(err)
			}
			if theirs.SHA1 != ours.SHA1 || theirs.Length != ours.Length || theirs.RsumBytes != ours.RsumBytes ||
				theirs.ChecksumBytes != ours.ChecksumBytes || theirs.SeqMatches != ours.SeqMatches || theirs.Blocksize != ours.Blocksize {
				t.Fatalf("headers differ: zsyncmake %+v, ours %+v", theirs.Header, ours.Header)
			}

			// transmission-show and aria2c must accept the torrent with the same size and piece count.
			show, err := exec.Command(tools[1], res.Torrent).CombinedOutput()
			if err != nil {
				t.Fatalf("transmission-show: %v\n%s", err, show)
			}
			m := regexp.MustCompile(`Piece Count: (\d+)`).FindSubmatch(show)
			if m == nil || string(m[1]) != strconv.Itoa(res.Pieces) {
				t.Fatalf("transmission-show piece count %q, want %d\n%s", m, res.Pieces, show)
			}
			if !strings.Contains(string(show), "pkg.bin") {
				t.Fatalf("transmission-show does not name the file:\n%s", show)
			}
			aria, err := exec.Command(tools[2], "-S", res.Torrent).CombinedOutput()
			if err != nil {
				t.Fatalf("aria2c -S: %v\n%s", err, aria)
			}
			if !strings.Contains(string(aria), res.InfoHash) || !strings.Contains(string(aria), "http://origin.invalid/pkg.bin") {
				t.Fatalf("aria2c -S does not show info hash %s and the web seed:\n%s", res.InfoHash, aria)
			}
			if !regexp.MustCompile(`(?m)^\s*1\|.*pkg\.bin`).Match(aria) {
				t.Fatalf("aria2c -S does not list the file:\n%s", aria)
			}
		})
	}
}

func TestMakeLoadsMktorrentOutput(t *testing.T) {
	tools := testtool.Need(t, "mktorrent")
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg.bin")
	data := randomBytes(3, 5<<20+77)
	writeFile(t, pkg, data)
	tp := filepath.Join(dir, "mk.torrent")
	cmd := exec.Command(tools[0], "-l", "18", "-a", "http://tracker.invalid/announce", "-w", "http://origin.invalid/pkg.bin", "-o", tp, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mktorrent: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(tp)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := manifest.ParseTorrent(raw)
	if err != nil {
		t.Fatalf("loading mktorrent's output: %v", err)
	}
	mustPkgsync(t, "make", pkg, "--piece-size", "262144", "--url", "http://origin.invalid/pkg.bin")
	raw, err = os.ReadFile(pkg + ".torrent")
	if err != nil {
		t.Fatal(err)
	}
	ours, err := manifest.ParseTorrent(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(theirs.Info.Pieces, ours.Info.Pieces) || theirs.Info.Length != ours.Info.Length || theirs.Info.PieceLength != ours.Info.PieceLength {
		t.Fatal("mktorrent's and our piece hashes differ for the same file and piece size")
	}
	if got := theirs.MetaInfo.UrlList; len(got) != 1 || got[0] != "http://origin.invalid/pkg.bin" {
		t.Fatalf("url-list %q", got)
	}
}

func TestMakeBadInput(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bin")
	writeFile(t, good, randomBytes(1, 100000))
	empty := filepath.Join(dir, "empty.bin")
	writeFile(t, empty, nil)
	notDir := filepath.Join(dir, "file-not-dir")
	writeFile(t, notDir, []byte("x"))
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"missing", []string{"make", filepath.Join(dir, "nope.bin")}, 1, "nope.bin: no such file"},
		{"directory", []string{"make", dir}, 1, "not a regular file"},
		{"empty", []string{"make", empty}, 1, "empty.bin: file is empty"},
		{"ftp url", []string{"make", good, "--url", "ftp://x/good.bin"}, 1, "--url \"ftp://x/good.bin\""},
		{"relative url", []string{"make", good, "--url", "good.bin"}, 1, "must be absolute http"},
		{"bad tracker", []string{"make", good, "--tracker", "nonsense"}, 1, "tracker \"nonsense\""},
		{"out dir missing", []string{"make", good, "-o", filepath.Join(dir, "nodir")}, 1, "nodir"},
		{"out dir is a file", []string{"make", good, "-o", notDir}, 1, "not a directory"},
		{"piece size not power of two", []string{"make", good, "--piece-size", "300000"}, 1, "bad piece size"},
		{"block size not power of two", []string{"make", good, "--block-size", "3000"}, 1, "bad block size"},
		{"align breaks pieces", []string{"make", good, "--piece-size", "1048576", "--align", "524288"}, 1, "straddle"},
		{"no file", []string{"make"}, 2, "want exactly one FILE"},
		{"unknown flag", []string{"make", good, "--frobnicate"}, 2, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := pkgsync(t, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, tt.code, tt.want)
			}
			if strings.Count(strings.TrimSpace(errs), "\n") > 1 {
				t.Errorf("want a short error, got %q", errs)
			}
		})
	}
	// Nothing half-written anywhere.
	matches, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(matches) > 0 {
		t.Fatalf("temporary files left behind: %v", matches)
	}
}

func TestMakeKeepsGoodOutputOnFailure(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg.bin")
	writeFile(t, pkg, randomBytes(2, 300000))
	mustPkgsync(t, "make", pkg)
	before, err := os.ReadFile(pkg + ".zsync")
	if err != nil {
		t.Fatal(err)
	}
	// A failing make (bad piece size) must leave the earlier output as it was.
	if code, _, _ := pkgsync(t, "make", pkg, "--piece-size", "12345"); code == 0 {
		t.Fatal("bad piece size accepted")
	}
	after, _ := os.ReadFile(pkg + ".zsync")
	if !bytes.Equal(before, after) {
		t.Fatal("earlier .zsync changed by a failed make")
	}
}

func TestDefaultPieceSize(t *testing.T) {
	tests := []struct {
		length int64
		bs     int
		align  int64
		want   int64
	}{
		{1, 2048, 0, 32 << 10},
		{16 << 20, 2048, 0, 32 << 10},
		{200 << 20, 2048, 0, 64 << 10},
		{1 << 30, 4096, 0, 512 << 10},
		{30 << 30, 4096, 0, 8 << 20},
		{1 << 40, 4096, 0, 16 << 20},
		{30 << 30, 4096, 1 << 20, 1 << 20},
		{30 << 30, 4096, 3 << 20, 1 << 20},
	}
	for _, tt := range tests {
		if got := manifest.DefaultPieceSize(tt.length, tt.bs, tt.align); got != tt.want {
			t.Errorf("DefaultPieceSize(%d, %d, %d) = %d, want %d", tt.length, tt.bs, tt.align, got, tt.want)
		}
		n := (tt.length + tt.want - 1) / tt.want
		if tt.length >= 1<<30 && tt.align == 0 && tt.want < 16<<20 && (n > 4000 || n < 1000) {
			t.Errorf("%d bytes: %d pieces, want 1000-4000", tt.length, n)
		}
	}
}
