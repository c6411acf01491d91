package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// partRun runs make --part i/n for every i with args and returns the part files, in order.
func partRun(t *testing.T, pkg, outDir string, n int, args ...string) []string {
	t.Helper()
	var files []string
	for i := range n {
		out := mustPkgsync(t, append([]string{"make", "--part", fmt.Sprintf("%d/%d", i, n), pkg, "-o", outDir, "--json"}, args...)...)
		var res partJSON
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("--part --json: %v: %q", err, out)
		}
		if want := filepath.Join(outDir, fmt.Sprintf("%s.%d-of-%d.mkpart", filepath.Base(pkg), i, n)); res.PartFile != want {
			t.Fatalf("part file %s, want %s", res.PartFile, want)
		}
		files = append(files, res.PartFile)
	}
	return files
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMakePartMerge: --part over 4 and 7 parts and --merge write the one-pass make's .torrent
// and .zsync byte for byte, for sizes on and off piece and block boundaries, a package with
// fewer stretches than parts, and --align 134217728 (one stretch: every other part is empty).
func TestMakePartMerge(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	flags := []string{"--url", "http://origin.invalid/pkg.bin", "--tracker", "http://tracker.invalid/announce"}
	tests := []struct {
		size int
		args []string
	}{
		{1, flags},
		{2047, nil},
		{100000, flags},
		{5<<20 + 12345, flags},
		{5<<20 + 12345, append([]string{"--piece-size", "1048576", "--block-size", "4096"}, flags...)},
		{3<<20 + 7, append([]string{"--align", "134217728"}, flags...)},
		{3<<20 + 7, []string{"--align", "196608"}},
	}
	for _, tt := range tests {
		for _, n := range []int{4, 7} {
			t.Run(fmt.Sprintf("%d/%s/%d", tt.size, strings.Join(tt.args, " "), n), func(t *testing.T) {
				dir := t.TempDir()
				pkg := filepath.Join(dir, "pkg.bin")
				writeFile(t, pkg, randomBytes(uint64(tt.size), tt.size))
				one, parts, merged := filepath.Join(dir, "one"), filepath.Join(dir, "parts"), filepath.Join(dir, "merged")
				mkdirs(t, one, parts, merged)
				mustPkgsync(t, append([]string{"make", pkg, "-o", one}, tt.args...)...)
				files := partRun(t, pkg, parts, n, tt.args...)
				// The merge takes its settings from the parts; the same flags again are accepted.
				mustPkgsync(t, append(append([]string{"make", "-o", merged, "--merge"}, files...), tt.args...)...)
				for _, ext := range []string{".torrent", ".zsync"} {
					a, errA := os.ReadFile(filepath.Join(one, "pkg.bin"+ext))
					b, errB := os.ReadFile(filepath.Join(merged, "pkg.bin"+ext))
					if errA != nil || errB != nil {
						t.Fatal(errA, errB)
					}
					if !bytes.Equal(a, b) {
						t.Errorf("merged %s differs from the one-pass make's", ext)
					}
				}
			})
		}
	}
}

