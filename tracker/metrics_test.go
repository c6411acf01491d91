package tracker

import (
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	anacrolixTracker "github.com/anacrolix/torrent/tracker"

	"github.com/pkgsync/pkgsync/metrics"
	"github.com/pkgsync/pkgsync/metrics/metricstest"
)

// newMetricsEnv is newEnv with the tracker's /metrics served beside /announce and /scrape, as
// `pkgsync tracker` serves them.
func newMetricsEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{clock: &fakeClock{now: time.Date(2026, 11, 24, 23, 49, 2, 0, time.UTC)}}
	opts.Now = e.clock.Now
	e.tr = New(opts)
	reg, err := metrics.NewRegistry(e.tr.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(metrics.Handle(e.tr.Handler(), reg))
	t.Cleanup(func() {
		e.srv.Close()
		e.tr.Close()
	})
	return e
}

type announceKey struct{ event, result string }

// checkTrackerMetrics scrapes e's /metrics and compares every announce counter with want (absent:
// 0) and the gauges with swarms, peers and seeders.
func checkTrackerMetrics(t *testing.T, e *env, step string, want map[announceKey]float64, swarms, peers, seeders float64) {
	t.Helper()
	fams := metricstest.Scrape(t, e.srv.URL+"/metrics")
	for _, ev := range []string{"started", "completed", "stopped", "paused", "none", "unknown"} {
		for _, res := range []string{"ok", "refused"} {
			got, ok := fams.Value("pkgsync_tracker_announces_total", "event", ev, "result", res)
			if w := want[announceKey{ev, res}]; !ok || got != w {
				t.Errorf("%s: announces{event=%s,result=%s} = %v (present %v), want %v", step, ev, res, got, ok, w)
			}
		}
	}
	for _, g := range []struct {
		name string
		want float64
	}{{"pkgsync_tracker_swarms", swarms}, {"pkgsync_tracker_peers", peers}, {"pkgsync_tracker_seeders", seeders}} {
		if got, ok := fams.Value(g.name); !ok || got != g.want {
			t.Errorf("%s: %s = %v (present %v), want %v", step, g.name, got, ok, g.want)
		}
	}
}

// TestMetrics announces to a tracker and reads its /metrics through the Prometheus text parser
// after each step: the announce counter of the step's event and result moves by one, and the
// swarm, peer and seeder gauges follow the tracker's state, expiry included.
func TestMetrics(t *testing.T) {
	e := newMetricsEnv(t, Options{Interval: 10 * time.Second}) // PeerTTL 30 s
	a, b := ihOf("metrics-a"), ihOf("metrics-b")
	want := map[announceKey]float64{}
	steps := []struct {
		name                   string
		do                     func()
		counted                announceKey
		swarms, peers, seeders float64
	}{
		{"a leecher starts", func() {
			e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.1", port: 1, left: 10, event: anacrolixTracker.Started})
		}, announceKey{"started", "ok"}, 1, 1, 0},
		{"a seeder re-announces in another swarm", func() {
			e.announce(t, clientAnnounce{ih: b, ip: "10.0.0.2", port: 2, left: 0})
		}, announceKey{"none", "ok"}, 2, 2, 1},
		{"a second leecher joins", func() {
			e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.3", port: 3, left: 10, event: anacrolixTracker.Started})
		}, announceKey{"started", "ok"}, 2, 3, 1},
		{"the first leecher completes", func() {
			e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.1", port: 1, left: 0, event: anacrolixTracker.Completed})
		}, announceKey{"completed", "ok"}, 2, 3, 2},
		{"a pause", func() {
			e.rawGet(t, "/announce", announceQuery(a, "10.0.0.3:3", 3, "event", "paused", "ip", "10.0.0.3"))
		}, announceKey{"paused", "ok"}, 2, 3, 2},
		{"a started announce without a port", func() {
			e.rawGet(t, "/announce", announceQuery(a, "x", 0, "event", "started"))
		}, announceKey{"started", "refused"}, 2, 3, 2},
		{"an event no client sends", func() {
			e.rawGet(t, "/announce", announceQuery(a, "y", 9, "event", "bogus"))
		}, announceKey{"unknown", "refused"}, 2, 3, 2},
		{"the second leecher stops", func() {
			e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.3", port: 3, left: 10, event: anacrolixTracker.Stopped})
		}, announceKey{"stopped", "ok"}, 2, 2, 2},
		{"every peer falls silent past the TTL", func() { e.clock.Advance(30 * time.Second) }, announceKey{}, 0, 0, 0},
	}
	for _, s := range steps {
		s.do()
		if s.counted != (announceKey{}) {
			want[s.counted]++
		}
		checkTrackerMetrics(t, e, s.name, want, s.swarms, s.peers, s.seeders)
	}

	// Scrapes, served and refused.
	e.rawGet(t, "/scrape", url.Values{"info_hash": {string(a[:])}})
	e.rawGet(t, "/scrape", url.Values{"info_hash": {"short"}})
	e.rawGet(t, "/scrape", nil)
	fams := metricstest.Scrape(t, e.srv.URL+"/metrics")
	if ok, refused := fams.Get("pkgsync_tracker_scrapes_total", "result", "ok"), fams.Get("pkgsync_tracker_scrapes_total", "result", "refused"); ok != 2 || refused != 1 {
		t.Errorf("scrapes: ok %v, refused %v; want 2 and 1", ok, refused)
	}
}

// TestMetricsRefusedUnread checks that an announce refused before its query is read (its
// connection comes from outside --allow) counts under event "unknown".
func TestMetricsRefusedUnread(t *testing.T) {
	e := newMetricsEnv(t, Options{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	e.rawGet(t, "/announce", announceQuery(ihOf("x"), "x", 1, "event", "started"))
	checkTrackerMetrics(t, e, "refused by --allow", map[announceKey]float64{{"unknown", "refused"}: 1}, 0, 0, 0)
}
