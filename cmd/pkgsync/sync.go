package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/dirsync"
	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/updater"
)

const syncSynopsis = `Usage: pkgsync sync [flags] INDEX_URL DIR

Keeps DIR current with the packages an origin lists at INDEX_URL (pkgsync serve publishes its
folder's index at /index.json). A package file is named LINE-VERSION.EXT (app-1.4.2.tar: line
app, version 1.4.2; versions compare as version numbers). For each line (or each --only line),
sync brings the index's newest version into DIR with a delta update from the newest older version
of the same line in DIR, then removes the versions of the line beyond the newest --keep, never
before the new one is verified in place. One sync of DIR at a time (DIR/.pkgsync-sync.lock).

A run where nothing changed costs the origin one conditional request for the index (304, no
body): DIR/.pkgsync-sync.json keeps the index last read and what was verified in DIR.

With --metrics-file PATH, each run that gets the lock replaces PATH with its metrics for
node_exporter's textfile collector (pkgsync_sync_*: per package line bytes by source, duration
and result, and the run's duration, result and time).

Exit status: 0 everything was current, 4 at least one package was updated and none failed,
1 a package (or the index) failed, 2 bad usage, 3 another sync of DIR holds its lock.

Examples:
  pkgsync sync http://origin/pkgs/index.json /srv/pkgs
  pkgsync sync --only app --only db --keep 3 --splay 10m --json http://origin/pkgs/index.json /srv/pkgs`

// exitUpdated is sync's exit status when it updated something and nothing failed.
const exitUpdated = 4

// checkSyncOptions refuses an index that is not an http(s) URL and a --keep or --lock-wait out
// of range.
func checkSyncOptions(opt dirsync.Options) error {
	if !strings.HasPrefix(opt.Index, "http://") && !strings.HasPrefix(opt.Index, "https://") {
		return fmt.Errorf("%w: INDEX_URL %q: want an http(s) URL", errUsage, opt.Index)
	}
	if opt.Keep < 1 {
		return fmt.Errorf("%w: --keep %d: want at least 1", errUsage, opt.Keep)
	}
	if opt.LockWait < 0 {
		return fmt.Errorf("%w: --lock-wait %s is negative", errUsage, opt.LockWait)
	}
	return nil
}

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sync", syncSynopsis, stdout)
	var (
		opt                   dirsync.Options
		jsonOut, noSwarm, vrb bool
		ctls                  clientTLS
		headers, trustKeys    []string
		btf                   btFlags
		splay                 splayFlag
		lf                    logFlags
	)
	fs.StringArrayVar(&opt.Only, "only", nil, "sync only this package line (repeat for more)")
	fs.IntVar(&opt.Keep, "keep", 2, "versions kept per line, the newest included")
	ctls.register(fs)
	fs.StringArrayVarP(&headers, "header", "H", nil, `extra HTTP header for every request, e.g. "Authorization: Bearer TOKEN" (repeat for more)`)
	fs.IntVar(&opt.Update.Parallel, "parallel", 4, "origin requests in flight per update")
	fs.BoolVar(&noSwarm, "no-swarm", false, "fetch from the origin only, do not join the BitTorrent swarm")
	fs.DurationVar(&opt.Update.SeedTime, "seed-time", 0, "after each update, keep seeding to peers this long (0: leave once every connected peer holds what this node got from the origin, within 2s)")
	fs.DurationVar(&opt.Update.InfoWait, "info-wait", bt.DefaultInfoWait, "when the origin sends a .torrent's stub, wait this long for peers to send the info dictionary before fetching the .torrent")
	btf.register(fs)
	splay.register(fs)
	fs.StringArrayVar(&trustKeys, "trust-key", nil, "refuse a package without a valid FILE.sig by this public key (repeat for more)")
	fs.DurationVar(&opt.LockWait, "lock-wait", 0, "wait this long for another sync of DIR to finish (0: exit at once with status 3)")
	var mf metricsFile
	mf.register(fs, "per package line: bytes reused, from peers and from the origin, duration, result")
	fs.BoolVar(&jsonOut, "json", false, "print a one-object JSON summary on stdout")
	fs.BoolVarP(&vrb, "verbose", "v", false, "log each step, and the swarm's events, on stderr")
	lf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: want INDEX_URL and DIR, got %d arguments", errUsage, fs.NArg())
	}
	notice, vlog, err := lf.loggers(stderr, vrb)
	if err != nil {
		return err
	}
	opt.Index, opt.Dir = fs.Arg(0), fs.Arg(1)
	if err := checkSyncOptions(opt); err != nil {
		return err
	}
	if err := mf.check(); err != nil {
		return err
	}
	trust, err := readTrustKeys(trustKeys)
	if err != nil {
		return err
	}
	opt.Update.Trust = trust
	tlsConf, err := ctls.config()
	if err != nil {
		return err
	}
	opt.Update.HTTP = httprange.NewTLSClient(tlsConf, 0)
	opt.Update.Store = ctls.storeOptions()
	if opt.Update.Header, err = parseHeaders(headers); err != nil {
		return err
	}
	opt.Update.Swarm = !noSwarm
	if opt.Update.BT, err = btf.config(); err != nil {
		return err
	}
	opt.Update.BT.TLS = tlsConf
	opt.Update.Log, opt.Update.BT.Logger, opt.Update.Notice = vlog, vlog, notice
	if err := splay.sleep(ctx, opt.Update.Log); err != nil {
		return err
	}
	start := time.Now()
	res, err := dirsync.Run(ctx, opt)
	merr := mf.writeSync(opt.Dir, res, err, start)
	if le := (*updater.LockedError)(nil); errors.As(err, &le) {
		return exitError{code: 3, err: err}
	}
	if err != nil {
		return errors.Join(err, merr)
	}
	updated, current, failed := res.Counts()
	if jsonOut {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			return err
		}
	} else {
		printSync(stdout, res, updated, current, failed)
	}
	switch {
	case failed > 0:
		return exitError{code: 1, err: errors.Join(fmt.Errorf("%d of %d packages failed", failed, len(res.Packages)), merr)}
	case merr != nil:
		return merr
	case updated > 0:
		return exitError{code: exitUpdated}
	}
	return nil
}

// printSync writes a line per package line of res, and the counts.
func printSync(stdout io.Writer, res *dirsync.Result, updated, current, failed int) {
	for _, p := range res.Packages {
		switch p.Status {
		case dirsync.Failed:
			fmt.Fprintf(stdout, "%s: %s failed: %s\n", p.Line, p.Name, p.Error)
		case dirsync.Current:
			fmt.Fprintf(stdout, "%s: %s is current\n", p.Line, p.Name)
		default:
			u := p.Update
			fmt.Fprintf(stdout, "%s: %s updated from %s: %s reused, %s from peers, %s from the origin\n", p.Line, p.Name,
				strings.Join(p.Old, ", "), progress.Bytes(u.BytesReused), progress.Bytes(u.BytesFromPeers), progress.Bytes(u.BytesFromOrigin))
		}
		if len(p.Removed) > 0 {
			fmt.Fprintf(stdout, "%s: removed %s\n", p.Line, strings.Join(p.Removed, ", "))
		}
	}
	fmt.Fprintf(stdout, "%d updated, %d current, %d failed in %s\n", updated, current, failed, time.Duration(res.Seconds*float64(time.Second)).Round(time.Millisecond))
}