// TestMakeMergeBesidePackage: without -o, the parts and the outputs go beside the package,
// the merge reads the package where the parts recorded it (an absolute path), and --sign-key
// signs the merged outputs.
func TestMakeMergeBesidePackage(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg.bin")
	writeFile(t, pkg, randomBytes(8, 300000))
	key := keygen(t, dir, "release")
	t.Chdir(dir)
	var files []string
	for i := range 3 {
		mustPkgsync(t, "make", "--part", fmt.Sprintf("%d/3", i), "pkg.bin")
		files = append(files, fmt.Sprintf("pkg.bin.%d-of-3.mkpart", i))
	}
	out := mustPkgsync(t, append([]string{"make", "--json", "--sign-key", key, "--merge"}, files...)...)
	var res struct {
		Torrent, Zsync, Sig string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Torrent != pkg+".torrent" || res.Zsync != pkg+".zsync" || res.Sig != pkg+".sig" {
		t.Fatalf("merge wrote %+v, want them beside %s", res, pkg)
	}
	for _, f := range []string{res.Torrent, res.Zsync, res.Sig} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMakePartBadInput(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg.bin")
	writeFile(t, pkg, randomBytes(4, 200000))
	other := filepath.Join(dir, "other", "pkg.bin")
	writeFile(t, other, randomBytes(5, 200001))
	parts := filepath.Join(dir, "parts")
	mkdirs(t, parts)
	four := partRun(t, pkg, parts, 4, "--url", "http://o.invalid/pkg.bin")
	seven := partRun(t, pkg, parts, 7)
	otherParts := partRun(t, other, t.TempDir(), 4, "--url", "http://o.invalid/pkg.bin")
	damaged := filepath.Join(dir, "damaged.mkpart")
	b, _ := os.ReadFile(four[2])
	b[len(b)-40] ^= 1 // in the block records
	writeFile(t, damaged, b)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"part not I/N", []string{"make", "--part", "three", pkg}, 2, `--part "three": want I/N`},
		{"part I = N", []string{"make", "--part", "4/4", pkg}, 1, "I must be from 0 to 3"},
		{"part N = 0", []string{"make", "--part", "0/0", pkg}, 1, "N must be from 1"},
		{"part and merge", []string{"make", "--part", "0/4", "--merge", four[0]}, 2, "give one"},
		{"part signs nothing", []string{"make", "--part", "0/4", pkg, "--sign-key", "k"}, 2, "give it to --merge"},
		{"part of a missing file", []string{"make", "--part", "0/4", filepath.Join(dir, "nope.bin")}, 1, "nope.bin: no such file"},
		{"merge nothing", []string{"make", "--merge"}, 2, "wants the part files"},
		{"merge missing part", []string{"make", "--merge", four[0], four[1], four[3]}, 1, "no part file for 2/4"},
		{"merge part twice", []string{"make", "--merge", four[0], four[1], four[2], four[2], four[3]}, 1, "are both part 2/4"},
		{"merge other N", []string{"make", "--merge", four[0], four[1], seven[2], four[3]}, 1, seven[2] + " has 7"},
		{"merge other package", []string{"make", "--merge", four[0], four[1], otherParts[2], four[3]}, 1, "has package size 200000, " + otherParts[2] + " has 200001"},
		{"merge other settings", []string{"make", "--merge", seven[0], seven[1], seven[2], seven[3], seven[4], seven[5], seven[6], "--url", "http://o.invalid/pkg.bin"}, 1, "--url \"http://o.invalid/pkg.bin\" given to the merge"},
		{"merge damaged part", []string{"make", "--merge", four[0], four[1], damaged, four[3]}, 1, damaged + ": bad part file: SHA-256 does not match"},
		{"merge not a part file", []string{"make", "--merge", pkg}, 1, pkg + ": bad part file"},
		{"bad SOURCE_DATE_EPOCH", []string{"make", pkg}, 1, "SOURCE_DATE_EPOCH \"yesterday\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "SOURCE_DATE_EPOCH") {
				t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
			}
			code, _, errs := pkgsync(t, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, tt.code, tt.want)
			}
		})
	}
	if _, err := os.Stat(pkg + ".torrent"); err == nil {
		t.Fatal("a refused merge wrote a .torrent")
	}
	// The package changed after the parts were made: the merge refuses it.
	writeFile(t, pkg, randomBytes(6, 200000))
	os.Chtimes(pkg, time.Now(), time.Now().Add(time.Hour))
	code, _, errs := pkgsync(t, append([]string{"make", "--merge"}, four...)...)
	if code != 1 || !strings.Contains(errs, "the package changed since the parts were made") {
		t.Fatalf("merge over a changed package: exit %d, %q", code, errs)
	}
}
