package bt

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
	"github.com/anacrolix/torrent/tracker"
)

// Info dictionaries from peers (BEP 9, ut_metadata). A node that knows a package only by its
// info hash (from the origin's stub of the .torrent, see manifest.MakeStub) asks the package's
// swarm for the info dictionary instead of fetching the .torrent from the origin, so that the
// origin's metadata does not grow with the number of nodes. The library implements BEP 9 both
// ways: a torrent added by info hash alone asks every peer that offers the metadata
// (metadata_size in its extended handshake) for its pieces, and a torrent with its info answers
// such requests. This file adds what the library leaves to its user:
//
//   - finding peers: announcing to the stub's trackers while the info is missing;
//   - the bound: a node that is the first of its swarm (the trackers know no other peer) takes
//     the .torrent from the origin at once, and a node whose peers do not send the info within
//     InfoRequest.Wait does the same;
//   - verifying: v1.59.1 accepts metadata from peers whose SHA-1 is not the info hash it was
//     asked for (Torrent.hashInfoBytes returns no error when neither the v1 nor the v2 hash
//     matches), so the info hash is checked here, and a wrong dictionary is thrown away with its
//     torrent;
//   - passing it on: the library says whether it has the metadata only in the extended
//     handshake, which it sends once per connection, so a node that gets the info closes the
//     connections of peers that had asked it too early, and they dial again: the new handshake
//     offers the metadata. Without this, nodes that start together and meet before any of them
//     has the info would never learn it from each other;
//   - serving until the package is added: the info-only torrent stays in the Node, offering the
//     metadata (its data download disallowed, so it never requests a piece), until Add takes
//     its place, which may be seconds later (the updater scans its old version first).
//
// Which node goes to the origin: the trackers hand each announcer the peers that announced
// before it, so of nodes that start together exactly one hears of nobody (under pkgsync's
// tracker and stock ones alike), and that one fetches the .torrent at once; the others wait
// for it. Where that fails (a node crashed after announcing, or only --peer was given), each
// waiting node falls back after InfoRequest.Wait.

// DefaultInfoWait bounds how long FetchInfo waits for peers to send the info dictionary.
const DefaultInfoWait = 5 * time.Second

// infoReannounce is how often a torrent that still lacks its info asks the trackers for peers:
// nodes that start together look for each other, and for the first of them to get the info.
// infoRedial is how often it hands the peers it knows to the library again, so that it dials
// a peer that closed its connection to re-greet it (ready) within moments: each node that
// passes the info on costs its peers that long.
const (
	infoReannounce = time.Second
	infoRedial     = 200 * time.Millisecond
)

// InfoRequest asks for a torrent's info dictionary by its info hash (Node.FetchInfo).
type InfoRequest struct {
	InfoHash metainfo.Hash
	Name     string // the torrent's name, for messages
	Length   int64  // the torrent's length (the "left" of announces); 0: unknown
	// Trackers are the announce URLs to find peers at; Peers are dialed besides.
	Trackers []string
	Peers    []netip.AddrPort
	// Wait bounds the wait for peers to send the info before Fallback is used; 0:
	// DefaultInfoWait.
	Wait time.Duration
	// Fallback fetches the info dictionary elsewhere (from the origin's .torrent); nil: peers
	// only, and FetchInfo fails at the bound.
	Fallback func(ctx context.Context) ([]byte, error)
	// WaitAlone makes a node that the trackers name no other peer for wait the bound all the
	// same: for the .zsync's torrent, whose info the first node of the package's swarm got with
	// the package's and offers (ServeInfo), though it may announce it a moment later.
	WaitAlone bool
}

// InfoResult is what FetchInfo found.
type InfoResult struct {
	Info      []byte // the bencoded info dictionary; its SHA-1 is the info hash
	FromPeers bool   // it came from peers, not from Fallback
	// Why names the reason Fallback was used: "first" (no tracker named another peer, or none
	// answered), "alone" (no tracker and no peer to ask), "wait" (the bound passed), "bad" (peers sent a dictionary
	// of another hash); "" when it came from peers.
	Why string
}

