package fuzz

import (
	"bytes"
	"crypto/sha1"
	"testing"

	"github.com/anacrolix/torrent/bencode"

	"github.com/pkgsync/pkgsync/manifest"
)

// FuzzParseStub feeds arbitrary bytes to the parser of a .torrent's stub, which `pkgsync update`
// reads from the origin (or from whatever answers at its URL): it must never panic, what it
// accepts must name a plain file of a positive length, and a stub it accepts must give back,
// with an info dictionary of that name, length and hash, a .torrent that parses to the stub's
// info hash, and whose stub is again the stub's.
func FuzzParseStub(f *testing.F) {
	info := bencode.MustMarshal(map[string]any{"name": "pkg.tar", "length": 40000, "piece length": 16384, "pieces": string(bytes.Repeat([]byte("a"), 60))})
	full := bencode.MustMarshal(map[string]any{"announce": "http://t/announce", "info": bencode.Bytes(info), "url-list": []string{"http://o/pkg.tar"}, "zsync-url": "pkg.tar.zsync"})
	stub, err := manifest.MakeStub(full)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(stub)
	f.Add(full)
	f.Add([]byte("d9:info-hash20:aaaaaaaaaaaaaaaaaaaa6:lengthi1e4:name1:xe"))
	f.Add([]byte("d9:info-hash3:abc6:lengthi1e4:name2:..e"))
	f.Add([]byte("de"))
	ih := sha1.Sum(info)
	withZsync := bencode.MustMarshal(map[string]any{"info-hash": string(ih[:]), "name": "pkg.tar", "length": 40000, "zsync-info-hash": "zzzzzzzzzzzzzzzzzzzz"})
	f.Add(withZsync)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := manifest.ParseStub(data)
		if err != nil {
			return
		}
		if s.Length <= 0 || s.Name == "" || bytes.ContainsAny([]byte(s.Name), "/\x00") {
			t.Fatalf("accepted name %q length %d", s.Name, s.Length)
		}
		if s.InfoHash != ih || s.Name != "pkg.tar" || s.Length != 40000 {
			return // no info dictionary at hand for this stub
		}
		back, err := s.Torrent(info, nil)
		if err != nil {
			return // e.g. its other keys do not make a .torrent
		}
		tor, err := manifest.ParseTorrent(back)
		if err != nil || tor.InfoHash != ih {
			t.Fatalf("the rebuilt .torrent: %v", err)
		}
		again, err := manifest.MakeStub(back)
		if err != nil {
			t.Fatalf("the rebuilt .torrent has no stub: %v", err)
		}
		s2, err := manifest.ParseStub(again)
		if err != nil || s2.InfoHash != s.InfoHash || s2.ZsyncInfoHash != s.ZsyncInfoHash || s2.ZsyncURL != s.ZsyncURL {
			t.Fatalf("stub -> torrent -> stub changed it: %+v, %v", s2, err)
		}
	})
}
