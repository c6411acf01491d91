package metrics

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pkgsync/pkgsync/metrics/metricstest"
)

func TestFileLabels(t *testing.T) {
	tests := []struct{ file, pkg, kind string }{
		{"app-1.0.tar", "app-1.0.tar", "data"},
		{"app-1.0.tar.torrent", "app-1.0.tar", "torrent"},
		{"app-1.0.tar.zsync", "app-1.0.tar", "zsync"},
		{"app-1.0.tar.sig", "app-1.0.tar", "sig"},
		{"sub/db.img.torrent", "sub/db.img", "torrent"},
		{"index.json", "", "index"},
		{"sub/index.json", "sub/index.json", "data"},
		{".torrent", ".torrent", "data"}, // no package name before the suffix
		{"", "", ""},
	}
	for _, tt := range tests {
		if pkg, kind := FileLabels(tt.file); pkg != tt.pkg || kind != tt.kind {
			t.Errorf("FileLabels(%q) = %q, %q; want %q, %q", tt.file, pkg, kind, tt.pkg, tt.kind)
		}
	}
}

// TestOriginBoundsPackages serves more distinct files than maxPackages: the ones past the bound
// count under package="", and nothing is lost from the totals.
func TestOriginBoundsPackages(t *testing.T) {
	o := NewOrigin()
	n := maxPackages + 50
	for i := range n {
		o.Served("GET", 200, fmt.Sprintf("p%d.tar", i), 10)
	}
	o.Served("GET", 200, "p0.tar", 5) // a package already labelled keeps its label
	o.Served("PROPFIND", 405, "", 3)
	fams := gather(t, o)
	// maxPackages packages, the package="" of those past the bound, and the 405's.
	if got := len(fams["pkgsync_origin_sent_bytes_total"].GetMetric()); got != maxPackages+2 {
		t.Errorf("%d sent-bytes series, want %d", got, maxPackages+2)
	}
	if got := fams.Get("pkgsync_origin_sent_bytes_total", "package", "", "kind", "data", "status", "200"); got != 50*10 {
		t.Errorf("past the bound: package=\"\" counted %v bytes, want %d", got, 50*10)
	}
	if got := fams.Get("pkgsync_origin_sent_bytes_total", "package", "p0.tar", "kind", "data", "status", "200"); got != 15 {
		t.Errorf("p0.tar counted %v bytes, want 15", got)
	}
	if got := fams.Get("pkgsync_origin_requests_total", "method", "GET", "status", "200"); got != float64(n+1) {
		t.Errorf("GET 200 requests %v, want %d", got, n+1)
	}
	if got := fams.Get("pkgsync_origin_requests_total", "method", "other", "status", "405"); got != 1 {
		t.Errorf("PROPFIND counted as method other %v times, want 1", got)
	}
}

