package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/manifest"
)

const seedSynopsis = `Usage: pkgsync seed FILE.torrent... [flags]

Seeds complete packages to BitTorrent peers from one process until interrupted. Each package's
data is found beside its torrent (FILE.torrent -> FILE) or given with --data, in the order of the
torrents. Every package is verified once at start-up against its piece hashes; a package that does
not verify is refused. A torrent made by pkgsync also describes its .zsync as a small torrent of
its own; when the .zsync is found (where the torrent points, or beside the data) and verifies, it
is seeded too, so that updating nodes can get it from peers rather than from the origin.

With --metrics-addr HOST:PORT it serves Prometheus metrics at http://HOST:PORT/metrics: the
torrents seeded, and per torrent the peers connected now and the piece data sent to peers
(pkgsync_seed_*).

Examples:
  pkgsync seed /srv/pkgs/*.torrent --listen :6881
  pkgsync seed /srv/pkgs/*.torrent --metrics-addr 127.0.0.1:9464`

func runSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("seed", seedSynopsis, stdout)
	var (
		datas, peers []string
		btf          btFlags
		ctls         clientTLS
		sm           seedMetrics
		verbose      bool
		lf           logFlags
	)
	fs.StringArrayVar(&datas, "data", nil, "the data file of the torrent at the same position (repeat; default: beside the torrent)")
	fs.StringArrayVar(&peers, "peer", nil, "a peer to contact directly, HOST:PORT (repeat for more)")
	btf.register(fs)
	ctls.register(fs)
	sm.register(fs)
	fs.BoolVarP(&verbose, "verbose", "v", false, "log swarm events on stderr")
	lf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: want at least one .torrent", errUsage)
	}
	if len(datas) > fs.NArg() {
		return fmt.Errorf("%w: %d --data for %d torrents", errUsage, len(datas), fs.NArg())
	}
	notice, vlog, err := lf.loggers(stderr, verbose)
	if err != nil {
		return err
	}
	cfg, err := btf.config()
	if err != nil {
		return err
	}
	if cfg.TLS, err = ctls.config(); err != nil {
		return err
	}
	cfg.Logger = vlog
	cfg.Seeder = true // nodes on the origin's host tell this seeder from a node by it
	var addrs []netip.AddrPort
	for _, p := range peers {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			return fmt.Errorf("%w: --peer %q: %v", errUsage, p, err)
		}
		addrs = append(addrs, ap)
	}
	if err := sm.listen(notice); err != nil {
		return err
	}
	defer sm.close()
	pkgs, err := openSeeds(ctx, fs.Args(), datas, notice)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range pkgs {
			p.f.Close()
		}
	}()
	node, err := bt.NewNode(cfg)
	if err != nil {
		return fmt.Errorf("starting BitTorrent: %w", err)
	}
	defer node.Close()
	if err := sm.serve(ctx, node); err != nil {
		return err
	}
	for _, p := range pkgs {
		have := make([]bool, p.t.NumPieces())
		for i := range have {
			have[i] = true
		}
		if _, err := node.Add(ctx, bt.Package{MetaInfo: p.t.MetaInfo, Data: p.f, Have: have, Peers: addrs}); err != nil {
			return fmt.Errorf("seeding %s: %w", p.path, err)
		}
		notice.Info("seed: seeding", "file", p.path, "info_hash", p.t.InfoHash.HexString())
	}
	notice.Info(fmt.Sprintf("seed: listening on %s; interrupt to stop", node.Addr()), "listen", node.Addr())
	select {
	case <-ctx.Done():
		return nil
	case <-sm.stopped():
		return fmt.Errorf("--metrics-addr: the metrics server stopped: %w", sm.err)
	}
}

// seedPkg is a package to seed: its torrent, its open data file and the file's path.
type seedPkg struct {
	t    *manifest.Torrent
	f    *os.File
	path string
}

// openSeeds opens and verifies the data of each torrent (beside it, or datas[i]) and the .zsync
// each describes, when it is found (a .zsync that is not found or does not verify is a warning
// on log). On an error the files opened are closed again.
func openSeeds(ctx context.Context, torrents, datas []string, log *slog.Logger) (pkgs []seedPkg, err error) {
	defer func() {
		if err != nil {
			for _, p := range pkgs {
				p.f.Close()
			}
		}
	}()
	for i, tp := range torrents {
		raw, err := os.ReadFile(tp)
		if err != nil {
			return pkgs, err
		}
		t, err := manifest.ParseTorrent(raw)
		if err != nil {
			return pkgs, fmt.Errorf("%s: %w", tp, err)
		}
		data := strings.TrimSuffix(tp, ".torrent")
		if i < len(datas) {
			data = datas[i]
		}
		f, err := os.Open(data)
		if err != nil {
			return pkgs, fmt.Errorf("data of %s: %w", tp, err)
		}
		pkgs = append(pkgs, seedPkg{t, f, data})
		if st, err := f.Stat(); err != nil || st.Size() != t.Info.Length {
			return pkgs, fmt.Errorf("%s: not the data of %s (size differs: want %d bytes)", data, tp, t.Info.Length)
		}
		if err := t.Verify(ctx, f, data); err != nil {
			return pkgs, fmt.Errorf("%w: refusing to seed it", err)
		}
		if zp, zt, f, err := t.FindZsync(ctx, tp, data); err != nil {
			log.Warn("seed: not seeding the .zsync", "torrent_file", tp, "err", err)
		} else if zt != nil {
			pkgs = append(pkgs, seedPkg{zt, f, zp})
		}
	}
	return pkgs, nil
}