// metaTorrent is a torrent of the Node known by its info hash alone, until Add takes its place.
type metaTorrent struct {
	n        *Node
	lt       *torrent.Torrent
	req      InfoRequest
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	firstRun chan struct{} // closed once every tracker answered or failed once

	mu      sync.Mutex
	known   map[netip.AddrPort]bool    // peers handed to the library, dialed again every infoRedial
	others  int                        // peers other than this node the trackers named
	early   map[*torrent.PeerConn]bool // peers that offered no metadata: re-greeted when it arrives
	hasInfo bool
	stopped bool // the announcer sends no "stopped": Add announces next
}

// FetchInfo returns the info dictionary of req.InfoHash: from peers when they have it, else
// from req.Fallback once it is clear that they do not (see the file's comment). The Node keeps
// the torrent, serving the info to peers, until Add adds the package of that info hash, or
// DropInfo or Close.
func (n *Node) FetchInfo(ctx context.Context, req InfoRequest) (InfoResult, error) {
	if req.Wait <= 0 {
		req.Wait = DefaultInfoWait
	}
	if b := n.knownInfo(req.InfoHash); b != nil {
		return InfoResult{Info: b}, nil
	}
	m, err := n.addMeta(req)
	if err != nil {
		return InfoResult{}, err
	}
	res, err := m.await(ctx)
	if err != nil {
		n.DropInfo(req.InfoHash)
		return InfoResult{}, err
	}
	m.ready()
	return res, nil
}

// ServeInfo offers info, the info dictionary of req.InfoHash that the caller has, to peers
// that ask for it (announced to req.Trackers), until Add adds its package, or DropInfo or
// Close. A node that got a package's .torrent from the origin offers the .zsync's info this way
// before it needs the .zsync itself.
func (n *Node) ServeInfo(req InfoRequest, info []byte) error {
	if h := sha1.Sum(info); h != req.InfoHash {
		return fmt.Errorf("bt: the info dictionary of %q hashes to %x, not its info hash %s", req.Name, h, req.InfoHash.HexString())
	}
	if n.knownInfo(req.InfoHash) != nil {
		return nil
	}
	m, err := n.addMeta(req)
	if err != nil {
		return err
	}
	if err := m.lt.SetInfoBytes(info); err != nil {
		n.DropInfo(req.InfoHash)
		return fmt.Errorf("bt: info of %q: %w", req.Name, err)
	}
	m.ready()
	return nil
}

// knownInfo returns the info dictionary of ih when the Node has it already: in a package it
// holds, or from an earlier FetchInfo.
func (n *Node) knownInfo(ih metainfo.Hash) []byte {
	n.mu.Lock()
	t, m := n.torrents[ih], n.metas[ih]
	n.mu.Unlock()
	switch {
	case t != nil:
		return t.pkg.MetaInfo.InfoBytes
	case m != nil && m.info() != nil:
		return m.info()
	}
	return nil
}

// addMeta adds the info-only torrent of req to the library and starts announcing it. The
// library is called without n.mu held: its callbacks take n.mu with its lock held.
func (n *Node) addMeta(req InfoRequest) (*metaTorrent, error) {
	m := &metaTorrent{n: n, req: req, firstRun: make(chan struct{}), early: make(map[*torrent.PeerConn]bool), known: make(map[netip.AddrPort]bool)}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	n.mu.Lock()
	switch {
	case n.closed:
		n.mu.Unlock()
		return nil, fmt.Errorf("bt: info of %q: node is closed", req.Name)
	case n.metas[req.InfoHash] != nil || n.torrents[req.InfoHash] != nil:
		n.mu.Unlock()
		return nil, fmt.Errorf("bt: info of %q: info hash %s already added", req.Name, req.InfoHash.HexString())
	}
	if n.metas == nil {
		n.metas = make(map[metainfo.Hash]*metaTorrent)
	}
	n.metas[req.InfoHash] = m
	n.mu.Unlock()
	lt, isNew := n.cl.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: req.InfoHash, Storage: metaStorage{}})
	if !isNew {
		n.mu.Lock()
		delete(n.metas, req.InfoHash)
		n.mu.Unlock()
		return nil, fmt.Errorf("bt: info of %q: the client did not accept info hash %s", req.Name, req.InfoHash.HexString())
	}
	// It never downloads data: it is there for the metadata.
	lt.DisallowDataDownload()
	m.mu.Lock()
	m.lt = lt
	m.mu.Unlock()
	if ctx.Err() != nil { // DropInfo or Close came meanwhile, and found no torrent to drop
		lt.Drop()
		return nil, fmt.Errorf("bt: info of %q: dropped while it was added", req.Name)
	}
	m.addPeers(req.Peers)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.announceLoop(ctx)
	}()
	return m, nil
}

