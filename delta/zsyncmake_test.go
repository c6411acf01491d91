package delta

import (
	"bytes"
	"crypto/sha1"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/pkgsync/pkgsync/internal/testtool"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// TestZsyncmake scans old versions against control files written by the stock zsyncmake and
// checks that Apply plus the Missing ranges, fetched from the target, give the SHA-1 zsyncmake
// recorded. It also checks that this package's test helper computes zsyncmake's table, which the
// other tests rely on.
func TestZsyncmake(t *testing.T) {
	zsyncmake := testtool.Need(t, "zsyncmake")[0]
	// A package-like target: random sections, a zero run, a repeated text record.
	record := bytes.Repeat([]byte("Package: pkgsync\nVersion: 1.0\n"), 40)
	target := cat(randBytes(200, 150000), make([]byte, 20000), record, randBytes(201, 90001), record, randBytes(202, 33333))
	edited := cat(target[:70000], []byte("inserted"), target[70000:150000], target[150007:200000], randBytes(203, 4000), target[210000:])
	moved := cat(target[200000:], target[:200000])
	tests := []struct {
		name      string
		bs        int
		target    []byte
		old       []byte
		minReused float64 // fraction of the target that must be found
	}{
		{name: "edited/2048", bs: 2048, target: target, old: edited, minReused: 0.85},
		{name: "edited/4096", bs: 4096, target: target, old: edited, minReused: 0.8},
		{name: "moved/2048", bs: 2048, target: target, old: moved, minReused: 0.95},
		{name: "identical/1024", bs: 1024, target: target, old: target, minReused: 1},
		{name: "unrelated/2048", bs: 2048, target: target, old: randBytes(204, 100000), minReused: 0},
		{name: "one block/2048", bs: 2048, target: target[:1500], old: cat(randBytes(205, 99), target[:1500]), minReused: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "target.bin")
			if err := os.WriteFile(path, tc.target, 0o644); err != nil {
				t.Fatal(err)
			}
			ctl := filepath.Join(dir, "target.zsync")
			cmd := exec.Command(zsyncmake, "-b", strconv.Itoa(tc.bs), "-u", "target.bin", "-o", ctl, path)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("zsyncmake: %v\n%s", err, out)
			}
			fh, err := os.Open(ctl)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			f, err := zsyncfile.Read(fh)
			if err != nil {
				t.Fatalf("zsyncfile.Read: %v", err)
			}

			mine := makeFile(tc.target, tc.bs, 0)
			if f.SeqMatches != mine.SeqMatches || f.RsumBytes != mine.RsumBytes || f.ChecksumBytes != mine.ChecksumBytes {
				t.Fatalf("zsyncmake's Hash-Lengths %d,%d,%d; the test helper computes %d,%d,%d",
					f.SeqMatches, f.RsumBytes, f.ChecksumBytes, mine.SeqMatches, mine.RsumBytes, mine.ChecksumBytes)
			}
			if !slices.Equal(f.Blocks, mine.Blocks) {
				t.Fatal("zsyncmake's block table differs from the test helper's")
			}

			srcs := []Source{srcOf("old", tc.old)}
			p, err := Scan(t.Context(), f, srcs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d := diffFound(found(p), oracle(tc.target, tc.bs, f.SeqMatches, tc.old)); d != "" {
				t.Error(d)
			}
			if got := float64(p.ReusedBytes()) / float64(p.Length); got < tc.minReused {
				t.Errorf("reused %.3f of the target, want at least %.3f", got, tc.minReused)
			}
			out := &memFile{b: make([]byte, len(tc.target))}
			if err := p.Apply(t.Context(), out, srcs); err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Missing() {
				copy(out.b[r.Off:], tc.target[r.Off:r.Off+r.Len])
			}
			if sha1.Sum(out.b) != f.SHA1 {
				t.Fatal("the rebuilt file does not have zsyncmake's SHA-1")
			}
			checkPlan(t, p, tc.target, srcs)
		})
	}
}
