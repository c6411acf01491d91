package manifest

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// The stub of a .torrent. A .torrent is mostly its info dictionary: 20 bytes of piece hash per
// piece (21 KB for a 1 GiB package in 1 MiB pieces), and the .zsync's own info dictionary. A
// node that updates fetched it whole from the origin, so the origin's metadata grew with the
// number of nodes. The stub is the rest: everything outside the info dictionary (trackers,
// url-list, zsync-url, dates) plus the info hash, the package's name and length, and the info
// hash of the .zsync's torrent, a few hundred bytes. `pkgsync serve` sends it instead of the
// .torrent to a client that asks for StubType in Accept; the client then takes the info
// dictionaries from its peers (BEP 9), whose bytes the info hashes verify, and fetches the
// .torrent only when no peer has them. A web server that does not know the type sends the
// .torrent, which a client tells apart by its content.

// StubType is the media type of a .torrent's stub (Accept and Content-Type).
const StubType = "application/x-pkgsync-torrent-stub"

// maxStubBytes bounds what a stub may hold: its URLs and dates take a few hundred bytes.
const maxStubBytes = 64 << 10

// Keys of the stub beside the .torrent's own keys outside "info".
const (
	stubInfoHash      = "info-hash"
	stubName          = "name"
	stubLength        = "length"
	stubZsyncInfoHash = "zsync-info-hash"
)

// Stub is a parsed stub: a torrent without its info dictionary.
type Stub struct {
	InfoHash metainfo.Hash
	Name     string // the info dictionary's name
	Length   int64  // the info dictionary's length
	// ZsyncInfoHash is the info hash of the .zsync's torrent ("zsync-info" of the .torrent);
	// zero when the .torrent carries none.
	ZsyncInfoHash metainfo.Hash
	// MetaInfo holds the keys outside the info dictionary: trackers, url-list.
	MetaInfo *metainfo.MetaInfo
	// ZsyncURL is the .torrent's "zsync-url".
	ZsyncURL string

	outer map[string]bencode.Bytes // the .torrent's keys other than "info" and "zsync-info"
}

// MakeStub returns the stub of the .torrent torrent: its keys other than "info" and
// "zsync-info", the info hash, the info's name and length, and the .zsync torrent's info hash.
func MakeStub(torrent []byte) ([]byte, error) {
	t, err := ParseTorrent(torrent)
	if err != nil {
		return nil, err
	}
	var top map[string]bencode.Bytes
	if err := bencode.Unmarshal(torrent, &top); err != nil {
		return nil, fmt.Errorf("not a valid .torrent: %w", err)
	}
	delete(top, "info")
	delete(top, "zsync-info")
	for _, k := range []string{stubInfoHash, stubName, stubLength, stubZsyncInfoHash} {
		delete(top, k) // a stub's keys are the stub's alone
	}
	top[stubInfoHash] = bencode.MustMarshal(string(t.InfoHash[:]))
	top[stubName] = bencode.MustMarshal(t.Info.Name)
	top[stubLength] = bencode.MustMarshal(t.Info.Length)
	if t.ZsyncInfoHash != (metainfo.Hash{}) {
		top[stubZsyncInfoHash] = bencode.MustMarshal(string(t.ZsyncInfoHash[:]))
	}
	b, err := bencode.Marshal(top)
	if err != nil {
		return nil, fmt.Errorf("encoding the stub: %w", err)
	}
	return b, nil
}

// IsStub reports whether data looks like a stub rather than a .torrent (which has "info").
func IsStub(data []byte) bool {
	var probe struct {
		InfoHash bencode.Bytes `bencode:"info-hash"`
		Info     bencode.Bytes `bencode:"info"`
	}
	err := bencode.Unmarshal(data, &probe)
	return err == nil && len(probe.InfoHash) > 0 && len(probe.Info) == 0
}

