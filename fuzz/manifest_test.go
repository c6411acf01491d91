package fuzz

import (
	"bytes"
	"testing"

	"github.com/anacrolix/torrent/bencode"

	"github.com/pkgsync/pkgsync/manifest"
)

// FuzzParseTorrent feeds arbitrary bytes to the .torrent loader that `pkgsync update` and
// `pkgsync seed` use on files fetched from anywhere: it must never panic, and whatever it accepts
// must be self-consistent (one SHA-1 per piece, pieces covering the length).
func FuzzParseTorrent(f *testing.F) {
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
