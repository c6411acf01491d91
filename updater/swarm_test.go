package updater

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkgsync/pkgsync/delta"
	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// TestPrepareSwarm checks that prepareSwarm writes and verifies the reused pieces: part holds
// the reused blocks afterwards, every piece the plan fills is a candidate, and a candidate
// whose copied bytes are wrong is reported as not matching.
func TestPrepareSwarm(t *testing.T) {
	v2 := versions.Random(1, 3<<20+777)
	tests := []struct {
		name    string
		old     []byte
		corrupt bool // change the old data after the scan, so that copies of it are wrong
		// none: nothing to reuse, so nothing to verify; OUT.part is opened write-only, since
		// prepareSwarm must not read the (empty) file then.
		none bool
	}{
		{"nothing reused", versions.Random(4, 3<<20), false, true},
		{"most reused", versions.Edit(v2, 2, 3, 100, 5000), false, false},
		{"most reused, a copy goes wrong", versions.Edit(v2, 2, 3, 100, 5000), true, false},
		{"little reused", append(versions.Random(3, 2<<20), v2[2<<20:]...), false, false},
		{"little reused, a copy goes wrong", append(versions.Random(3, 2<<20), v2[2<<20:]...), true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pkg := filepath.Join(dir, "pkg.bin")
			if err := os.WriteFile(pkg, v2, 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := manifest.Make(t.Context(), pkg, manifest.MakeOptions{PieceSize: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(res.Torrent)
			tor, err := manifest.ParseTorrent(raw)
			if err != nil {
				t.Fatal(err)
			}
			zraw, _ := os.ReadFile(res.Zsync)
			z, err := zsyncfile.Read(bytes.NewReader(zraw))
			if err != nil {
				t.Fatal(err)
			}
			old := append([]byte(nil), tc.old...)
			srcs := []delta.Source{{Name: "old", R: bytes.NewReader(old), Size: int64(len(old))}}
			plan, err := delta.Scan(t.Context(), z, srcs, delta.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.corrupt {
				for i := range old {
					old[i] ^= 0xff // bytes.Reader reads the slice as it is now
				}
			}
			partPath := filepath.Join(dir, "out.part")
			part, err := os.Create(partPath)
			if err != nil {
				t.Fatal(err)
			}
			part.Truncate(int64(len(v2)))
			if tc.none {
				part.Close()
				if part, err = os.OpenFile(partPath, os.O_WRONLY, 0); err != nil {
					t.Fatal(err)
				}
			}
			defer part.Close()
			j := &job{torrent: tor, zsync: z, length: int64(len(v2)), part: partPath}
			candidate, ok, err := j.prepareSwarm(t.Context(), part, plan, srcs)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(partPath)
			var ncand, nok int
			for i := range tor.NumPieces() {
				off, n := tor.PieceRange(i)
				if candidate[i] != plan.Have(off, n) {
					t.Errorf("piece %d: candidate %v, plan fills it: %v", i, candidate[i], plan.Have(off, n))
				}
				if !candidate[i] {
					continue
				}
				ncand++
				right := bytes.Equal(got[off:off+n], v2[off:off+n])
				if ok[i] != right {
					t.Errorf("piece %d: reported matching %v, holds the right bytes %v", i, ok[i], right)
				}
				if ok[i] {
					nok++
				}
			}
			t.Logf("%d pieces, %d candidates, %d match (reused %d of %d bytes)", tor.NumPieces(), ncand, nok, plan.ReusedBytes(), len(v2))
			if tc.none {
				if ncand != 0 {
					t.Errorf("%d candidates from unrelated old data", ncand)
				}
				return
			}
			if ncand == 0 || (tc.corrupt && nok != 0) || (!tc.corrupt && nok != ncand) {
				t.Errorf("%d candidates, %d match; corrupt = %v", ncand, nok, tc.corrupt)
			}
		})
	}
}
