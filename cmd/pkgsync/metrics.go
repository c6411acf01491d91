package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/dirsync"
	"github.com/pkgsync/pkgsync/metrics"
	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/updater"
)

// withMetrics serves the Prometheus metrics of cs (and of the process) at /metrics, and every
// other request with h.
func withMetrics(h http.Handler, cs ...prometheus.Collector) (http.Handler, error) {
	reg, err := metrics.NewRegistry(cs...)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return metrics.Handle(h, reg), nil
}

// seedMetrics is seed's --metrics-addr: a listener taken at start-up, so that a busy address
// fails the command before it verifies packages, served once the node runs.
type seedMetrics struct {
	addr   string
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{} // closed when the server has stopped; err says why
	err    error
}

func (m *seedMetrics) register(fs *pflag.FlagSet) {
	fs.StringVar(&m.addr, "metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics (torrents seeded, connected peers, bytes uploaded per package)")
}

// listen takes the address, if one was given.
func (m *seedMetrics) listen(log *slog.Logger) error {
	if m.addr == "" {
		return nil
	}
	ln, err := listenHTTP(m.addr, false, log, "metrics")
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	m.ln = ln
	return nil
}

// serve serves the metrics of node until ctx ends or close is called. Without --metrics-addr it
// does nothing.
func (m *seedMetrics) serve(ctx context.Context, node *bt.Node) error {
	if m.ln == nil {
		return nil
	}
	seed := metrics.NewSeed(func() []metrics.SeedTorrent {
		var out []metrics.SeedTorrent
		for _, t := range node.TorrentStats() {
			out = append(out, metrics.SeedTorrent{Name: t.Name, InfoHash: hex.EncodeToString(t.InfoHash[:]), Peers: t.Conns, Uploaded: t.BytesUploaded})
		}
		return out
	})
	h, err := withMetrics(http.NotFoundHandler(), seed)
	if err != nil {
		return err
	}
	ctx, m.cancel = context.WithCancel(ctx)
	m.done = make(chan struct{})
	go func() {
		m.err = serveListener(ctx, m.ln, h, origin.DefaultLimits(), nil)
		close(m.done)
	}()
	return nil
}

// stopped is closed when the metrics server stopped on its own (m.err says why); nil, which
// never fires, when there is none.
func (m *seedMetrics) stopped() <-chan struct{} { return m.done }

// close stops the server and waits for it, or closes a listener never served.
func (m *seedMetrics) close() {
	switch {
	case m.cancel != nil:
		m.cancel()
		<-m.done
	case m.ln != nil:
		m.ln.Close()
	}
}

// metricsFile is --metrics-file of update and sync.
type metricsFile struct{ path string }

func (m *metricsFile) register(fs *pflag.FlagSet, what string) {
	fs.StringVar(&m.path, "metrics-file", "", "after the run, write its metrics ("+what+") to this file for node_exporter's textfile collector (a NAME.prom in its --collector.textfile.directory), replacing it atomically")
}

// check fails early when the file's folder is missing, before a long run that could not
// report.
func (m *metricsFile) check() error {
	if m.path == "" {
		return nil
	}
	dir := filepath.Dir(m.path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--metrics-file %s: the folder %s does not exist", m.path, dir)
	}
	return nil
}

// writeUpdate writes the metrics of an update run that ended with res and runErr, started at
// start. A run that found OUT locked writes nothing: the file is the holder's to write.
func (m *metricsFile) writeUpdate(opt updater.Options, res *updater.Result, runErr error, start time.Time) error {
	if m.path == "" || errors.As(runErr, new(*updater.LockedError)) {
		return nil
	}
	u := metrics.Update{Output: updateOutput(opt, res), Result: metrics.Failed, Seconds: time.Since(start).Seconds(), End: time.Now()}
	if runErr == nil && res != nil {
		u.Result, u.Seconds = metrics.Updated, res.Seconds
		if res.UpToDate {
			u.Result = metrics.Current
		}
		u.Bytes = metrics.Bytes{Reused: res.BytesReused, Peers: res.BytesFromPeers, Origin: res.BytesFromOrigin}
	}
	return m.write(u.Registry())
}

// updateOutput is the output label of an update: the absolute path of OUT, or when the run
// failed before it knew OUT, of what it would have been (-o, else the SOURCE's file name without
// .torrent or .zsync in the current folder).
func updateOutput(opt updater.Options, res *updater.Result) string {
	out := opt.Out
	if res != nil && res.Output != "" {
		out = res.Output
	}
	if out == "" {
		src := opt.Source
		if i := strings.IndexAny(src, "?#"); strings.Contains(src, "://") && i >= 0 {
			src = src[:i]
		}
		out = strings.TrimSuffix(strings.TrimSuffix(path.Base(filepath.ToSlash(src)), ".torrent"), ".zsync")
	}
	if abs, err := filepath.Abs(out); err == nil {
		out = abs
	}
	return out
}

// writeSync writes the metrics of a sync run of dir that ended with res and runErr, started at
// start. A run that found the folder locked writes nothing: the file is the holder's to write.
func (m *metricsFile) writeSync(dir string, res *dirsync.Result, runErr error, start time.Time) error {
	if m.path == "" || errors.As(runErr, new(*updater.LockedError)) {
		return nil
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	s := metrics.Sync{Dir: dir, Result: metrics.Failed, Seconds: time.Since(start).Seconds(), End: time.Now()}
	if runErr == nil && res != nil {
		s.Seconds = res.Seconds
		updated, _, failed := res.Counts()
		switch {
		case failed > 0:
		case updated > 0:
			s.Result = metrics.Updated
		default:
			s.Result = metrics.Current
		}
		for _, p := range res.Packages {
			sp := metrics.SyncPackage{Line: p.Line, Result: syncResults[p.Status]}
			if u := p.Update; u != nil {
				sp.Bytes = metrics.Bytes{Reused: u.BytesReused, Peers: u.BytesFromPeers, Origin: u.BytesFromOrigin}
				sp.Seconds = u.Seconds
			}
			s.Packages = append(s.Packages, sp)
		}
	}
	return m.write(s.Registry())
}

var syncResults = map[dirsync.Status]string{dirsync.Updated: metrics.Updated, dirsync.Current: metrics.Current, dirsync.Failed: metrics.Failed}

func (m *metricsFile) write(g prometheus.Gatherer) error {
	if err := metrics.WriteTextfile(m.path, g); err != nil {
		return fmt.Errorf("--metrics-file: %w", err)
	}
	return nil
}
