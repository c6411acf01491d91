package manifest

import (
	"crypto/sha1"
	"fmt"
	"math/bits"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

// The .zsync as a torrent of its own. Every node that updates from an old version needs the
// whole .zsync before it can scan, and it grows with the package (about 6 bytes per 2 KiB
// block: 30 MB for a 10 GB package). Fetched from the origin by every node, it would cost the
// origin more than the changed bytes of a small update. So `pkgsync make` also describes the
// .zsync as a single-file torrent and puts that info dictionary in the package's .torrent
// under "zsync-info" (outside "info": the package's info hash and stock clients are
// unaffected). Nodes then trade the .zsync among themselves like any package, with the
// .zsync's URL as its origin, and its piece hashes come from the trusted .torrent.

// zsyncPieceTarget is how many pieces the .zsync is cut into, at most: enough for many nodes
// to split the origin's share, few enough to keep the piece list small.
const zsyncPieceTarget = 256

// ZsyncPieceLength returns the piece length of the .zsync's torrent for a .zsync of n bytes: a
// power of two from 16 KiB to 4 MiB giving at most zsyncPieceTarget pieces where it can.
func ZsyncPieceLength(n int64) int64 {
	want := (n + zsyncPieceTarget - 1) / zsyncPieceTarget
	pl := int64(16 << 10)
	if want > pl {
		pl = 1 << bits.Len64(uint64(want-1))
	}
	return min(pl, 4<<20)
}

// ZsyncInfo returns the bencoded info dictionary of the .zsync named name with content data.
func ZsyncInfo(name string, data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("zsync-info of %s: empty .zsync", name)
	}
	pl := ZsyncPieceLength(int64(len(data)))
	var pieces []byte
	for off := int64(0); off < int64(len(data)); off += pl {
		s := sha1.Sum(data[off:min(off+pl, int64(len(data)))])
		pieces = append(pieces, s[:]...)
	}
	b, err := bencode.Marshal(metainfo.Info{Name: name, Length: int64(len(data)), PieceLength: pl, Pieces: pieces})
	if err != nil {
		return nil, fmt.Errorf("zsync-info of %s: %w", name, err)
	}
	return b, nil
}

// ZsyncTorrent returns the .zsync's own torrent, from t's "zsync-info": t's trackers, and
// zsyncURL (where the .zsync is on the origin; "" for none) as its web seed. It returns nil
// and no error when t has no "zsync-info", and an error when it is malformed.
func (t *Torrent) ZsyncTorrent(zsyncURL string) (*Torrent, error) {
	if len(t.ZsyncInfo) == 0 {
		return nil, nil
	}
	mi := &metainfo.MetaInfo{
		InfoBytes:    t.ZsyncInfo,
		Announce:     t.MetaInfo.Announce,
		AnnounceList: t.MetaInfo.AnnounceList,
	}
	if zsyncURL != "" {
		mi.UrlList = []string{zsyncURL}
	}
	zt, err := fromMetaInfo(mi)
	if err != nil {
		return nil, fmt.Errorf("zsync-info: %w", err)
	}
	return zt, nil
}
