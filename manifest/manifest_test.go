package manifest

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/pkgsync/pkgsync/internal/directio"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

func randomFile(t testing.TB, dir string, seed uint64, n int) (string, []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	p := filepath.Join(dir, "pkg.bin")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestHashMatchesReference checks the parallel pipeline against the obvious sequential
// computation, for sizes around piece and block boundaries and several worker counts.
func TestHashMatchesReference(t *testing.T) {
	const ps = 16 << 10
	for _, n := range []int{1, 2047, 2048, 2049, ps - 1, ps, ps + 1, 5<<20 + 12345} {
		for _, workers := range []int{1, 3} {
			data := make([]byte, n)
			r := rand.New(rand.NewPCG(uint64(n), 1))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			zh := zsyncfile.NewHeader("x", int64(n), 2048, time.Time{})
			h, err := Hash(context.Background(), bytes.NewReader(data), HashOptions{Name: "x", Length: int64(n), PieceSize: ps, Zsync: &zh, Whole: true, Workers: workers})
			if err != nil {
				t.Fatal(err)
			}
			if h.Whole != sha1.Sum(data) {
				t.Fatalf("n=%d: whole-file SHA-1 differs", n)
			}
			for p := 0; p*ps < n; p++ {
				s := sha1.Sum(data[p*ps : min((p+1)*ps, n)])
				if !bytes.Equal(h.Pieces[p*20:(p+1)*20], s[:]) {
					t.Fatalf("n=%d: piece %d differs", n, p)
				}
			}
			if len(h.Blocks) != zsyncfile.NumBlocks(int64(n), 2048) {
				t.Fatalf("n=%d: %d blocks", n, len(h.Blocks))
			}
			for b := range h.Blocks {
				if want := zh.Sum(data[b*2048 : min((b+1)*2048, n)]); h.Blocks[b] != want {
					t.Fatalf("n=%d workers=%d: block %d = %+v, want %+v", n, workers, b, h.Blocks[b], want)
				}
			}
			// Pieces only: the same pieces, no whole-file SHA-1, no blocks.
			hp, err := Hash(context.Background(), bytes.NewReader(data), HashOptions{Name: "x", Length: int64(n), PieceSize: ps, Workers: workers})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(hp.Pieces, h.Pieces) || hp.Whole != ([sha1.Size]byte{}) || hp.Blocks != nil {
				t.Fatalf("n=%d workers=%d: pieces alone differ from Hash's pieces, or it computed more", n, workers)
			}
		}
	}
}

func TestHashDetectsChange(t *testing.T) {
	data := make([]byte, 100000)
	// Shorter than announced.
	_, err := Hash(context.Background(), bytes.NewReader(data[:5000]), HashOptions{Name: "x", Length: int64(len(data)), PieceSize: 16 << 10, Workers: 2})
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("short reader: %v, want ErrChanged", err)
	}
	// Longer than announced.
	_, err = Hash(context.Background(), bytes.NewReader(data), HashOptions{Name: "x", Length: 5000, PieceSize: 16 << 10, Workers: 2})
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("long reader: %v, want ErrChanged", err)
	}
}

func TestMakeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p, data := randomFile(t, dir, 1, 3<<20+5)
	res, tor := makeParsed(t, p, MakeOptions{URL: "http://o.invalid/pkg.bin", Trackers: []string{"http://t.invalid/announce"}})
	if tor.ZsyncURL != "pkg.bin.zsync" || tor.Info.Length != int64(len(data)) || tor.InfoHash.HexString() != res.InfoHash {
		t.Fatalf("torrent: %+v", tor)
	}
	f, _ := os.Open(res.Zsync)
	defer f.Close()
	z, err := zsyncfile.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(tor, z); err != nil {
		t.Fatal(err)
	}
	if z.SHA1 != sha1.Sum(data) || len(z.URLs) != 1 || z.URLs[0] != "http://o.invalid/pkg.bin" {
		t.Fatalf("zsync header: %+v", z.Header)
	}
	// Mismatches are caught.
	z.Length++
	if err := Check(tor, z); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Check on a different length: %v", err)
	}
}

func TestParseTorrentRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"not bencode": "hello",
		"no info":     "d8:announce3:urle",
		"multi-file":  "d4:infod5:filesld6:lengthi1e4:pathl1:aeee4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
		"bad pieces":  "d4:infod6:lengthi100e4:name1:x12:piece lengthi16384e6:pieces3:abcee",
		"zero piece":  "d4:infod6:lengthi100e4:name1:x12:piece lengthi0e6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
	} {
		if _, err := ParseTorrent([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkMake measures `pkgsync make` on a 64 MiB file in the page cache.
func BenchmarkMake(b *testing.B) {
	dir := b.TempDir()
	p, data := randomFile(b, dir, 2, 64<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Make(context.Background(), p, MakeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// The torrent carries the .zsync as a torrent of its own, whose pieces hash the .zsync file
// make wrote, with the package's trackers and the given URL as its web seed.
func TestZsyncTorrent(t *testing.T) {
	dir := t.TempDir()
	p, _ := randomFile(t, dir, 3, 9<<20+77)
	res, tor := makeParsed(t, p, MakeOptions{Trackers: []string{"http://t.invalid/announce"}})
	zdata, _ := os.ReadFile(res.Zsync)
	zt, err := tor.ZsyncTorrent("http://o.invalid/pkg.bin.zsync")
	if err != nil || zt == nil {
		t.Fatalf("ZsyncTorrent: %v, %v", zt, err)
	}
	if zt.Info.Name != "pkg.bin.zsync" || zt.Info.Length != int64(len(zdata)) || zt.Info.PieceLength != ZsyncPieceLength(int64(len(zdata))) {
		t.Fatalf("zsync torrent info: name %q length %d piece length %d; .zsync has %d bytes", zt.Info.Name, zt.Info.Length, zt.Info.PieceLength, len(zdata))
	}
	for i := range zt.NumPieces() {
		off, n := zt.PieceRange(i)
		if sha1.Sum(zdata[off:off+n]) != zt.PieceHash(i) {
			t.Fatalf("piece %d of the .zsync's torrent does not hash the .zsync", i)
		}
	}
	if zt.MetaInfo.Announce != "http://t.invalid/announce" || len(zt.MetaInfo.UrlList) != 1 || zt.MetaInfo.UrlList[0] != "http://o.invalid/pkg.bin.zsync" {
		t.Fatalf("zsync torrent: announce %q, url-list %q", zt.MetaInfo.Announce, zt.MetaInfo.UrlList)
	}
	if zt.InfoHash == tor.InfoHash {
		t.Fatal("the .zsync's torrent has the package's info hash")
	}

	// A torrent without the key (mktorrent's, an older pkgsync's) has no .zsync torrent; a
	// malformed one is an error.
	plain, err := ParseTorrent([]byte("d4:infod6:lengthi100e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"))
	if err != nil {
		t.Fatal(err)
	}
	if zt, err := plain.ZsyncTorrent("u"); zt != nil || err != nil {
		t.Fatalf("without zsync-info: %v, %v", zt, err)
	}
	bad, err := ParseTorrent([]byte("d4:infod6:lengthi100e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae10:zsync-infod6:lengthi100e4:name1:x12:piece lengthi16384e6:pieces3:abcee"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ZsyncTorrent("u"); err == nil {
		t.Fatal("a zsync-info with 3 bytes of piece hashes was accepted")
	}
}

func TestZsyncPieceLength(t *testing.T) {
	for _, tc := range []struct{ n, want int64 }{
		{1, 16 << 10},
		{460 << 10, 16 << 10},
		{4 << 20, 16 << 10},
		{4<<20 + 1, 32 << 10},
		{40 << 20, 256 << 10},
		{10 << 30, 4 << 20},
	} {
		if got := ZsyncPieceLength(tc.n); got != tc.want {
			t.Errorf("ZsyncPieceLength(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestBadPieces(t *testing.T) {
	dir := t.TempDir()
	p, data := randomFile(t, dir, 4, 5*32<<10+100)
	_, tor := makeParsed(t, p, MakeOptions{PieceSize: 32 << 10})
	for _, flip := range [][]int{nil, {0}, {2, 5}} {
		d := append([]byte(nil), data...)
		for _, piece := range flip {
			d[piece*32<<10] ^= 1
		}
		h, err := Hash(context.Background(), bytes.NewReader(d), HashOptions{Name: "x", Length: int64(len(d)), PieceSize: tor.Info.PieceLength})
		if err != nil {
			t.Fatal(err)
		}
		if got := tor.BadPieces(h.Pieces); fmt.Sprint(got) != fmt.Sprint(flip) && !(len(got) == 0 && len(flip) == 0) {
			t.Errorf("pieces %v changed: BadPieces = %v", flip, got)
		}
	}
}

// makeParsed runs Make on path and parses the .torrent it wrote.
func makeParsed(t *testing.T, path string, opt MakeOptions) (*MakeResult, *Torrent) {
	t.Helper()
	res, err := Make(context.Background(), path, opt)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(res.Torrent)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := ParseTorrent(raw)
	if err != nil {
		t.Fatal(err)
	}
	return res, tor
}

// TestHashTee checks what a Tee is promised: every chunk once, in order, covering the file, in
// a buffer from NewBuffer starting on a directio.Align boundary of the file, its bytes the
// file's; and that a Tee's error ends the read and is what Hash returns.
func TestHashTee(t *testing.T) {
	const n = 3<<20 + 777
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, ps := range []int64{0, 16 << 10, 1 << 20} {
		var next int64
		tee := func(off int64, buf []byte) error {
			if off != next {
				return fmt.Errorf("chunk at %d, want %d", off, next)
			}
			if off%directio.Align != 0 || uintptr(unsafe.Pointer(&buf[0]))%directio.Align != 0 {
				return fmt.Errorf("chunk at %d not aligned", off)
			}
			if !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
				return fmt.Errorf("chunk at %d: wrong bytes", off)
			}
			next += int64(len(buf))
			return nil
		}
		h, err := Hash(context.Background(), bytes.NewReader(data), HashOptions{Name: "x", Length: n, PieceSize: ps, Whole: true, Tee: tee, NewBuffer: directio.AlignedBuf})
		if err != nil {
			t.Fatalf("piece size %d: %v", ps, err)
		}
		if next != n {
			t.Fatalf("piece size %d: the Tee saw %d of %d bytes", ps, next, n)
		}
		if h.Whole != sha1.Sum(data) {
			t.Fatalf("piece size %d: whole-file SHA-1 differs", ps)
		}
	}
	boom := errors.New("disk full")
	var calls int
	tee := func(off int64, buf []byte) error {
		calls++
		if off > 0 {
			return boom
		}
		return nil
	}
	_, err := Hash(context.Background(), bytes.NewReader(data), HashOptions{Name: "x", Length: n, Whole: true, Tee: tee})
	if !errors.Is(err, boom) {
		t.Fatalf("a failing Tee: %v, want %v", err, boom)
	}
	if calls != 2 {
		t.Fatalf("the Tee was called %d times, want 2 (none after its error)", calls)
	}
}