// await waits for the info: from peers, or from the fallback when this node is the first of
// its swarm, has nobody to ask, or waited req.Wait.
func (m *metaTorrent) await(ctx context.Context) (InfoResult, error) {
	req := m.req
	bound := time.NewTimer(req.Wait)
	defer bound.Stop()
	first := m.firstRun
	if len(req.Trackers) == 0 {
		first = nil
		if len(req.Peers) == 0 {
			return m.fallback(ctx, "alone")
		}
	}
	for {
		select {
		case <-ctx.Done():
			return InfoResult{}, fmt.Errorf("bt: waiting for the info of %q: %w", req.Name, ctx.Err())
		case <-m.lt.GotInfo():
			if b := m.lt.Metainfo().InfoBytes; sha1.Sum(b) == req.InfoHash {
				return InfoResult{Info: b, FromPeers: true}, nil
			}
			m.n.log.Warn("bt: peers sent an info dictionary of another info hash; asking the origin", "torrent", req.Name,
				"info_hash", req.InfoHash.HexString())
			if err := m.renew(); err != nil {
				return InfoResult{}, err
			}
			return m.fallback(ctx, "bad")
		case <-first:
			first = nil
			m.mu.Lock()
			alone := m.others == 0 && len(req.Peers) == 0 && !req.WaitAlone
			m.mu.Unlock()
			if alone {
				return m.fallback(ctx, "first")
			}
		case <-bound.C:
			return m.fallback(ctx, "wait")
		}
	}
}

// fallback takes the info from req.Fallback, checks its hash and gives it to the library
// torrent, which then offers it to peers.
func (m *metaTorrent) fallback(ctx context.Context, why string) (InfoResult, error) {
	req := m.req
	if req.Fallback == nil {
		return InfoResult{}, fmt.Errorf("bt: no peer sent the info of %q (%s) and there is no other source", req.Name, why)
	}
	b, err := req.Fallback(ctx)
	if err != nil {
		return InfoResult{}, err
	}
	if h := sha1.Sum(b); h != req.InfoHash {
		return InfoResult{}, fmt.Errorf("bt: the info dictionary of %q hashes to %x, not its info hash %s", req.Name, h, req.InfoHash.HexString())
	}
	// Peers may have sent one meanwhile, maybe of another hash: the library keeps the first.
	if m.lt.Info() != nil && sha1.Sum(m.lt.Metainfo().InfoBytes) != req.InfoHash {
		if err := m.renew(); err != nil {
			return InfoResult{}, err
		}
	}
	if err := m.lt.SetInfoBytes(b); err != nil {
		return InfoResult{}, fmt.Errorf("bt: info of %q: %w", req.Name, err)
	}
	return InfoResult{Info: b, Why: why}, nil
}

// renew replaces the library torrent, which took a wrong info dictionary, with a fresh one.
func (m *metaTorrent) renew() error {
	m.lt.Drop()
	lt, isNew := m.n.cl.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: m.req.InfoHash, Storage: metaStorage{}})
	if !isNew {
		return fmt.Errorf("bt: info of %q: the client did not accept info hash %s again", m.req.Name, m.req.InfoHash.HexString())
	}
	lt.DisallowDataDownload()
	m.mu.Lock()
	m.lt = lt
	clear(m.early)
	m.mu.Unlock()
	return nil
}

