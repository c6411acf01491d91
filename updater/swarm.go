package updater

import (
	"context"
	"crypto/sha1"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/delta"
	"github.com/pkgsync/pkgsync/internal/directio"
	"github.com/pkgsync/pkgsync/manifest"
)

// prepareSwarm writes the reused blocks into part and verifies the pieces they fill, so that
// they count as complete (and are served) from the moment the node joins the swarm. It returns
// the candidates (pieces the plan fills entirely) and which of them match their SHA-1.
func (j *job) prepareSwarm(ctx context.Context, part *os.File, plan *delta.Plan, srcs []delta.Source) (candidate, ok []bool, err error) {
	t := j.torrent
	n := t.NumPieces()
	candidate, ok = make([]bool, n), make([]bool, n)
	var list []int
	for i := 0; i < n; i++ {
		if off, l := t.PieceRange(i); plan.Have(off, l) {
			candidate[i] = true
			list = append(list, i)
		}
	}
	if len(list) == 0 {
		// No piece to verify (a node without old data, or old data that fills no piece
		// whole): only the reused blocks of partly filled pieces, if any, go in place, since
		// peers send only the rest. Hashing would read the whole file for nothing.
		if err := plan.Apply(ctx, part, srcs); err != nil {
			return nil, nil, fmt.Errorf("writing %s: %w", j.part, err)
		}
		return candidate, ok, nil
	}
	// One ordered pass, as over HTTP (assemble), copies the reused blocks in place, partly
	// filled pieces included (peers send only the rest), and hashes the pieces on the way: the
	// rebuilt ones are verified without reading them back, and the copy goes to the disk with
	// O_DIRECT rather than through the page cache. The missing ranges read back as they stand
	// in OUT.part (holes, or an interrupted run's bytes): peers or the origin fill them later,
	// so the whole-file SHA-1 waits for them (wholeHasher).
	a := plan.Assemble(part, srcs, nil)
	hopt := manifest.HashOptions{Name: j.part, Length: j.length, PieceSize: t.Info.PieceLength}
	dw := newDirectWriter(j.part, part)
	if dw != nil {
		defer dw.close()
		a.SetWriter(dw.queue)
		hopt.Tee, hopt.NewBuffer = dw.sink, directio.AlignedBuf
	}
	h, err := manifest.Hash(ctx, a, hopt)
	if err != nil {
		return nil, nil, err // it names j.part
	}
	if dw != nil {
		if err := dw.close(); err != nil { // the pieces are in place before peers ask
			return nil, nil, fmt.Errorf("%s: %w", j.part, err)
		}
	}
	for _, i := range list {
		ok[i] = [sha1.Size]byte(h.Pieces[i*sha1.Size:]) == t.PieceHash(i)
	}
	return candidate, ok, nil
}

// swarm fetches the pieces the delta plan could not fill from BitTorrent peers, and from the
// origin only for pieces the bt scheduler hands back (no connected peer has them). candidate
// and ok are prepareSwarm's; written is told of every byte written into part.
func (j *job) swarm(ctx context.Context, part *os.File, plan *delta.Plan, candidate, ok []bool, written func(int64)) error {
	t := j.torrent
	n := t.NumPieces()
	have := make([]bool, n)
	suspect := make([]bool, n) // rebuilt from the old version, yet wrong: fetch whole
	rebuilt := 0
	for i := range n {
		have[i] = candidate[i] && ok[i]
		suspect[i] = candidate[i] && !ok[i]
		if candidate[i] {
			rebuilt++
		}
	}
	// The origin fetcher (httprange or a store) gets runs of pieces, one Fetch each: bt asks it
	// for the missing ranges of each piece (missing below), or the whole piece.
	var originFetcher bt.RangeFetcher
	if j.fetcher != nil {
		originFetcher = j.fetcher
	}
	node, err := j.ensureNode()
	if err != nil {
		return err
	}
	// Pieces the plan rebuilt in part cost their missing ranges from pkgsync peers too.
	missing := func(piece int) []bt.Range {
		if have[piece] || suspect[piece] {
			return nil
		}
		off, l := t.PieceRange(piece)
		return plan.MissingIn(off, l)
	}
	// The nodes that traded the .zsync with this one are updating the same package and join its
	// swarm in a moment: knowing them from the start, this node waits for them (up to PeerWait)
	// before it asks the origin for anything, and they share the origin's work.
	peers := j.opt.Peers
	if j.zsyncSwarm != nil {
		peers = append(slices.Clone(peers), j.zsyncSwarm.KnownPeers()...)
	}
	// The pieces that come whole over the fast path go to the disk with O_DIRECT, as the
	// delta's copy does (directWriter): a cron run has no use for the new version in the page
	// cache, and allocating it costs more CPU than the transfer. Where O_DIRECT cannot be had,
	// everything goes through part.
	if j.direct == nil {
		if d, err := directio.Open(j.part); err == nil {
			j.direct = d
		}
	}
	tt, err := node.Add(ctx, bt.Package{MetaInfo: t.MetaInfo, Data: part, Direct: j.direct, Have: have, OriginFetcher: originFetcher,
		Peers: peers, Missing: missing, OriginAddrs: j.originAddrs(ctx, j.origin), Written: written})
	if err != nil {
		return fmt.Errorf("joining the swarm: %w", err)
	}
	j.swarmT = tt
	j.log.Info("update: joined the swarm", "pieces_rebuilt", rebuilt, "pieces", n, "listen", node.Addr())
	stopProgress := j.logSwarmProgress(tt)
	if j.zsync != nil || j.opt.WholeSHA1 {
		j.whole = startWholeHasher(tt, part, j.part, t.Info.PieceLength, j.length)
	}
	err = tt.Download(ctx)
	stopProgress()
	j.collectSwarmStats()
	if st := tt.Stats(); st.ChunksWasted > 0 {
		j.log.Info("update: chunks arrived twice", "chunks", st.ChunksWasted)
	}
	if err != nil {
		if j.whole != nil {
			j.whole.abort()
		}
		return fmt.Errorf("swarm download: %w", err)
	}
	return nil
}