func TestTrackerEvents(t *testing.T) {
	tr := NewTracker(func() TrackerState { return TrackerState{Swarms: 2, Peers: 5, Seeders: 3} })
	for _, ev := range []string{"started", "completed", "stopped", "paused", "", "bogus", EventUnknown} {
		tr.Announce(ev, true)
	}
	tr.Announce("started", false)
	tr.Scrape(true)
	fams := gather(t, tr)
	for _, c := range []struct {
		event, result string
		want          float64
	}{{"started", "ok", 1}, {"started", "refused", 1}, {"none", "ok", 1}, {"unknown", "ok", 2}, {"paused", "refused", 0}} {
		if got, ok := fams.Value("pkgsync_tracker_announces_total", "event", c.event, "result", c.result); !ok || got != c.want {
			t.Errorf("announces{%s,%s} = %v (present %v), want %v", c.event, c.result, got, ok, c.want)
		}
	}
	if n := len(fams["pkgsync_tracker_announces_total"].GetMetric()); n != 12 {
		t.Errorf("%d announce series, want 12 (6 events x 2 results)", n)
	}
	for name, want := range map[string]float64{"pkgsync_tracker_swarms": 2, "pkgsync_tracker_peers": 5, "pkgsync_tracker_seeders": 3} {
		if got := fams.Get(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestSeedCollector(t *testing.T) {
	s := NewSeed(func() []SeedTorrent {
		return []SeedTorrent{{"pkg.tar", "aa", 3, 1000}, {"pkg.tar", "bb", 0, 7}, {"pkg.tar.zsync", "cc", 1, 20}}
	})
	fams := gather(t, s)
	if got := fams.Get("pkgsync_seed_torrents"); got != 3 {
		t.Errorf("torrents %v, want 3", got)
	}
	if got := fams.Get("pkgsync_seed_peers", "package", "pkg.tar", "info_hash", "aa"); got != 3 {
		t.Errorf("peers of pkg.tar aa %v, want 3", got)
	}
	if got := fams.Get("pkgsync_seed_uploaded_bytes_total", "package", "pkg.tar", "info_hash", "bb"); got != 7 {
		t.Errorf("uploaded of pkg.tar bb %v, want 7", got)
	}
	if typ := fams["pkgsync_seed_uploaded_bytes_total"].GetType(); typ != dto.MetricType_COUNTER {
		t.Errorf("uploaded bytes is a %v, want a counter", typ)
	}
}

// gather collects c through a registry, written in the text format and parsed back.
func gather(t *testing.T, c prometheus.Collector) metricstest.Families {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return readBack(t, reg)
}

// readBack writes what g gathers in the text format and parses it back.
func readBack(t *testing.T, g prometheus.Gatherer) metricstest.Families {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.prom")
	if err := WriteTextfile(path, g); err != nil {
		t.Fatal(err)
	}
	return metricstest.ReadFile(t, path)
}

// TestWriteTextfile checks the textfile contract of node_exporter: the file is replaced whole,
// readable by all, and no temporary file is left beside it, also when gathering fails.
func TestWriteTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pkgsync.prom")
	end := time.Date(2026, 12, 6, 22, 0, 0, 500e6, time.UTC)
	u := Update{Output: "/srv/app.tar", Result: Updated, Bytes: Bytes{Reused: 900, Peers: 60, Origin: 40}, Seconds: 1.5, End: end}
	if err := WriteTextfile(path, u.Registry()); err != nil {
		t.Fatal(err)
	}
	u.Result, u.Bytes, u.Seconds = Current, Bytes{Reused: 1000}, 0.25
	if err := WriteTextfile(path, u.Registry()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("%s has mode %v, want 0644 so that node_exporter can read it", path, st.Mode().Perm())
	}
	fams := metricstest.ReadFile(t, path)
	out := []string{"output", "/srv/app.tar"}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pkgsync_update_bytes", append(out, "source", "reused"), 1000},
		{"pkgsync_update_bytes", append(out, "source", "peers"), 0},
		{"pkgsync_update_bytes", append(out, "source", "origin"), 0},
		{"pkgsync_update_duration_seconds", out, 0.25},
		{"pkgsync_update_result", append(out, "result", "current"), 1},
		{"pkgsync_update_result", append(out, "result", "updated"), 0},
		{"pkgsync_update_result", append(out, "result", "failed"), 0},
		{"pkgsync_update_last_run_timestamp_seconds", out, 1796594400.5},
	}
	for _, c := range checks {
		if got, ok := fams.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%q = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}

	failing := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, errors.New("collector broke") })
	if err := WriteTextfile(path, failing); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteTextfile with a failing gatherer: %v, want an error naming %s", err, path)
	}
	if got := metricstest.ReadFile(t, path); got.Get("pkgsync_update_duration_seconds", out...) != 0.25 {
		t.Errorf("a failed write changed the file")
	}
	if err := WriteTextfile(filepath.Join(dir, "none", "x.prom"), u.Registry()); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "none")) {
		t.Errorf("WriteTextfile into a missing folder: %v, want an error naming it", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %q, want only pkgsync.prom", dir, names)
	}
}

func TestSyncRegistry(t *testing.T) {
	s := Sync{Dir: "/srv/pkgs", Result: Failed, Seconds: 3, End: time.Unix(1700000000, 0), Packages: []SyncPackage{
		{Line: "app", Result: Updated, Bytes: Bytes{Reused: 10, Peers: 20, Origin: 30}, Seconds: 2},
		{Line: "db", Result: Failed},
	}}
	fams := readBack(t, s.Registry())
	d := []string{"dir", "/srv/pkgs"}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pkgsync_sync_bytes", append(d, "line", "app", "source", "origin"), 30},
		{"pkgsync_sync_bytes", append(d, "line", "db", "source", "reused"), 0},
		{"pkgsync_sync_package_duration_seconds", append(d, "line", "app"), 2},
		{"pkgsync_sync_package_result", append(d, "line", "app", "result", "updated"), 1},
		{"pkgsync_sync_package_result", append(d, "line", "db", "result", "failed"), 1},
		{"pkgsync_sync_package_result", append(d, "line", "db", "result", "current"), 0},
		{"pkgsync_sync_duration_seconds", d, 3},
		{"pkgsync_sync_result", append(d, "result", "failed"), 1},
		{"pkgsync_sync_last_run_timestamp_seconds", d, 1700000000},
	}
	for _, c := range checks {
		if got, ok := fams.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%q = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}
