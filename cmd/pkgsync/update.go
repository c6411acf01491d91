package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/updater"
)

const updateSynopsis = `Usage: pkgsync update --old OLD [--old OLD2]... [flags] SOURCE

Rebuilds the new version of a package from the old one(s) and fetches only what changed: from
BitTorrent peers first, from the origin (HTTP range requests) last. SOURCE is the package's
.torrent (path or http(s) URL); its .zsync is found where the torrent says, or beside it. A .zsync
is accepted as SOURCE too, for a plain zsync update over HTTP (like the stock zsync client).

SOURCE, --zsync and --url may also name a package store: webhdfs://NAMENODE:PORT/PATH (HDFS over
WebHDFS or HttpFS; user.name from $HADOOP_USER_NAME or the URL's user.name=, or the URL's
delegation=TOKEN) or an S3 bucket, s3://BUCKET/KEY. A fetched .torrent or
.zsync may name files on the web or in its own store (same scheme and host) only.

The result is built in OUT.part, verified piece by piece (torrent SHA-1s) and as a whole (.zsync
SHA-1), synced, and only then renamed over OUT. OLD is never modified, even when it is OUT. An
interrupted run leaves OUT.part, which the next run reuses. When OUT is already the new version,
update says so and exits 0 at once.

One update of an OUT at a time: a run takes flock(2) on OUT.lock (writing its PID into it) and
holds it until it exits, seeding included; the kernel releases it however the run ends. A second
run waits up to --lock-wait for it, then exits with status 3, naming the holder's PID.

With --trust-key KEY.pub (repeat for more keys), update reads FILE.sig beside SOURCE (pkg.tar.sig
for pkg.tar.torrent or pkg.tar.zsync, as pkgsync make --sign-key writes it) and refuses, before it
writes a byte of OUT.part, a package whose .sig is missing, malformed or not made by a trusted key,
or whose .torrent (info hash) or .zsync (SHA-256) is not the one the .sig vouches for. Without
--trust-key no .sig is read and unsigned packages update as before.

With --metrics-file PATH, each run that gets the lock replaces PATH with its metrics for
node_exporter's textfile collector (pkgsync_update_*: bytes by source, duration, result, time),
once the update is done or failed and any seeding is over.

Exit status: 0 done (or already up to date), 1 failed (OUT untouched), 2 bad usage,
3 another update of the same OUT holds OUT.lock.

Examples:
  pkgsync update --old v1.tar http://origin/pkgs/v2.tar.torrent
  pkgsync update --old pkg.tar -o pkg.tar --no-swarm --json http://origin/pkgs/pkg.tar.zsync
  pkgsync update --old v1.tar --trust-key /etc/pkgsync/release.key.pub --lock-wait 10m http://origin/pkgs/pkg.tar.torrent`