// info returns the verified info dictionary once the torrent has it, else nil.
func (m *metaTorrent) info() []byte {
	m.mu.Lock()
	has, lt := m.hasInfo, m.lt
	m.mu.Unlock()
	if !has {
		return nil
	}
	return lt.Metainfo().InfoBytes
}

// ready marks the info as there and re-greets the peers that asked too early: their
// connections are closed, and they dial again (every infoRedial while they lack the info), to
// a handshake that offers the metadata. The library neither dials nor wants connections for a
// torrent with its info and no piece to download (and a piece it may not download is never
// wanted), so the peers do the dialing; it accepts theirs because the Node's client always
// wants connections (see clientConfig).
func (m *metaTorrent) ready() {
	m.mu.Lock()
	m.hasInfo = true
	drop := make([]*torrent.PeerConn, 0, len(m.early))
	for pc := range m.early {
		drop = append(drop, pc)
	}
	clear(m.early)
	m.mu.Unlock()
	for _, pc := range drop {
		pc.Close()
	}
}

// onHandshake notes a peer's extended handshake: one that offers no metadata while this node
// has none is re-greeted once it has (ready).
func (m *metaTorrent) onHandshake(pc *torrent.PeerConn, offers bool) {
	if offers {
		return
	}
	m.mu.Lock()
	if !m.hasInfo {
		m.early[pc] = true
	}
	m.mu.Unlock()
}

// addPeers hands addrs, but this node's own, to the library to dial, and reports how many
// it had not heard of.
func (m *metaTorrent) addPeers(addrs []netip.AddrPort) int {
	var infos []torrent.PeerInfo
	fresh := 0
	m.mu.Lock()
	for _, a := range addrs {
		if a.IsValid() && !m.n.isSelf(a) {
			if !m.known[a] {
				m.known[a] = true
				fresh++
			}
			infos = append(infos, torrent.PeerInfo{Addr: net.TCPAddrFromAddrPort(a), Source: torrent.PeerSourceTracker})
		}
	}
	lt := m.lt
	m.mu.Unlock()
	if len(infos) > 0 {
		lt.AddPeers(infos)
	}
	return fresh
}

// redial hands every known peer to the library again; it dials those it is not connected to.
func (m *metaTorrent) redial() {
	m.mu.Lock()
	addrs := make([]netip.AddrPort, 0, len(m.known))
	for a := range m.known {
		addrs = append(addrs, a)
	}
	m.mu.Unlock()
	m.addPeers(addrs)
}

// announceLoop announces the info hash to every tracker every infoReannounce, and dials the
// known peers again every infoRedial, until the info is there: so this node finds peers, is
// found, and dials again the peers that re-greet it (ready). It sends "stopped" on the way out
// unless Add takes over.
func (m *metaTorrent) announceLoop(ctx context.Context) {
	urls := slices.Compact(slices.Clone(m.req.Trackers))
	var keyBytes [4]byte
	_, _ = rand.Read(keyBytes[:])
	key := int32(binary.BigEndian.Uint32(keyBytes[:]))
	m.announceAll(ctx, urls, tracker.Started, key)
	close(m.firstRun)
	tick := time.NewTicker(infoRedial)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			stop := !m.stopped && len(urls) > 0
			m.mu.Unlock()
			if stop {
				sctx, cancel := context.WithTimeout(context.Background(), stoppedAnnounceLimit)
				m.announceAll(sctx, urls, tracker.Stopped, key)
				cancel()
			}
			return
		case <-tick.C:
		}
		if m.info() != nil {
			continue
		}
		m.redial()
		if time.Since(last) >= infoReannounce {
			m.announceAll(ctx, urls, tracker.None, key)
			last = time.Now()
		}
	}
}

