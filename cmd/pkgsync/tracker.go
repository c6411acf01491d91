package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/topology"
	"github.com/pkgsync/pkgsync/tracker"
)

const trackerSynopsis = `Usage: pkgsync tracker [flags]

Runs the embedded BitTorrent tracker: HTTP announce (compact peer lists, IPv4 and IPv6) at
/announce and scrape at /scrape. Each peer list is ordered by closeness to the asker: longest
common address prefix, or the same site per --topology. Every announce is logged as one JSON line
(peer, event, uploaded, downloaded, left) so that a run can be audited afterwards.

Example:
  pkgsync tracker --listen :6969 --topology sites.txt --announce-log /var/log/pkgsync-tracker.jsonl`

// trackerFlags are shared by `tracker` and `serve --tracker`.
type trackerFlags struct {
	topologyFn, logFn string
	interval          time.Duration
	quiet             bool
}

func (t *trackerFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&t.topologyFn, "topology", "", "file mapping CIDRs to site names (\"10.1.0.0/16 dc1/rack3\" per line)")
	fs.StringVar(&t.logFn, "announce-log", "", "append the announce log (JSON lines) to this file (default: stderr)")
	fs.DurationVar(&t.interval, "announce-interval", 0, "announce interval handed to peers (default: the tracker's)")
	fs.BoolVar(&t.quiet, "quiet-announces", false, "do not log announces")
}

// build makes the tracker; the returned func closes its log file.
func (t *trackerFlags) build(stderr io.Writer) (*tracker.Tracker, func(), error) {
	opt := tracker.Options{Interval: t.interval}
	closeLog := func() {}
	if t.topologyFn != "" {
		m, err := topology.Load(t.topologyFn)
		if err != nil {
			return nil, nil, err
		}
		opt.Topology = m
	}
	switch {
	case t.quiet:
	case t.logFn != "":
		f, err := os.OpenFile(t.logFn, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("announce log: %w", err)
		}
		opt.Log = f
		closeLog = func() { f.Close() }
	default:
		opt.Log = stderr
	}
	return tracker.New(opt), closeLog, nil
}

func runTracker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tracker", trackerSynopsis, stdout)
	var listen string
	var tf trackerFlags
	fs.StringVar(&listen, "listen", ":6969", "HTTP listen address")
	tf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	tr, closeLog, err := tf.build(stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	defer tr.Close()
	return serveHTTP(ctx, listen, tr.Handler(), stderr, "tracker")
}