func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("update", updateSynopsis, stdout)
	var opt updater.Options
	var (
		jsonOut, noSwarm, verbose bool
		ctls                      clientTLS
		headers, peers, trustKeys []string
		btf                       btFlags
		lf                        logFlags
	)
	fs.StringArrayVar(&opt.Olds, "old", nil, "an old version of the package to reuse blocks from (repeat for more)")
	fs.StringVarP(&opt.Out, "output", "o", "", "where to write the new version (default: the package's name in the current folder)")
	fs.StringVar(&opt.Zsync, "zsync", "", "path or URL of the .zsync, when the torrent does not say where it is")
	fs.StringVar(&opt.OriginURL, "url", "", "URL of the package on the origin (default: the torrent's url-list, else the .zsync's URL)")
	ctls.register(fs)
	fs.StringArrayVarP(&headers, "header", "H", nil, `extra HTTP header for every request, e.g. "Authorization: Bearer TOKEN" (repeat for more)`)
	fs.IntVar(&opt.Parallel, "parallel", 4, "origin requests in flight")
	fs.DurationVar(&opt.StallTimeout, "stall-timeout", httprange.DefaultStallTimeout, "ask the origin again when a reply sends no byte for this long (0: wait forever)")
	fs.BoolVar(&noSwarm, "no-swarm", false, "fetch from the origin only, do not join the BitTorrent swarm")
	fs.DurationVar(&opt.SeedTime, "seed-time", 3*time.Minute, "keep seeding to peers this long after completing (0: exit once every connected peer holds what this node got from the origin, within 2s)")
	fs.StringArrayVar(&peers, "peer", nil, "a peer to contact directly, HOST:PORT (repeat for more)")
	fs.DurationVar(&opt.InfoWait, "info-wait", bt.DefaultInfoWait, "when the origin sends the .torrent's stub, wait this long for peers to send the info dictionary before fetching the .torrent")
	btf.register(fs)
	var splay splayFlag
	splay.register(fs)
	var mf metricsFile
	mf.register(fs, "bytes reused, from peers and from the origin, duration, result")
	fs.StringArrayVar(&trustKeys, "trust-key", nil, "refuse a package without a valid FILE.sig by this public key (pkgsync keygen's KEY.pub; repeat for more)")
	fs.DurationVar(&opt.LockWait, "lock-wait", 0, "wait this long for another update of the same OUT to finish (0: exit at once with status 3)")
	fs.BoolVar(&jsonOut, "json", false, "print a one-object JSON summary on stdout")
	fs.BoolVar(&opt.WholeSHA1, "sha1", false, "report the whole file's SHA-1 (\"sha1\" of --json) also when nothing needs it to verify\n(a swarm update without a .zsync: the torrent's piece hashes verify every byte)")
	fs.BoolVarP(&verbose, "verbose", "v", false, "log each step, and the swarm's events, on stderr")
	lf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one SOURCE (.torrent or .zsync), got %d arguments", errUsage, fs.NArg())
	}
	notice, vlog, err := lf.loggers(stderr, verbose)
	if err != nil {
		return err
	}
	if len(opt.Olds) == 0 {
		notice.Warn("update: no --old given: everything will be fetched")
	}
	if opt.StallTimeout == 0 {
		opt.StallTimeout = -1 // wait forever
	}
	if opt.LockWait < 0 {
		return fmt.Errorf("%w: --lock-wait %s is negative", errUsage, opt.LockWait)
	}
	if err := mf.check(); err != nil {
		return err
	}
	trust, err := readTrustKeys(trustKeys)
	if err != nil {
		return err
	}
	opt.Trust = trust
	opt.Source = fs.Arg(0)
	opt.Swarm = !noSwarm // the updater tells a .zsync SOURCE by its content and updates it without the swarm
	tlsConf, err := ctls.config()
	if err != nil {
		return err
	}
	opt.HTTP = httprange.NewTLSClient(tlsConf, 0)
	opt.Store = ctls.storeOptions()
	if opt.Header, err = parseHeaders(headers); err != nil {
		return err
	}
	for _, p := range peers {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			return fmt.Errorf("%w: --peer %q: %v", errUsage, p, err)
		}
		opt.Peers = append(opt.Peers, ap)
	}
	if opt.BT, err = btf.config(); err != nil {
		return err
	}
	opt.BT.TLS = tlsConf
	if !jsonOut && lf.forPeople() {
		opt.Progress = stderr
	}
	opt.Log, opt.BT.Logger, opt.Notice = vlog, vlog, notice
	if err := splay.sleep(ctx, opt.Log); err != nil {
		return err
	}
	start := time.Now()
	res, err := updater.Run(ctx, opt)
	merr := mf.writeUpdate(opt, res, err, start)
	if le := (*updater.LockedError)(nil); errors.As(err, &le) {
		return exitError{code: 3, err: err}
	}
	if err != nil {
		return errors.Join(err, merr)
	}
	return errors.Join(reportUpdate(stdout, res, jsonOut), merr)
}

// reportUpdate prints res: as a JSON object with --json, else as the summary line.
func reportUpdate(stdout io.Writer, res *updater.Result, jsonOut bool) error {
	if jsonOut {
		if res.Peers == nil {
			res.Peers = []bt.PeerStat{}
		}
		return json.NewEncoder(stdout).Encode(res)
	}
	printUpdate(stdout, res)
	return nil
}

// printUpdate writes update's one-line summary.
func printUpdate(stdout io.Writer, res *updater.Result) {
	if res.UpToDate {
		fmt.Fprintf(stdout, "%s is up to date\n", res.Output)
		return
	}
	requests := "requests"
	if res.RequestsToOrigin == 1 {
		requests = "request"
	}
	fmt.Fprintf(stdout, "%s: %s total, %s reused, %s from peers, %s from the origin in %d %s, %.1fs\n",
		res.Output, progress.Bytes(res.BytesTotal), progress.Bytes(res.BytesReused), progress.Bytes(res.BytesFromPeers),
		progress.Bytes(res.BytesFromOrigin), res.RequestsToOrigin, requests, res.Seconds)
}
