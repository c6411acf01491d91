package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/originplan"
	"github.com/pkgsync/pkgsync/topology"
	"github.com/pkgsync/pkgsync/tracker"
)

const trackerSynopsis = `Usage: pkgsync tracker [flags]

Runs the embedded BitTorrent tracker: HTTP announce (compact peer lists, IPv4 and IPv6) at
/announce and scrape at /scrape. Each peer list is ordered by closeness to the asker: longest
common address prefix, or the same site per --topology. Every announce is logged as one JSON line
(peer, event, uploaded, downloaded, left) so that a run can be audited afterwards.

Who may join: --allow serves only connections from the networks given (the connection's address,
not the ip= an announce names); --secret-file refuses announces and scrapes whose URL does not
carry secret=TOKEN, TOKEN being the file's content. Give the tracker URL with the token to make
(pkgsync make --tracker 'http://tracker:6969/announce?secret=TOKEN'): BitTorrent clients announce
to the URL in the .torrent with their own parameters appended, so the token reaches the tracker.
Refused requests get a bencoded failure reason, which clients show, and a line in the log.
--origin-fetchers N names N origin fetchers per package (at most --max-peers), the first
announcers that still need data, in a "pkgsync" key of each answer that stock clients ignore:
pkgsync nodes leave the origin to those N and take the package from them, and agree on who
fetches what even when each sees only part of the swarm. 0 hands out no roles, as a stock
tracker: nodes then agree among themselves, which holds while every node sees every other.
GET /metrics gives announces by event and result, scrapes, and the swarms, live peers and seeders
held, for Prometheus (pkgsync_tracker_*).
With --tls-cert and --tls-key it serves https only (pkgsync update and seed verify it, with
--ca-file for a private CA).

Examples:
  pkgsync tracker --listen :6969 --topology sites.txt --announce-log /var/log/pkgsync-tracker.jsonl
  pkgsync tracker --allow 10.0.0.0/8,fd00::/8 --secret-file /etc/pkgsync/tracker-secret`

// trackerFlags are shared by `tracker` and `serve --tracker`.
type trackerFlags struct {
	topologyFn, logFn string
	interval          time.Duration
	quiet             bool
	allow             []string
	secretFn          string
	secret            string // read from secretFn by build
	maxPeers          int
	fetchers          int
}

func (t *trackerFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&t.topologyFn, "topology", "", "file mapping CIDRs to site names (\"10.1.0.0/16 dc1/rack3\" per line)")
	fs.StringVar(&t.logFn, "announce-log", "", "append the announce log (JSON lines) to this file (default: stderr)")
	fs.DurationVar(&t.interval, "announce-interval", 0, "announce interval handed to peers (default: the tracker's)")
	fs.BoolVar(&t.quiet, "quiet-announces", false, "do not log announces")
	fs.StringSliceVar(&t.allow, "allow", nil, "serve only connections from these networks (CIDR or address; repeatable or comma-separated)")
	fs.StringVar(&t.secretFn, "secret-file", "", "refuse announces whose URL does not carry secret=TOKEN, TOKEN being this file's content")
	fs.IntVar(&t.maxPeers, "max-peers", tracker.DefaultMaxPeers, "most peers in one announce reply, the closest first (a smaller numwant is honoured)")
	fs.IntVar(&t.fetchers, "origin-fetchers", originplan.DefaultFetchers, "origin fetchers named per package, at most --max-peers: the first announcers that need data fetch from the origin, the others from them (0: hand out no roles, as a stock tracker)")
}

// parseAllow reads --allow values: CIDRs with no bits set past the prefix length, or single
// addresses.
func parseAllow(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		v = strings.TrimSpace(v)
		var p netip.Prefix
		var err error
		if strings.Contains(v, "/") {
			p, err = netip.ParsePrefix(v)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(v); err == nil && a.Zone() != "" {
				return nil, fmt.Errorf("%w: --allow %q: an address with a zone cannot be matched", errUsage, v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("%w: --allow %q: want a CIDR such as 10.0.0.0/8 or an address", errUsage, v)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("%w: --allow %q: bits set past /%d (did you mean %v?)", errUsage, v, p.Bits(), p.Masked())
		}
		// Connections are checked by their unmapped address, so an IPv4-mapped range is kept in
		// IPv4 form (a masked IPv4-mapped prefix is at least /96: the ::ffff: part is all ones).
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p)
	}
	return out, nil
}

// readSecret reads the token of --secret-file: the file's content without surrounding white
// space, which must leave something.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--secret-file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("--secret-file %s: the file is empty; put the announce token in it", path)
	}
	return s, nil
}

// madeTrackers is what serve writes into the torrents it makes: its own /announce (""), with
// the secret when there is one, which needs the server's public URL.
func (t *trackerFlags) madeTrackers(publicURL string, autoMake bool) ([]string, error) {
	if t.secret == "" || !autoMake {
		return []string{""}, nil
	}
	if publicURL == "" {
		return nil, fmt.Errorf("%w: serve --tracker --secret-file writes the secret into the announce URL of the torrents it makes, and needs --public-url for that (or --no-make)", errUsage)
	}
	if !strings.HasSuffix(publicURL, "/") {
		publicURL += "/"
	}
	return []string{publicURL + "announce?" + tracker.SecretParam + "=" + url.QueryEscape(t.secret)}, nil
}

// build makes the tracker; the returned func closes its log file.
func (t *trackerFlags) build(stderr io.Writer) (*tracker.Tracker, func(), error) {
	if t.maxPeers < 1 {
		return nil, nil, fmt.Errorf("%w: --max-peers %d: want 1 or more", errUsage, t.maxPeers)
	}
	if t.fetchers < 0 {
		return nil, nil, fmt.Errorf("%w: --origin-fetchers %d: want 0 (no roles) or more", errUsage, t.fetchers)
	}
	opt := tracker.Options{Interval: t.interval, MaxPeers: t.maxPeers, OriginFetchers: t.fetchers}
	closeLog := func() {}
	var err error
	if opt.Allow, err = parseAllow(t.allow); err != nil {
		return nil, nil, err
	}
	if t.secretFn != "" {
		if t.secret, err = readSecret(t.secretFn); err != nil {
			return nil, nil, err
		}
		opt.Secret = t.secret
	}
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
	var stls serverTLS
	var lf logFlags
	fs.StringVar(&listen, "listen", ":6969", "HTTP listen address")
	tf.register(fs)
	stls.register(fs)
	lf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	notice, _, err := lf.loggers(stderr, false)
	if err != nil {
		return err
	}
	tlsConf, err := stls.config()
	if err != nil {
		return err
	}
	tr, closeLog, err := tf.build(stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	defer tr.Close()
	h, err := withMetrics(tr.Handler(), tr.Metrics())
	if err != nil {
		return err
	}
	ln, err := listenHTTP(listen, tlsConf != nil, notice, "tracker")
	if err != nil {
		return err
	}
	// Announces, nearly all of a tracker's requests, skip net/http's per-request work.
	lean := &origin.LeanRoute{Path: "/announce", Answer: tr.AnswerAnnounce}
	return serveListenerLean(ctx, ln, h, origin.DefaultLimits(), tlsConf, lean)
}
