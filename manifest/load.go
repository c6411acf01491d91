package manifest

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// ErrMismatch means a .torrent and a .zsync do not describe the same package.
var ErrMismatch = errors.New(".zsync does not belong to the .torrent")

// Torrent is a loaded single-file v1 .torrent with pkgsync's "zsync-url" key.
type Torrent struct {
	MetaInfo *metainfo.MetaInfo
	Info     metainfo.Info
	InfoHash metainfo.Hash
	// ZsyncURL is where the .zsync is, relative to the .torrent's location or absolute; empty when
	// the torrent was not made by pkgsync.
	ZsyncURL string
	// ZsyncInfo is the bencoded info dictionary of the .zsync as a torrent of its own (see
	// ZsyncTorrent); nil when the torrent does not carry one.
	ZsyncInfo []byte
	// ZsyncInfoHash is the info hash of the .zsync's torrent: ZsyncInfo's SHA-1, or, in a
	// .torrent rebuilt from a stub without it, the stub's "zsync-info-hash" (see Stub.Torrent);
	// zero when neither is there.
	ZsyncInfoHash metainfo.Hash
}

// NumPieces returns the number of pieces.
func (t *Torrent) NumPieces() int { return len(t.Info.Pieces) / sha1.Size }

// PieceHash returns the SHA-1 of piece i.
func (t *Torrent) PieceHash(i int) (h [sha1.Size]byte) {
	copy(h[:], t.Info.Pieces[i*sha1.Size:])
	return h
}

// BadPieces returns the pieces whose SHA-1 in pieces (concatenated, as Hashes.Pieces holds
// them) is not the torrent's.
func (t *Torrent) BadPieces(pieces []byte) []int {
	var bad []int
	for i := 0; i < t.NumPieces(); i++ {
		want := t.PieceHash(i)
		if !bytes.Equal(pieces[i*sha1.Size:(i+1)*sha1.Size], want[:]) {
			bad = append(bad, i)
		}
	}
	return bad
}

// PieceRange returns the byte range [off, off+n) of piece i.
func (t *Torrent) PieceRange(i int) (off, n int64) {
	off = int64(i) * t.Info.PieceLength
	return off, min(t.Info.PieceLength, t.Info.Length-off)
}

// ParseTorrent decodes a .torrent and checks that pkgsync can use it: a single file, a sane piece
// length, and exactly one SHA-1 per piece.
func ParseTorrent(data []byte) (*Torrent, error) {
	mi, err := metainfo.Load(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a valid .torrent: %w", err)
	}
	t, err := fromMetaInfo(mi)
	if err != nil {
		return nil, err
	}
	var ext struct {
		ZsyncURL      string        `bencode:"zsync-url"`
		ZsyncInfo     bencode.Bytes `bencode:"zsync-info"`
		ZsyncInfoHash string        `bencode:"zsync-info-hash"`
	}
	// Ignore a malformed extension: the standard part decoded, and --zsync can say where to look.
	_ = bencode.Unmarshal(data, &ext)
	t.ZsyncURL = ext.ZsyncURL
	if len(ext.ZsyncInfo) > 0 && ext.ZsyncInfo[0] == 'd' {
		t.ZsyncInfo = ext.ZsyncInfo
		t.ZsyncInfoHash = sha1.Sum(t.ZsyncInfo)
	} else if len(ext.ZsyncInfoHash) == sha1.Size {
		copy(t.ZsyncInfoHash[:], ext.ZsyncInfoHash)
	}
	return t, nil
}

// fromMetaInfo checks that mi is a torrent pkgsync can use: a single file, a sane piece length,
// and exactly one SHA-1 per piece.
func fromMetaInfo(mi *metainfo.MetaInfo) (*Torrent, error) {
	if len(mi.InfoBytes) == 0 {
		return nil, errors.New("not a valid .torrent: no info dictionary")
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return nil, fmt.Errorf("not a valid .torrent: info dictionary: %w", err)
	}
	if len(info.Files) > 0 || info.Length <= 0 {
		return nil, errors.New("unsupported .torrent: pkgsync handles single-file torrents with a length > 0")
	}
	if info.PieceLength <= 0 || info.PieceLength > 1<<30 {
		return nil, fmt.Errorf("invalid .torrent: piece length %d", info.PieceLength)
	}
	want := (info.Length + info.PieceLength - 1) / info.PieceLength
	if int64(len(info.Pieces)) != want*sha1.Size {
		return nil, fmt.Errorf("invalid .torrent: %d bytes of piece hashes for %d pieces (want %d)", len(info.Pieces), want, want*sha1.Size)
	}
	return &Torrent{MetaInfo: mi, Info: info, InfoHash: mi.HashInfoBytes()}, nil
}

// Check reports whether t and z describe the same package as far as can be told without the
// data: length and, when both carry one, the file name. Piece and whole-file hashes are checked
// against the data later, when there is data.
func Check(t *Torrent, z *zsyncfile.File) error {
	if t.Info.Length != z.Length {
		return fmt.Errorf("%w: the torrent's length is %d bytes, the .zsync's %d", ErrMismatch, t.Info.Length, z.Length)
	}
	if z.Filename != "" && t.Info.Name != "" && z.Filename != t.Info.Name {
		return fmt.Errorf("%w: the torrent names %q, the .zsync %q", ErrMismatch, t.Info.Name, z.Filename)
	}
	return nil
}
