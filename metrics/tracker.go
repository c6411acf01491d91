package metrics

import "github.com/prometheus/client_golang/prometheus"

// The event label values of announces: BitTorrent's events, "none" for a regular re-announce,
// and "unknown" for an announce whose event could not be read (a query that was refused before
// it was read, or an event no client sends).
var announceEvents = [...]string{"started", "completed", "stopped", "paused", "none", "unknown"}

// EventUnknown is the event to pass to Tracker.Announce for an announce whose query was not read.
const EventUnknown = "unknown"

// TrackerState is what a tracker holds now: swarms with at least one live peer, their live
// peers, and the seeders among those.
type TrackerState struct {
	Swarms, Peers, Seeders int
}

// Tracker counts a tracker's announces and scrapes and reports the size of its swarms. It is a
// prometheus.Collector; its methods may be called from several goroutines.
type Tracker struct {
	// announces holds a counter per event and result, resolved once: an announce costs an
	// atomic add, not a label lookup (the tracker serves thousands of announces a second).
	announces [len(announceEvents)][2]prometheus.Counter
	vec       *prometheus.CounterVec
	scrapes   [2]prometheus.Counter
	scrapeVec *prometheus.CounterVec

	state                  func() TrackerState
	swarms, peers, seeders *prometheus.Desc
}

// NewTracker returns a Tracker whose gauges read state at each collection.
func NewTracker(state func() TrackerState) *Tracker {
	t := &Tracker{
		vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pkgsync_tracker_announces_total",
			Help: "Announces the tracker answered, by event (started, completed, stopped, paused, none for a regular re-announce, unknown) and result (ok, or refused with a failure reason).",
		}, []string{"event", "result"}),
		scrapeVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pkgsync_tracker_scrapes_total",
			Help: "Scrapes the tracker answered, by result (ok, refused).",
		}, []string{"result"}),
		state:   state,
		swarms:  prometheus.NewDesc("pkgsync_tracker_swarms", "Torrents with at least one live peer.", nil, nil),
		peers:   prometheus.NewDesc("pkgsync_tracker_peers", "Live peers over all torrents (announced within the peer TTL).", nil, nil),
		seeders: prometheus.NewDesc("pkgsync_tracker_seeders", "Live peers that hold the whole torrent (left=0).", nil, nil),
	}
	for i, ev := range announceEvents {
		for j, res := range [...]string{"refused", "ok"} {
			t.announces[i][j] = t.vec.WithLabelValues(ev, res)
		}
	}
	for j, res := range [...]string{"refused", "ok"} {
		t.scrapes[j] = t.scrapeVec.WithLabelValues(res)
	}
	return t
}

// Announce counts an answered announce: its event as the client sent it ("" for a regular
// re-announce, EventUnknown when the query was not read) and whether it was served.
func (t *Tracker) Announce(event string, ok bool) {
	i := len(announceEvents) - 1 // unknown
	switch event {
	case "started":
		i = 0
	case "completed":
		i = 1
	case "stopped":
		i = 2
	case "paused":
		i = 3
	case "":
		i = 4
	}
	t.announces[i][b2i(ok)].Inc()
}

// Scrape counts an answered scrape.
func (t *Tracker) Scrape(ok bool) { t.scrapes[b2i(ok)].Inc() }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Describe implements prometheus.Collector.
func (t *Tracker) Describe(ch chan<- *prometheus.Desc) {
	t.vec.Describe(ch)
	t.scrapeVec.Describe(ch)
	ch <- t.swarms
	ch <- t.peers
	ch <- t.seeders
}

// Collect implements prometheus.Collector.
func (t *Tracker) Collect(ch chan<- prometheus.Metric) {
	t.vec.Collect(ch)
	t.scrapeVec.Collect(ch)
	st := t.state()
	ch <- prometheus.MustNewConstMetric(t.swarms, prometheus.GaugeValue, float64(st.Swarms))
	ch <- prometheus.MustNewConstMetric(t.peers, prometheus.GaugeValue, float64(st.Peers))
	ch <- prometheus.MustNewConstMetric(t.seeders, prometheus.GaugeValue, float64(st.Seeders))
}
