package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/store"
)

const serveSynopsis = `Usage: pkgsync serve DIR|STORE-URL [flags]

Serves the files in DIR over HTTP as an origin: byte ranges, multi-range requests, If-Range and
strong ETags, so that it works as a BEP 19 web seed and a zsync server. With --tracker it also
runs the embedded BitTorrent tracker at /announce and /scrape. When a client asks for PKG.torrent
or PKG.zsync and PKG exists without them (or they are older than PKG), they are made on the spot,
pointing at this server. Paths that escape DIR (.., encoded or not, absolute paths, symbolic
links that lead out) are refused. GET /.pkgsync/stats returns the requests served and body bytes
sent, as JSON; GET /metrics the same and the tracker's announces, swarms, peers and seeders for
Prometheus (pkgsync_origin_*, pkgsync_tracker_*). With --tls-cert and --tls-key it serves https only, the tracker included, and the
torrents it makes name https URLs.

Slow or idle clients cost a connection for seconds, not forever: --header-timeout for a request's
header (and body), --idle-timeout between requests, --send-timeout for a client that takes no byte
of its reply (it starts again with every byte taken, so slow downloads of any size go on). Beyond
--max-conns connections an idle one is closed to make room, or the new one is answered 503 with
Retry-After.

Instead of DIR, serve can front a folder of a package store (webhdfs://NAMENODE:PORT/PATH,
s3://BUCKET/PREFIX): nodes get the packages over plain HTTP ranges from this server and need no
store credentials. Manifests made on request are put beside the package in the store; when the
store refuses them they are kept in --cache-dir.

Examples:
  pkgsync serve /srv/pkgs --listen :8080 --tracker
  pkgsync serve webhdfs://nn.dc1:9870/pkgs --public-url http://origin.dc1:8080/ --tracker
  pkgsync serve /srv/pkgs --public-url http://origin.dc1:8080/ --tracker --topology sites.txt`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", serveSynopsis, stdout)
	var (
		listen, publicURL, logFile string
		cacheDir                   string
		withTracker, noMake        bool
		verbose                    bool
		lf                         logFlags
		tf                         trackerFlags
		stls                       serverTLS
		opt                        origin.Options
		lim                        = origin.DefaultLimits()
		trackerMetrics             []prometheus.Collector
	)
	fs.StringVar(&listen, "listen", ":8080", "HTTP listen address")
	fs.StringVar(&publicURL, "public-url", "", "base URL clients reach this server at (default: from each request's Host)")
	fs.BoolVar(&withTracker, "tracker", false, "also run the embedded tracker at /announce and /scrape, and name it in made torrents")
	fs.BoolVar(&noMake, "no-make", false, "do not make missing .torrent/.zsync files on request")
	fs.Int64Var(&opt.Make.PieceSize, "piece-size", 0, "piece size for made torrents (default: from the file size)")
	fs.IntVar(&opt.Make.BlockSize, "block-size", 0, "zsync block size for made .zsync files (default: as zsyncmake)")
	tf.register(fs)
	stls.register(fs)
	fs.StringVar(&logFile, "access-log", "", "append one line per request to this file (the format pkgsync report reads)")
	fs.StringVar(&cacheDir, "cache-dir", "", "with a STORE-URL: keep the manifests the store does not take here (default: the user's cache folder)")
	fs.BoolVarP(&verbose, "verbose", "v", false, "log requests on stderr")
	lf.register(fs)
	fs.DurationVar(&lim.HeaderTimeout, "header-timeout", lim.HeaderTimeout, "drop a client that takes longer to send a request's header (and body)")
	fs.DurationVar(&lim.IdleTimeout, "idle-timeout", lim.IdleTimeout, "close a keep-alive connection idle for longer")
	fs.DurationVar(&lim.SendTimeout, "send-timeout", lim.SendTimeout, "drop a client that takes no byte of its reply for longer (a slow download that moves goes on)")
	fs.IntVar(&lim.MaxConns, "max-conns", lim.MaxConns, "HTTP connections served at once; beyond, an idle one is closed or the new one gets a 503")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one DIR or STORE-URL, got %d arguments", errUsage, fs.NArg())
	}
	if lim.HeaderTimeout <= 0 || lim.IdleTimeout <= 0 || lim.SendTimeout <= 0 || lim.MaxConns <= 0 {
		return fmt.Errorf("%w: --header-timeout, --idle-timeout, --send-timeout and --max-conns must be positive", errUsage)
	}
	notice, vlog, err := lf.loggers(stderr, verbose)
	if err != nil {
		return err
	}
	tlsConf, err := stls.config()
	if err != nil {
		return err
	}
	opt.AutoMake = !noMake
	opt.PublicURL = publicURL
	opt.Log = vlog
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		defer f.Close()
		opt.AccessLog = f
	}
	if withTracker {
		tr, closeLog, err := tf.build(stderr)
		if err != nil {
			return err
		}
		defer closeLog()
		defer tr.Close()
		opt.Tracker = tr.Handler()
		trackerMetrics = append(trackerMetrics, tr.Metrics())
		// This server's /announce, with the secret of --secret-file when there is one.
		if opt.Trackers, err = tf.madeTrackers(publicURL, !noMake); err != nil {
			return err
		}
	}
	srv, err := newOrigin(ctx, fs.Arg(0), opt, cacheDir)
	if err != nil {
		return err
	}
	defer srv.Close()
	h, err := withMetrics(srv, append(trackerMetrics, srv.Metrics())...)
	if err != nil {
		return err
	}
	return serveLimited(ctx, listen, h, lim, tlsConf, notice, "origin for "+store.Redact(fs.Arg(0)))
}

