package metrics

import "github.com/prometheus/client_golang/prometheus"

// SeedTorrent is what a seeding node reports of one torrent.
type SeedTorrent struct {
	Name     string // the torrent's name
	InfoHash string // hex; keeps apart two torrents of the same name
	Peers    int    // connected now
	Uploaded int64  // piece data sent to peers so far
}

// Seed reports what `pkgsync seed` serves. It is a prometheus.Collector.
type Seed struct {
	torrents              func() []SeedTorrent
	count, peers, uploads *prometheus.Desc
}

// NewSeed returns a Seed that reads torrents at each collection. Its labels are bounded by the
// torrents given to seed, which are fixed for the process's life.
func NewSeed(torrents func() []SeedTorrent) *Seed {
	labels := []string{"package", "info_hash"}
	return &Seed{
		torrents: torrents,
		count:    prometheus.NewDesc("pkgsync_seed_torrents", "Torrents seeded (packages and their .zsync).", nil, nil),
		peers:    prometheus.NewDesc("pkgsync_seed_peers", "Peers connected now, per torrent.", labels, nil),
		uploads:  prometheus.NewDesc("pkgsync_seed_uploaded_bytes_total", "Piece data sent to peers, per torrent.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (s *Seed) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.count
	ch <- s.peers
	ch <- s.uploads
}

// Collect implements prometheus.Collector.
func (s *Seed) Collect(ch chan<- prometheus.Metric) {
	ts := s.torrents()
	ch <- prometheus.MustNewConstMetric(s.count, prometheus.GaugeValue, float64(len(ts)))
	for _, t := range ts {
		ch <- prometheus.MustNewConstMetric(s.peers, prometheus.GaugeValue, float64(t.Peers), t.Name, t.InfoHash)
		ch <- prometheus.MustNewConstMetric(s.uploads, prometheus.CounterValue, float64(t.Uploaded), t.Name, t.InfoHash)
	}
}
