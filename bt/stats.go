package bt

import (
	"cmp"
	"slices"
)

// TorrentStat is what one torrent of a Node is doing now, for a seeder's metrics.
type TorrentStat struct {
	Name     string
	InfoHash [20]byte
	// Conns is the peer connections open now.
	Conns int
	// BytesUploaded is piece data sent to peers so far, range replies included (as
	// Stats.BytesUploaded).
	BytesUploaded int64
}

// TorrentStats returns a TorrentStat per torrent of the Node, by name then info hash. It is
// cheaper than Torrent.Stats, which also gathers every peer's counters.
func (n *Node) TorrentStats() []TorrentStat {
	n.mu.Lock()
	ts := make([]*Torrent, 0, len(n.torrents))
	for _, t := range n.torrents {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	out := make([]TorrentStat, 0, len(ts))
	for _, t := range ts {
		out = append(out, TorrentStat{Name: t.name, InfoHash: t.ih, Conns: t.NumConns(), BytesUploaded: t.uploaded() + t.rangeUp.Load() + t.fastUp.Load()})
	}
	slices.SortFunc(out, func(a, b TorrentStat) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(string(a.InfoHash[:]), string(b.InfoHash[:])))
	})
	return out
}