// serveHTTP serves h on addr under origin.DefaultLimits until ctx ends, then shuts down
// gracefully.
func serveHTTP(ctx context.Context, addr string, h http.Handler, tlsConf *tls.Config, log *slog.Logger, what string) error {
	return serveLimited(ctx, addr, h, origin.DefaultLimits(), tlsConf, log, what)
}

// serveLimited serves h on addr under lim until ctx ends, then shuts down gracefully. A tlsConf
// serves https only. Where it listens goes to log, as "WHAT listening on URL".
func serveLimited(ctx context.Context, addr string, h http.Handler, lim origin.Limits, tlsConf *tls.Config, log *slog.Logger, what string) error {
	ln, err := listenHTTP(addr, tlsConf != nil, log, what)
	if err != nil {
		return err
	}
	return serveListener(ctx, ln, h, lim, tlsConf)
}

// listenHTTP listens on addr and logs where, as "WHAT listening on URL".
func listenHTTP(addr string, https bool, log *slog.Logger, what string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s/", scheme, ln.Addr())
	log.Info(what+" listening on "+url, "url", url)
	return ln, nil
}

// serveListener serves h on ln under lim until ctx ends, then shuts down gracefully. A tlsConf
// serves https only.
func serveListener(ctx context.Context, ln net.Listener, h http.Handler, lim origin.Limits, tlsConf *tls.Config) error {
	return serveListenerLean(ctx, ln, h, lim, tlsConf, nil)
}

// serveListenerLean is serveListener with the requests of lean, if not nil, answered by
// origin's lean loop when the server speaks plain HTTP (it cannot read under TLS).
func serveListenerLean(ctx context.Context, ln net.Listener, h http.Handler, lim origin.Limits, tlsConf *tls.Config, lean *origin.LeanRoute) error {
	var hs *http.Server
	var hl net.Listener
	if lean != nil && tlsConf == nil {
		hs, hl = origin.NewLeanHTTPServer(ln, h, lim, *lean)
	} else {
		hs, hl = origin.NewHTTPServer(ln, h, lim)
	}
	errc := make(chan error, 1)
	if tlsConf != nil {
		hs.TLSConfig = tlsConf
		go func() { errc <- hs.ServeTLS(hl, "", "") }()
	} else {
		go func() { errc <- hs.Serve(hl) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
