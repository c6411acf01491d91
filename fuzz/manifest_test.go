package fuzz

import (
	"bytes"
	"crypto/sha1"
	"os"
	"path/filepath"
	"testing"

	"github.com/anacrolix/torrent/bencode"

	"github.com/pkgsync/pkgsync/manifest"
)

// FuzzParseTorrent feeds arbitrary bytes to the .torrent loader that `pkgsync update` and
// `pkgsync seed` use on files fetched from anywhere: it must never panic, and whatever it accepts
// must be self-consistent (one SHA-1 per piece, pieces covering the length). The seeds include
// the .torrent files stock tools made (../testdata/torrent).
func FuzzParseTorrent(f *testing.F) {
	stock, err := filepath.Glob(filepath.Join("..", "testdata", "torrent", "*.torrent"))
	if err != nil {
		f.Fatal(err)
	}
	if len(stock) == 0 {
		f.Fatal("no .torrent files in ../testdata/torrent")
	}
	for _, path := range stock {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	info := map[string]any{"name": "pkg.tar", "length": 40000, "piece length": 16384, "pieces": string(bytes.Repeat([]byte("a"), 60))}
	good, _ := bencode.Marshal(map[string]any{"announce": "http://t/announce", "info": info, "url-list": []string{"http://o/pkg.tar"}, "zsync-url": "pkg.tar.zsync"})
	f.Add(good)
	f.Add([]byte("d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"))
	f.Add([]byte("d4:infod5:filesle4:name1:x12:piece lengthi16384e6:pieces0:ee"))
	f.Add([]byte("d4:infoi1ee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tor, err := manifest.ParseTorrent(data)
		if err != nil {
			return
		}
		n := tor.NumPieces()
		if n == 0 || int64(n-1)*tor.Info.PieceLength >= tor.Info.Length || int64(n)*tor.Info.PieceLength < tor.Info.Length {
			t.Fatalf("accepted %d pieces of %d bytes for length %d", n, tor.Info.PieceLength, tor.Info.Length)
		}
		off, l := tor.PieceRange(n - 1)
		if off+l != tor.Info.Length || l <= 0 {
			t.Fatalf("last piece [%d,+%d) does not end at %d", off, l, tor.Info.Length)
		}
	})
}

// FuzzZsyncTorrent puts arbitrary bytes in the "zsync-info" key of an otherwise good .torrent:
// the .zsync's own torrent that updating nodes trade among themselves is built from those bytes,
// as a torrent fetched from anywhere carries them. ParseTorrent and ZsyncTorrent must never panic,
// and a zsync torrent they accept must be self-consistent, with the given web seed.
func FuzzZsyncTorrent(f *testing.F) {
	good, _ := manifest.ZsyncInfo("pkg.tar.zsync", bytes.Repeat([]byte("zsync: 0.6.2\n"), 100))
	f.Add(good)
	f.Add([]byte("d6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae"))
	f.Add([]byte("d6:lengthi0e4:name1:x12:piece lengthi16384e6:pieces0:e"))
	f.Add([]byte("d5:filesld6:lengthi1e4:pathl1:xeee4:name1:x12:piece lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaae"))
	f.Add([]byte("de"))
	f.Add([]byte("i1e"))
	info := map[string]any{"name": "pkg.tar", "length": 40000, "piece length": 16384, "pieces": string(bytes.Repeat([]byte("a"), 60))}
	const zsyncURL = "http://o/pkg.tar.zsync"
	f.Fuzz(func(t *testing.T, zinfo []byte) {
		if !bytes.HasPrefix(zinfo, []byte("d")) || !bencodeValue(zinfo) {
			return // not a dictionary the outer torrent could carry whole
		}
		data, err := bencode.Marshal(map[string]any{"announce": "http://t/announce", "info": info, "zsync-info": bencode.Bytes(zinfo)})
		if err != nil {
			return
		}
		tor, err := manifest.ParseTorrent(data)
		if err != nil {
			t.Fatalf("the outer torrent no longer parses: %v", err)
		}
		if !bytes.Equal(tor.ZsyncInfo, zinfo) {
			t.Fatalf("zsync-info read as %q, was %q", tor.ZsyncInfo, zinfo)
		}
		zt, err := tor.ZsyncTorrent(zsyncURL)
		if err != nil || zt == nil {
			return
		}
		n := zt.NumPieces()
		if n == 0 || int64(n-1)*zt.Info.PieceLength >= zt.Info.Length || int64(n)*zt.Info.PieceLength < zt.Info.Length {
			t.Fatalf("accepted %d pieces of %d bytes for length %d", n, zt.Info.PieceLength, zt.Info.Length)
		}
		if got := zt.MetaInfo.UrlList; len(got) != 1 || got[0] != zsyncURL {
			t.Fatalf("web seeds %q, want %q", got, zsyncURL)
		}
		if want := sha1.Sum(zinfo); zt.InfoHash != want {
			t.Fatalf("info hash %x, want the SHA-1 of zsync-info, %x", zt.InfoHash, want)
		}
	})
}

// bencodeValue reports whether b is exactly one well-formed bencoded value.
func bencodeValue(b []byte) bool {
	var v any
	return bencode.Unmarshal(b, &v) == nil
}
