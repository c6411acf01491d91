package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The results of a run, and of one package of a sync run.
const (
	Updated = "updated" // a new version was built, verified and put in place
	Current = "current" // the place already held the newest version
	Failed  = "failed"  // nothing was put in place
)

var results = [...]string{Updated, Current, Failed}

// Bytes is where a package's bytes came from.
type Bytes struct {
	Reused, Peers, Origin int64
}

// Update is one `pkgsync update` run, for its --metrics-file.
type Update struct {
	Output  string    // the output path: the run's identity from one run to the next
	Result  string    // Updated, Current or Failed
	Bytes   Bytes     // zero for a failed run
	Seconds float64   // the update itself, seeding afterwards left out
	End     time.Time // when the run ended
}

// Registry returns the run's metrics in a registry of their own, to be written with
// WriteTextfile.
func (u Update) Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bytes := newGaugeVec(reg, "pkgsync_update_bytes", "Bytes of the package by where the last update took them from: reused from old versions, from peers, from the origin.", "output", "source")
	setBytes(bytes, u.Bytes, u.Output)
	newGaugeVec(reg, "pkgsync_update_duration_seconds", "Duration of the last update, seeding afterwards left out.", "output").WithLabelValues(u.Output).Set(u.Seconds)
	setResult(newGaugeVec(reg, "pkgsync_update_result", "Result of the last update: 1 for its result (updated, current, failed), 0 for the others.", "output", "result"), u.Result, u.Output)
	newGaugeVec(reg, "pkgsync_update_last_run_timestamp_seconds", "When the last update ended, in seconds since the Unix epoch.", "output").WithLabelValues(u.Output).Set(unix(u.End))
	return reg
}

// Sync is one `pkgsync sync` run, for its --metrics-file.
type Sync struct {
	Dir      string // the folder kept current: the run's identity from one run to the next
	Result   string // Failed if any line (or the index) failed, else Updated if any line was updated, else Current
	Seconds  float64
	End      time.Time
	Packages []SyncPackage
}

// SyncPackage is what a sync run did with one package line.
type SyncPackage struct {
	Line    string // the package line: stable across versions, unlike the file name
	Result  string
	Bytes   Bytes
	Seconds float64
}

// Registry returns the run's metrics in a registry of their own, to be written with
// WriteTextfile.
func (s Sync) Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bytes := newGaugeVec(reg, "pkgsync_sync_bytes", "Bytes of each line's newest version by where the last sync took them from: reused from old versions, from peers, from the origin.", "dir", "line", "source")
	secs := newGaugeVec(reg, "pkgsync_sync_package_duration_seconds", "Duration of each line's update in the last sync.", "dir", "line")
	res := newGaugeVec(reg, "pkgsync_sync_package_result", "Result of each line in the last sync: 1 for its result (updated, current, failed), 0 for the others.", "dir", "line", "result")
	for _, p := range s.Packages {
		setBytes(bytes, p.Bytes, s.Dir, p.Line)
		secs.WithLabelValues(s.Dir, p.Line).Set(p.Seconds)
		setResult(res, p.Result, s.Dir, p.Line)
	}
	newGaugeVec(reg, "pkgsync_sync_duration_seconds", "Duration of the last sync run.", "dir").WithLabelValues(s.Dir).Set(s.Seconds)
	setResult(newGaugeVec(reg, "pkgsync_sync_result", "Result of the last sync run: 1 for its result (updated, current, failed), 0 for the others.", "dir", "result"), s.Result, s.Dir)
	newGaugeVec(reg, "pkgsync_sync_last_run_timestamp_seconds", "When the last sync ended, in seconds since the Unix epoch.", "dir").WithLabelValues(s.Dir).Set(unix(s.End))
	return reg
}

func newGaugeVec(reg *prometheus.Registry, name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	reg.MustRegister(g) // names are fixed and distinct: a failure is a bug here
	return g
}

// setBytes sets the three sources of b under the labels given before the source.
func setBytes(g *prometheus.GaugeVec, b Bytes, labels ...string) {
	for _, s := range [...]struct {
		source string
		n      int64
	}{{"reused", b.Reused}, {"peers", b.Peers}, {"origin", b.Origin}} {
		g.WithLabelValues(slices.Concat(labels, []string{s.source})...).Set(float64(s.n))
	}
}

// setResult sets result to 1 and the other results to 0, so that a query for any one of them
// finds a value.
func setResult(g *prometheus.GaugeVec, result string, labels ...string) {
	for _, r := range results {
		v := 0.0
		if r == result {
			v = 1
		}
		g.WithLabelValues(slices.Concat(labels, []string{r})...).Set(v)
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
