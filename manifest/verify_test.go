package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyAndFindZsync checks what a seeder relies on: a file is offered only when its size and
// every piece match, the error names the file and the first bad piece, and the .zsync is found
// beside the data and verified as the torrent's zsync-info describes it.
func TestVerifyAndFindZsync(t *testing.T) {
	dir := t.TempDir()
	p, data := randomFile(t, dir, 5, 3*32<<10+10)
	res, tor := makeParsed(t, p, MakeOptions{PieceSize: 32 << 10})

	write := func(name string, b []byte) *os.File {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	flipped := append([]byte(nil), data...)
	flipped[2*32<<10+5] ^= 1
	for _, tc := range []struct {
		name, file string
		data       []byte
		want       string // "" for no error, else a part of the error
	}{
		{"good", "good.bin", data, ""},
		{"short", "short.bin", data[:len(data)-1], "short.bin: not the data of the torrent (size differs"},
		{"bad piece", "flipped.bin", flipped, "flipped.bin: piece 2 does not match"},
	} {
		err := tor.Verify(t.Context(), write(tc.file, tc.data), tc.file)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Verify = %v, want %q", tc.name, err, tc.want)
		}
	}

	zp, zt, f, err := tor.FindZsync(t.Context(), res.Torrent, p)
	if err != nil || zt == nil || zp != res.Zsync {
		t.Fatalf("FindZsync = %q, %v, %v; want %s", zp, zt, err, res.Zsync)
	}
	f.Close()
	// A .zsync of other data beside the package is refused, naming why.
	if err := os.WriteFile(res.Zsync, []byte("not this package's .zsync"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := tor.FindZsync(t.Context(), res.Torrent, p); err == nil || !strings.Contains(err.Error(), "another version") {
		t.Fatalf("FindZsync of a wrong .zsync: %v", err)
	}
}