// logSwarmProgress logs, once a second until stop is called, how far the swarm download got:
// the -v timeline an operator (or a benchmark) reads to see where a node's link sat idle.
func (j *job) logSwarmProgress(tt *bt.Torrent) (stop func()) {
	if !j.log.Enabled(context.Background(), slog.LevelInfo) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			st := tt.Stats()
			j.log.Info("update: swarm progress", "after", time.Since(start).Round(time.Second),
				"pieces_complete", tt.PiecesComplete(), "pieces", tt.NumPieces(), "bytes_from_peers", st.BytesFromPeers,
				"bytes_from_origin", st.BytesFromOrigin, "bytes_uploaded", st.BytesUploaded, "chunks_twice", st.ChunksWasted,
				"peers", tt.NumConns())
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// zsyncPeerWait bounds the wait for peers before the .zsync's first origin request.
const zsyncPeerWait = 500 * time.Millisecond

// ensureNode starts the job's BitTorrent node, once: the .zsync's torrent and the package's
// share it.
func (j *job) ensureNode() (*bt.Node, error) {
	if j.node != nil {
		return j.node, nil
	}
	node, err := bt.NewNode(j.opt.BT)
	if err != nil {
		return nil, fmt.Errorf("starting BitTorrent: %w", err)
	}
	j.node = node
	return node, nil
}

// zsyncFromSwarm downloads the .zsync as the torrent zt: from peers first, from the origin
// (zt's web seed) for the pieces no peer has, as the package itself. The data goes to an
// unlinked temporary file beside OUT, so nothing is left behind, and the torrent stays in
// the node: this node serves the .zsync to later peers while it runs and seeds.
func (j *job) zsyncFromSwarm(ctx context.Context, zt *manifest.Torrent) ([]byte, error) {
	node, err := j.ensureNode()
	if err != nil {
		return nil, err
	}
	length := zt.Info.Length
	if length > maxZsyncBytes {
		return nil, fmt.Errorf("the .zsync's torrent says %d bytes (limit %d)", length, maxZsyncBytes)
	}
	f, err := os.CreateTemp(filepath.Dir(j.out), ".pkgsync-zsync-*")
	if err != nil {
		return nil, fmt.Errorf("cannot write beside the output: %w", err)
	}
	os.Remove(f.Name())
	j.zsyncTmp = f
	if err := f.Truncate(length); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	var origin bt.RangeFetcher
	if len(zt.MetaInfo.UrlList) > 0 {
		origin = j.newFetcher(ctx, zt.MetaInfo.UrlList[0], length)
	}
	start := time.Now()
	// Nodes that start together find each other within a few quick re-announces; a node that
	// finds nobody soon should not hold up its update for the full PeerWait.
	wait := min(j.opt.BT.PeerWait, zsyncPeerWait)
	if wait <= 0 {
		wait = zsyncPeerWait
	}
	tt, err := node.Add(ctx, bt.Package{MetaInfo: zt.MetaInfo, Data: f, OriginFetcher: origin, Peers: j.opt.Peers, PeerWait: wait,
		OriginAddrs: j.originAddrs(ctx, zt.MetaInfo.UrlList...)})
	if err != nil {
		return nil, fmt.Errorf("joining the swarm of the .zsync: %w", err)
	}
	// The torrent stays in the node after the download: it seeds the .zsync until the node closes.
	j.zsyncSwarm = tt
	if err := tt.Download(ctx); err != nil {
		return nil, fmt.Errorf("swarm download of the .zsync: %w", err)
	}
	st := tt.Stats()
	j.res.ZsyncFromPeers, j.res.ZsyncFromOrigin = st.BytesFromPeers, st.BytesFromOrigin
	j.log.Info("update: fetched the .zsync", "bytes", length, "bytes_from_peers", st.BytesFromPeers, "bytes_from_origin", st.BytesFromOrigin,
		"took", time.Since(start).Round(time.Millisecond))
	data := make([]byte, length)
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("reading the .zsync back: %w", err)
	}
	return data, nil
}

// originAddrs returns the addresses of the hosts of the given URLs (bt.Package.OriginAddrs),
// for the swarm's site rule and to recognise seeders on the origin's host. A name that does
// not resolve is left out (the site rule then stays off).
func (j *job) originAddrs(ctx context.Context, urls ...string) []netip.Addr {
	var out []netip.Addr
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() == "" {
			continue
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			out = append(out, a.Unmap())
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		as, err := net.DefaultResolver.LookupNetIP(lctx, "ip", u.Hostname())
		cancel()
		if err != nil {
			j.log.Warn("update: cannot resolve the origin: no site rule, seeders on its host not recognised", "host", u.Hostname(), "err", err)
			continue
		}
		for _, a := range as {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func (j *job) collectSwarmStats() {
	if j.swarmT == nil {
		return
	}
	s := j.swarmT.Stats()
	j.res.BytesFromPeers = s.BytesFromPeers
	j.res.BytesFromPeersFast = s.BytesFromPeersFast
	j.directBytes = s.BytesWrittenDirect
	j.res.BytesUploaded = s.BytesUploaded
	j.res.Peers = s.Peers
	if j.fetcher != nil {
		st := j.fetcher.Stats()
		j.res.BytesFromOrigin = st.Bytes
		j.res.RequestsToOrigin = st.Requests
	}
}