// ParseStub decodes a stub and checks it: a 20-byte info hash, a name that is a plain file
// name, a positive length, and, when present, a 20-byte zsync info hash.
func ParseStub(data []byte) (*Stub, error) {
	if len(data) > maxStubBytes {
		return nil, fmt.Errorf("not a valid torrent stub: %d bytes (limit %d)", len(data), maxStubBytes)
	}
	var top map[string]bencode.Bytes
	if err := bencode.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("not a valid torrent stub: %w", err)
	}
	if _, ok := top["info"]; ok {
		return nil, errors.New("not a valid torrent stub: it has an info dictionary (a .torrent?)")
	}
	s := &Stub{outer: top}
	var ih, zh string
	if err := stubKey(top, stubInfoHash, &ih, true); err != nil {
		return nil, err
	}
	if len(ih) != sha1.Size {
		return nil, fmt.Errorf("not a valid torrent stub: %s of %d bytes, want %d", stubInfoHash, len(ih), sha1.Size)
	}
	copy(s.InfoHash[:], ih)
	if err := stubKey(top, stubName, &s.Name, true); err != nil {
		return nil, err
	}
	if s.Name == "" || s.Name == "." || s.Name == ".." || bytes.ContainsAny([]byte(s.Name), "/\\\x00") {
		return nil, fmt.Errorf("not a valid torrent stub: name %q is not a file name", s.Name)
	}
	if err := stubKey(top, stubLength, &s.Length, true); err != nil {
		return nil, err
	}
	if s.Length <= 0 {
		return nil, fmt.Errorf("not a valid torrent stub: length %d", s.Length)
	}
	if err := stubKey(top, stubZsyncInfoHash, &zh, false); err != nil {
		return nil, err
	}
	if zh != "" && len(zh) != sha1.Size {
		return nil, fmt.Errorf("not a valid torrent stub: %s of %d bytes, want %d", stubZsyncInfoHash, len(zh), sha1.Size)
	}
	copy(s.ZsyncInfoHash[:], zh)
	if err := stubKey(top, "zsync-url", &s.ZsyncURL, false); err != nil {
		return nil, err
	}
	mi, err := metainfo.Load(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a valid torrent stub: %w", err)
	}
	s.MetaInfo = mi
	return s, nil
}

// stubKey decodes top[key] into v; a missing key is an error when required.
func stubKey(top map[string]bencode.Bytes, key string, v any, required bool) error {
	raw, ok := top[key]
	if !ok {
		if required {
			return fmt.Errorf("not a valid torrent stub: no %q", key)
		}
		return nil
	}
	if err := bencode.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("not a valid torrent stub: %q: %w", key, err)
	}
	return nil
}

// Torrent returns the .torrent the stub stands for, given its info dictionary info and, when
// known, the .zsync torrent's info dictionary zinfo (nil: the result carries the stub's
// zsync-info-hash instead, so that a later run can still ask peers for it). Both must hash to
// the stub's info hashes, and info must name the stub's name and length.
func (s *Stub) Torrent(info, zinfo []byte) ([]byte, error) {
	if h := sha1.Sum(info); h != s.InfoHash {
		return nil, fmt.Errorf("the info dictionary hashes to %x, not the torrent's info hash %s", h, s.InfoHash.HexString())
	}
	top := make(map[string]bencode.Bytes, len(s.outer)+2)
	for k, v := range s.outer {
		top[k] = v
	}
	delete(top, stubInfoHash)
	delete(top, stubName)
	delete(top, stubLength)
	top["info"] = info
	if zinfo != nil {
		if h := sha1.Sum(zinfo); h != s.ZsyncInfoHash {
			return nil, fmt.Errorf("the .zsync's info dictionary hashes to %x, not the stub's %s %s", h, stubZsyncInfoHash, s.ZsyncInfoHash.HexString())
		}
		delete(top, stubZsyncInfoHash)
		top["zsync-info"] = zinfo
	}
	b, err := bencode.Marshal(top)
	if err != nil {
		return nil, fmt.Errorf("encoding the torrent: %w", err)
	}
	t, err := ParseTorrent(b)
	if err != nil {
		return nil, err
	}
	if t.Info.Name != s.Name || t.Info.Length != s.Length {
		return nil, fmt.Errorf("the info dictionary names %q of %d bytes, the stub %q of %d", t.Info.Name, t.Info.Length, s.Name, s.Length)
	}
	return b, nil
}