// announceAll announces event to every tracker and hands the peers they name to the library.
func (m *metaTorrent) announceAll(ctx context.Context, urls []string, event tracker.AnnounceEvent, key int32) {
	for _, u := range urls {
		res, err := m.n.announceHash(ctx, u, m.req.InfoHash, event, key, m.req.Length)
		if err != nil {
			if ctx.Err() == nil {
				m.n.log.Info("bt: announce failed", "torrent", m.req.Name, "tracker", trackerName(u), "err", err)
			}
			continue
		}
		if event == tracker.Stopped {
			continue
		}
		n := m.addPeers(res)
		m.mu.Lock()
		m.others += n
		m.mu.Unlock()
	}
}

// announceHash makes one announce of ih to url, as Torrent.announce does for a package, and
// returns the peers the tracker named.
func (n *Node) announceHash(ctx context.Context, url string, ih metainfo.Hash, event tracker.AnnounceEvent, key int32, left int64) ([]netip.AddrPort, error) {
	r, err := n.announceTo(ctx, url, tracker.AnnounceRequest{InfoHash: ih, PeerId: n.cl.PeerID(),
		Left: max(left, 1), Event: event, Key: key, NumWant: int32(n.cfg.MaxConns), Port: n.addr.Port()}, false)
	return r.peers, err
}

// DropInfo removes the info-only torrent of ih that FetchInfo left, telling the trackers it
// stopped; a no-op when there is none (Add took its place).
func (n *Node) DropInfo(ih metainfo.Hash) { n.removeMeta(ih, true) }

// takeMeta removes the info-only torrent of ih, if any, for Add to take its place: no
// "stopped" announce, as Add announces next.
func (n *Node) takeMeta(ih metainfo.Hash) { n.removeMeta(ih, false) }

// removeMeta removes the info-only torrent of ih, if any, and closes it, announcing "stopped"
// when stopped is set.
func (n *Node) removeMeta(ih metainfo.Hash, stopped bool) {
	n.mu.Lock()
	m := n.metas[ih]
	delete(n.metas, ih)
	n.mu.Unlock()
	if m != nil {
		m.close(stopped)
	}
}

// close stops the announcer (with a "stopped" announce when stop) and drops the torrent.
func (m *metaTorrent) close(stop bool) {
	m.mu.Lock()
	m.stopped = !stop
	lt := m.lt
	m.mu.Unlock()
	m.cancel()
	if lt != nil {
		lt.Drop()
	}
	m.wg.Wait()
}

// lookupMeta returns the info-only torrent of a library torrent. Called from library callbacks
// with the client lock held: it only takes n.mu.
func (n *Node) lookupMeta(lt *torrent.Torrent) *metaTorrent {
	if lt == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.metas[lt.InfoHash()]
}

// errMetaOnly is what the storage of an info-only torrent answers: it holds no data.
var errMetaOnly = errors.New("bt: a torrent added for its info dictionary holds no data")

// metaStorage is the storage of an info-only torrent: every piece incomplete, and no byte to
// read or write (its data download is disallowed, so the library asks for none).
type metaStorage struct{}

var _ storage.ClientImpl = metaStorage{}

func (metaStorage) OpenTorrent(context.Context, *metainfo.Info, metainfo.Hash) (storage.TorrentImpl, error) {
	piece := func(metainfo.Piece) storage.PieceImpl { return metaPiece{} }
	return storage.TorrentImpl{
		Piece:         piece,
		PieceWithHash: func(p metainfo.Piece, _ g.Option[[]byte]) storage.PieceImpl { return piece(p) },
		Close:         func() error { return nil },
	}, nil
}

type metaPiece struct{}

func (metaPiece) ReadAt([]byte, int64) (int, error)  { return 0, io.ErrUnexpectedEOF }
func (metaPiece) WriteAt([]byte, int64) (int, error) { return 0, errMetaOnly }
func (metaPiece) MarkComplete() error                { return errMetaOnly }
func (metaPiece) MarkNotComplete() error             { return nil }
func (metaPiece) Completion() storage.Completion {
	return storage.Completion{Ok: true, Complete: false}
}
