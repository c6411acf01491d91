package manifest

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
)

// A stub holds everything of the .torrent but its info dictionaries, in a few hundred bytes,
// and with those dictionaries rebuilds a .torrent of the same info hash, trackers, web seeds
// and .zsync torrent.
func TestStubRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p, _ := randomFile(t, dir, 4, 5<<20+3)
	res, tor := makeParsed(t, p, MakeOptions{URL: "http://o.invalid/pkg.bin", Trackers: []string{"http://t.invalid/announce?secret=s"}})
	full, err := os.ReadFile(res.Torrent)
	if err != nil {
		t.Fatal(err)
	}
	stub, err := MakeStub(full)
	if err != nil {
		t.Fatal(err)
	}
	if len(stub) > 512 || len(stub) >= len(full)/4 {
		t.Fatalf("stub of %d bytes for a .torrent of %d", len(stub), len(full))
	}
	if !IsStub(stub) || IsStub(full) {
		t.Fatalf("IsStub: stub %v, torrent %v", IsStub(stub), IsStub(full))
	}
	s, err := ParseStub(stub)
	if err != nil {
		t.Fatal(err)
	}
	if s.InfoHash != tor.InfoHash || s.Name != "pkg.bin" || s.Length != tor.Info.Length || s.ZsyncInfoHash != tor.ZsyncInfoHash || s.ZsyncURL != "pkg.bin.zsync" {
		t.Fatalf("stub %+v, torrent info hash %s zsync %s", s, tor.InfoHash, tor.ZsyncInfoHash)
	}
	if s.MetaInfo.Announce != "http://t.invalid/announce?secret=s" || len(s.MetaInfo.UrlList) != 1 || s.MetaInfo.UrlList[0] != "http://o.invalid/pkg.bin" {
		t.Fatalf("stub trackers %q, web seeds %q", s.MetaInfo.Announce, s.MetaInfo.UrlList)
	}

	for _, withZsync := range []bool{true, false} {
		var zinfo []byte
		if withZsync {
			zinfo = tor.ZsyncInfo
		}
		back, err := s.Torrent(tor.MetaInfo.InfoBytes, zinfo)
		if err != nil {
			t.Fatalf("with zsync-info %v: %v", withZsync, err)
		}
		bt, err := ParseTorrent(back)
		if err != nil {
			t.Fatal(err)
		}
		if bt.InfoHash != tor.InfoHash || bt.ZsyncInfoHash != tor.ZsyncInfoHash || bt.ZsyncURL != tor.ZsyncURL || bt.MetaInfo.Announce != tor.MetaInfo.Announce {
			t.Fatalf("rebuilt torrent differs: %+v", bt)
		}
		if withZsync && !bytes.Equal(back, full) {
			t.Fatalf("with both dictionaries the rebuilt .torrent is not the original's bytes")
		}
		if !withZsync && bt.ZsyncInfo != nil {
			t.Fatal("zsync-info appeared from nowhere")
		}
	}
	// The dictionaries are checked against the stub's hashes.
	if _, err := s.Torrent(tor.ZsyncInfo, nil); err == nil || !strings.Contains(err.Error(), "not the torrent's info hash") {
		t.Fatalf("a wrong info dictionary: %v", err)
	}
	if _, err := s.Torrent(tor.MetaInfo.InfoBytes, tor.MetaInfo.InfoBytes); err == nil || !strings.Contains(err.Error(), "zsync-info-hash") {
		t.Fatalf("a wrong .zsync info dictionary: %v", err)
	}
}

func TestParseStubRejects(t *testing.T) {
	h20 := strings.Repeat("h", 20)
	good := map[string]any{"info-hash": h20, "name": "pkg.tar", "length": 10, "announce": "http://t/announce"}
	with := func(k string, v any) string {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return string(bencode.MustMarshal(m))
	}
	if _, err := ParseStub([]byte(with("x", nil))); err != nil {
		t.Fatalf("the good stub: %v", err)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "not a valid torrent stub"},
		{"not bencode", "hello", "not a valid torrent stub"},
		{"a .torrent", with("info", map[string]any{"name": "x"}), "has an info dictionary"},
		{"no info hash", with("info-hash", nil), `no "info-hash"`},
		{"short info hash", with("info-hash", "abc"), "info-hash of 3 bytes"},
		{"info hash a number", with("info-hash", 5), `"info-hash"`},
		{"no name", with("name", nil), `no "name"`},
		{"name a path", with("name", "../etc/passwd"), "not a file name"},
		{"name dot-dot", with("name", ".."), "not a file name"},
		{"no length", with("length", nil), `no "length"`},
		{"zero length", with("length", 0), "length 0"},
		{"short zsync hash", with("zsync-info-hash", "z"), "zsync-info-hash of 1 bytes"},
		{"too long", with("comment", strings.Repeat("c", 70<<10)), "limit"},
	} {
		_, err := ParseStub([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
