package bt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"

	"github.com/pkgsync/pkgsync/internal/directio"
)

// The fast path: whole pieces between pkgsync nodes, outside the library.
//
// The library moves pieces in 16 KiB chunks, each a message read, a write into storage and an
// entry in its smart-ban cache, and then reads the piece back to hash it. Between two pkgsync
// nodes that is most of the CPU a transfer costs. So a node that offers fastExtension in its
// extended handshake also runs a TCP service of its own (fastServer) that sends whole pieces
// with sendfile, and a peer that offers it is fetched from over that service: the requests are
// pipelined, each piece is read from the socket in large reads into one buffer, hashed as it
// arrives, and written with one call once its SHA-1 matches the torrent's.
//
// The library must not ask such a peer for pieces meanwhile. v1.59.1 has no way to exclude a
// peer from requesting, so it is not told what the peer has: its bitfield and HAVE messages are
// turned into keep-alives before the library reads them (as for the site rule), and kept here
// instead (fastPeer.pieces). The scheduler's view of the peers includes them (peerPieces). A
// piece taken by the fast path is marked busy in storage, so that the library's writes are
// refused, and set to priority None, so that the library asks no stock client for it; both end
// when the piece completes or is given back.
//
// A piece whose SHA-1 matches is marked complete in storage, and the library takes storage's
// word for it (completeFast) and sends HAVE without reading or hashing it again; the pieces
// verified before the next multiple of fastMarkDelay on the wall clock are handed over
// together, so that their HAVEs share a write, and every node hands over at the same instants.
//
// On a slow link a node's CPU goes mostly to waking up: each wake-up of the process costs
// context switches of its threads (and of the runtime's monitor, which polls for a while after
// each), whatever little work it brings. So the fast path wakes for a piece once it is mostly
// in the socket (fastLowWater), checks a slowly arriving piece in the goroutine that read it,
// wakes a connection waiting for pieces only when one may be there for it, and aligns its
// batches to the clock.
//
// A server sends pieces on a few connections at once (fastServeSlots) and answers the others
// busy: the piece goes back to every path, and the connection asks its peer again after
// fastBusyWait. So a new piece reaches a few peers at the link's pace, not every peer at a
// fraction of it, and they pass it on.
//
// A piece whose SHA-1 does not match came from one peer alone: that peer is banned, the piece is never
// written, and it goes back to every path. A peer whose fast path cannot be reached (or closes
// before it delivered a piece), or that never says its port, is heard through the library
// again: the connection is closed and the peer dialed anew with its messages passed on. A
// fast-path connection that closes after it delivered pieces (the server's idle timeout) is
// dialed again.

const (
	// fastPortWait: a peer that offered the fast path and has not said its port this long
	// after its handshake is heard through the library instead.
	fastPortWait = 3 * time.Second
	// fastMinDepth and fastMaxDepth bound the requests in flight on one connection: two keep
	// the server busy, more cover the time the client spends between replies on a fast link,
	// and fastAhead of transfer is what a connection keeps requested (adapt). Pieces requested
	// from a peer wait for it, so a slow peer must not hold many.
	fastMinDepth = 2
	fastMaxDepth = 32
	fastAhead    = 20 * time.Millisecond
	// fastRead is how much of a piece is read from the socket, then hashed, at once.
	fastRead = 1 << 20
	// fastLowWater is the most a piece's read waits to have in the socket before it wakes
	// (setReadLowWater): a wake-up per this much, not per few packets, and still often enough
	// at a slow link's pace to show the scheduler that the piece is moving.
	fastLowWater = 256 << 10
	// fastHeaderWait is how long a reply's header waits for the piece behind it before it is
	// read alone (readHeader): a refusal or a busy reply has no piece behind it, and costs
	// that long. Busy replies are common (fastServeSlots), so it is short: a piece that
	// arrives slower than this costs one wake-up more.
	fastHeaderWait = 25 * time.Millisecond
	// fastBusyWait is how long, and up to twice that, a connection waits before it asks again
	// a peer that answered busy (fastServeSlots): about what a piece takes on a slow link, by
	// when one of the peer's transfers has most likely ended.
	fastBusyWait = 100 * time.Millisecond
	// fastDialTimeout bounds the connection to a peer's fast path.
	fastDialTimeout = 5 * time.Second
	// fastMarkDelay: pieces the fast path verified are handed to the library together, at the
	// next multiple of this on the wall clock (untilMark). The library sends every connection a HAVE for each
	// piece it marks complete, and a connection's writer sends what has gathered in one write:
	// pieces marked together cost each peer one write and one read, not one per piece, which
	// with small pieces is most of what a node spends on a swarm. A piece reaches the next hop
	// up to that much later; the pieces behind it keep the links busy meanwhile. 500 ms rather
	// than 200: swarmbench --short's 16-node fan-out, alternately, 0.67 and 0.75 CPU s per node
	// against 0.83 and 0.86, B/A 0.80 and 0.77 against 0.79 and 0.76; 1 s saved no more (0.76
	// and 0.68 against 0.71 and 0.79 with 500 ms).
	fastMarkDelay = 500 * time.Millisecond
	// fastMarkBatch pieces waiting are handed over without waiting for fastMarkDelay.
	fastMarkBatch = 32
)

// fastTorrent is a Torrent's state of the fast path; t.mu guards it.
type fastTorrent struct {
	peers   map[*torrent.PeerConn]*fastPeer
	off     map[netip.Addr]bool // peers whose fast path failed: heard through the library
	running map[[20]byte]bool   // peer IDs with a fast-path connection
	signal  chan struct{}       // closed (and replaced) when a piece may have become available from any peer
	whole   map[int]bool        // partly present pieces the range path gave up: fetched whole
	closed  bool                // the Torrent is closing: no new connections
	wg      sync.WaitGroup      // connections and the verifications they started
	toMark  []int               // verified pieces not yet handed to the library (markFast)
	inMark  int                 // pieces of toMark being handed over now
	marking bool                // markFastLoop runs
	markNow chan struct{}       // tells markFastLoop to hand toMark over without waiting
}

// fastPeer is what this node knows of a peer connection's fast path.
type fastPeer struct {
	port   uint16          // its fast path's port; 0 until it says
	pieces *roaring.Bitmap // what it says it has, hidden from the library
	// snap is a copy of pieces that peerPieces handed out and nobody changes, nil once pieces
	// changed since: a round reads every peer's pieces several times a second, and a peer's
	// HAVEs come in batches (fastMarkDelay), so most rounds need no new copy.
	snap    *roaring.Bitmap
	refused *roaring.Bitmap // pieces it refused over the fast path
	failed  bool
	// signal is closed (and replaced) when the peer announces a piece this node may lack: only
	// the connection to this peer can take it, so the others are not woken.
	signal chan struct{}
}

// fastEnabled reports whether the Node runs the fast path: not with encryption required (the
// fast path is plaintext) nor with tit-for-tat (it serves whoever asks).
func (cfg Config) fastEnabled() bool {
	return !cfg.NoFastPath && !cfg.RequireEncryption && !cfg.TitForTat
}

// isBanned reports whether a is banned by this package or by the library.
func (n *Node) isBanned(a netip.Addr) bool {
	a = a.Unmap()
	n.bans.mu.Lock()
	banned := n.bans.ips[a]
	n.bans.mu.Unlock()
	if banned {
		return true
	}
	for _, s := range n.cl.BadPeerIPs() {
		if b, err := netip.ParseAddr(s); err == nil && b.Unmap() == a {
			return true
		}
	}
	return false
}

// onFastHandshake notes whether a peer offers the fast path, and answers with this node's port.
// It runs in a library callback with the client lock held.
func (t *Torrent) onFastHandshake(pc *torrent.PeerConn, offered bool) {
	fs := t.node.fast
	if !offered || fs == nil {
		return
	}
	ap, err := netip.ParseAddrPort(pc.RemoteAddr.String())
	if err != nil {
		return
	}
	t.mu.Lock()
	if t.fast.off[ap.Addr().Unmap()] {
		t.mu.Unlock()
		return
	}
	if t.fast.peers == nil {
		t.fast.peers = make(map[*torrent.PeerConn]*fastPeer)
	}
	t.fast.peers[pc] = &fastPeer{pieces: roaring.New(), refused: roaring.New()}
	t.mu.Unlock()
	time.AfterFunc(fastPortWait, func() { t.checkFastPort(pc) })
	// Writing takes the client lock, which the caller holds.
	go func() {
		msg := encodeFastPort(fs.port)
		for try := 0; try < 3; try++ {
			if pc.WriteExtendedMessage(fastExtension, msg) == nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

// onFastMessage takes a peer's port message.
func (t *Torrent) onFastMessage(pc *torrent.PeerConn, payload []byte) {
	port, err := decodeFastPort(payload)
	if err != nil {
		t.node.log.Debug("bt: ignoring message", "torrent", t.name, "peer", pc.RemoteAddr.String(), "err", err)
		return
	}
	t.mu.Lock()
	if fp := t.fast.peers[pc]; fp != nil && fp.port == 0 {
		fp.port = port
		t.startFastLocked()
	}
	t.mu.Unlock()
}

// fastHaveLocked records what a fast-path peer says it has and reports whether the message
// must be hidden from the library: it is, for every peer that offers the fast path. t.mu is held.
func (t *Torrent) fastHaveLocked(pc *torrent.PeerConn, msg *pp.Message) bool {
	fp := t.fast.peers[pc]
	if fp == nil || fp.failed {
		return false
	}
	fp.snap = nil
	switch msg.Type {
	case pp.Have:
		if int(msg.Index) >= t.info.NumPieces() {
			return true
		}
		fp.pieces.Add(uint32(msg.Index))
		if t.store.isComplete(int(msg.Index)) {
			return true // nothing for the connection to fetch
		}
	case pp.HaveAll:
		fp.pieces.AddRange(0, uint64(t.info.NumPieces()))
	case pp.HaveNone:
		fp.pieces.Clear()
		return true
	case pp.Bitfield:
		for i, b := range msg.Bitfield {
			if b && i < t.info.NumPieces() {
				fp.pieces.Add(uint32(i))
			}
		}
	}
	if fp.signal != nil {
		close(fp.signal)
		fp.signal = nil
	}
	return true
}

// fastWhole lets the fast path fetch partly present piece p whole: the range path gave it up.
func (t *Torrent) fastWhole(p int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fast.whole == nil {
		t.fast.whole = make(map[int]bool)
	}
	t.fast.whole[p] = true
	t.fastSignalLocked()
}

// fastSignalLocked wakes every fast-path connection waiting for pieces: a piece went back to
// every path. t.mu is held.
func (t *Torrent) fastSignalLocked() {
	if t.fast.signal != nil {
		close(t.fast.signal)
	}
	t.fast.signal = make(chan struct{})
}

// fastFreed wakes every fast-path connection waiting for pieces: a piece went back to every
// path (the origin or the range path let it go, or it lost its completion). It is storage's
// onFree.
func (t *Torrent) fastFreed() {
	t.mu.Lock()
	t.fastSignalLocked()
	t.mu.Unlock()
}

// peerPieces returns the pieces a connected peer has: what the library heard, or for a
// fast-path peer what this package kept from the library. The caller must not change the
// bitmap: a fast-path peer's is shared until the peer announces more (fastPeer.snap). It may
// take the client lock.
func (t *Torrent) peerPieces(pc *torrent.PeerConn) *roaring.Bitmap {
	t.mu.Lock()
	fp := t.fast.peers[pc]
	var bm *roaring.Bitmap
	if fp != nil && !fp.failed {
		if fp.snap == nil {
			fp.snap = fp.pieces.Clone()
		}
		bm = fp.snap
	}
	t.mu.Unlock()
	if bm != nil {
		return bm
	}
	return pc.PeerPieces()
}

// creditFastUpload counts n bytes sent over the fast path to the peer at remote (its fast-path
// connection's address, unmapped: the peer table knows the peer by its BitTorrent connection,
// from the same address).
func (t *Torrent) creditFastUpload(remote netip.Addr, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ps := range t.peers {
		if ps.ip == remote && !ps.closed {
			ps.fastUp += n
			return
		}
	}
}

// startFastLocked starts a fetching connection to each fast-path peer that said its port and
// has none yet (one per peer ID: of two crossed connections the library keeps one), unless
// the torrent is complete or closing. t.mu is held.
func (t *Torrent) startFastLocked() {
	if t.fast.closed || t.store.completed() == t.info.NumPieces() {
		return
	}
	for pc, fp := range t.fast.peers {
		ps := t.peers[pc]
		if fp.failed || fp.port == 0 || ps == nil || ps.closed || t.fast.running[ps.id] {
			continue
		}
		ap, err := netip.ParseAddrPort(pc.RemoteAddr.String())
		if err != nil {
			continue
		}
		if t.fast.running == nil {
			t.fast.running = make(map[[20]byte]bool)
		}
		id, addr := ps.id, netip.AddrPortFrom(ap.Addr().Unmap(), fp.port)
		t.fast.running[id] = true
		t.fast.wg.Add(1)
		go func() {
			defer t.fast.wg.Done()
			// A connection that delivered pieces and then closed (the peer's idle timeout, a
			// restart) is dialed again; one that failed before delivering any means the fast
			// path to this peer does not work.
			got, err := t.fetchFast(t.ctx, pc, addr)
			if err != nil && !got && t.ctx.Err() == nil {
				t.fastFailed(pc, err)
			}
			t.mu.Lock()
			delete(t.fast.running, id)
			t.startFastLocked() // another connection to the same peer may remain
			t.mu.Unlock()
		}()
	}
}

// stopFast stops the fast path's connections and waits for them and their verifications; the
// Torrent's context is cancelled already.
func (t *Torrent) stopFast() {
	t.mu.Lock()
	t.fast.closed = true
	t.mu.Unlock()
	t.fast.wg.Wait()
}

// checkFastPort hands pc's peer back to the library if it offered the fast path and has not
// said its port by now.
func (t *Torrent) checkFastPort(pc *torrent.PeerConn) {
	t.mu.Lock()
	fp, ps := t.fast.peers[pc], t.peers[pc]
	silent := fp != nil && !fp.failed && fp.port == 0 && ps != nil && !ps.closed && !t.fast.closed
	t.mu.Unlock()
	if silent {
		t.fastFailed(pc, errors.New("the peer offered the fast path but did not say its port"))
	}
}

// fastFailed gives up the fast path to the peer of pc: the connection is closed and the peer
// dialed again, and from now on its messages reach the library.
func (t *Torrent) fastFailed(pc *torrent.PeerConn, cause error) {
	ap, err := netip.ParseAddrPort(pc.RemoteAddr.String())
	if err != nil {
		return
	}
	t.mu.Lock()
	if t.fast.off == nil {
		t.fast.off = make(map[netip.Addr]bool)
	}
	t.fast.off[ap.Addr().Unmap()] = true
	if fp := t.fast.peers[pc]; fp != nil {
		fp.failed = true
	}
	var redial netip.AddrPort
	if ps := t.peers[pc]; ps != nil {
		redial = ps.dialAddr
	}
	t.mu.Unlock()
	t.node.log.Info("bt: fast path to a peer failed; using the BitTorrent connection", "torrent", t.name,
		"peer", ap.Addr(), "err", cause)
	pc.Close()
	if !redial.IsValid() {
		return // it dialed us: it dials again
	}
	go func() {
		// The library skips an address that is still connected; the closed connection leaves
		// it a moment later.
		for wait := 0; wait < 100; wait++ {
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			connected := false
			for _, c := range t.lt.PeerConns() {
				connected = connected || c.RemoteAddr.String() == redial.String()
			}
			if !connected {
				t.lt.AddPeers([]torrent.PeerInfo{{Addr: net.TCPAddrFromAddrPort(redial), Source: torrent.PeerSourceTracker}})
				return
			}
		}
	}()
}

// fetchFast fetches pieces from the peer of pc over its fast path at addr, as long as it has
// pieces this node needs, until ctx ends, the torrent completes or the connection fails. Pieces
// it has requested and not received go back to every path when it returns. It reports whether
// the connection delivered a piece.
func (t *Torrent) fetchFast(ctx context.Context, pc *torrent.PeerConn, addr netip.AddrPort) (got bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, fastDialTimeout)
	conn, err := t.node.dialer.DialContext(dctx, "tcp", addr.String())
	cancel()
	if err != nil {
		return false, fmt.Errorf("dialing its fast path %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write(fastMagicBusy[:]); err != nil {
		return false, fmt.Errorf("fast path %s: %w", addr, err)
	}
	nbuf := fastBuffers(t.info.PieceLength)
	f := &fastFetch{t: t, pc: pc, addr: addr, conn: conn, br: bufio.NewReaderSize(conn, 4096),
		free: make(chan []byte, nbuf), work: make(chan fastPiece, 1), workDone: make(chan struct{})}
	for range nbuf {
		f.free <- directio.AlignedBuf(int(t.info.PieceLength)) // aligned for Package.Direct
	}
	t.mu.Lock()
	if len(t.fast.running) > 1 {
		// Connections to several peers start at different places, so that they take different
		// pieces and the peers' pieces differ. One alone goes in order: the whole-file SHA-1
		// that pkgsync update computes follows the completed pieces in order.
		f.next = rand.IntN(t.info.NumPieces())
	}
	t.mu.Unlock()
	f.depth = fastMinDepth
	defer f.giveBack()
	var checkers sync.WaitGroup
	for range min(fastCheckers, nbuf-1) {
		checkers.Go(func() { f.check(ctx) })
	}
	go func() {
		checkers.Wait()
		close(f.workDone)
	}()
	err = f.run(ctx)
	close(f.work)
	<-f.workDone
	return f.got.Load(), err
}

// fastFetch is one fast-path connection fetching from a peer.
type fastFetch struct {
	t    *Torrent
	pc   *torrent.PeerConn
	addr netip.AddrPort
	conn net.Conn
	br   *bufio.Reader
	// Pieces read from the socket go to goroutines of their own (check) to be hashed and
	// written, while the next one is read: on a fast link hashing and writing a piece take
	// longer than reading it, so fastCheckers pieces are checked at once, beside the reads.
	// Pieces that arrive slowly are checked by the reader (fastInlineRate).
	free     chan []byte    // buffers to read pieces into
	work     chan fastPiece // pieces read, to check
	workDone chan struct{}  // every check returned
	liar     atomic.Bool    // check found a bad piece: the peer is banned
	depth    int
	next     int         // where the search for the next piece starts
	out      []int       // pieces requested, in order
	reqBuf   []byte      // request's message, reused
	got      atomic.Bool // a piece arrived and was stored
	pause    time.Time   // the peer answered busy: no request to it before this
	timer    *time.Timer // wait's, reused
	lowWater int         // the socket's read low-water mark as last set; 0: the default
	writing  sync.Mutex  // held by a checker writing a piece through the page cache (store)
}

// fastPiece is a piece read from the socket, in a buffer of fastFetch.free.
type fastPiece struct {
	p int
	b []byte
}

// fastCheckers is how many goroutines of a connection hash and write the pieces it reads
// (check). Hashing and writing a piece into the page cache cost about twice reading it from
// the socket, so with one the reader waits for it on a fast link; with two, on two cores, the
// three keep pace.
const fastCheckers = 2

// fastBufferBytes bounds the memory of a connection's piece buffers (fastBuffers).
const fastBufferBytes = 8 << 20

// fastBuffers is how many pieces one connection holds in memory, each of pieceLen bytes: one
// being read, one per checker (fastCheckers) and one waiting for a checker; or one being read
// and one checked where that many would take more than fastBufferBytes.
func fastBuffers(pieceLen int64) int {
	n := int64(2 + fastCheckers)
	if n*pieceLen > fastBufferBytes {
		n = 2
	}
	return int(n)
}

// fastInlineRate: a piece that arrived slower than this many bytes a second is checked by the
// connection's reader itself, not handed to check. Hashing it takes a small share of the time
// the next piece takes to arrive, and the hand-off would wake a second thread for every piece;
// on a faster link hashing beside the reads keeps the link busy.
const fastInlineRate = 32 << 20

func (f *fastFetch) run(ctx context.Context) error {
	t := f.t
	for {
		if f.liar.Load() {
			return nil // banned (check): nothing to fall back to
		}
		// Taken before looking for pieces, so that one announced meanwhile still wakes wait.
		wake, closed := f.signals()
		if closed {
			return nil
		}
		if err := f.request(); err != nil {
			return err
		}
		if len(f.out) == 0 {
			if t.Complete() || !f.wait(ctx, wake) {
				return nil
			}
			continue
		}
		p := f.out[0]
		f.out = f.out[1:]
		if err := f.receive(ctx, p); err != nil {
			t.giveBackFast(p)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// request sends requests until depth pieces are in flight or the peer has none left to give,
// once no more than half of depth are: the requests of a batch go in one write, and the
// library hears of the batch's pieces under one lock of its own (leaveToFast), where one at a
// time cost a write and a lock for each piece. The half left in flight keeps the connection busy
// meanwhile.
func (f *fastFetch) request() error {
	if len(f.out) > f.depth/2 || time.Now().Before(f.pause) {
		return nil
	}
	t := f.t
	first := len(f.out)
	msg := f.reqBuf[:0]
	for len(f.out) < f.depth {
		p := t.claimFast(f.pc, &f.next)
		if p < 0 {
			break
		}
		f.out = append(f.out, p)
		msg = append(msg, encodeFastRequest(t.ih, p)...)
	}
	f.reqBuf = msg
	if len(f.out) == first {
		return nil
	}
	t.leaveToFast(f.out[first:])
	if _, err := f.conn.Write(msg); err != nil {
		return fmt.Errorf("fast path %s: requesting pieces %v: %w", f.addr, f.out[first:], err)
	}
	return nil
}

// leaveToFast has the library stop asking stock clients for pieces the fast path took (its
// writes to them are refused already), a run of adjacent pieces at a time.
func (t *Torrent) leaveToFast(ps []int) {
	for i := 0; i < len(ps); {
		j := i + 1
		for j < len(ps) && ps[j] == ps[j-1]+1 {
			j++
		}
		t.lt.CancelPieces(ps[i], ps[j-1]+1)
		i = j
	}
}

// fastWake is what wakes a connection waiting for pieces: a piece given back to every path
// (Torrent-wide), or a piece its peer announced (fastPeer.signal).
type fastWake struct {
	all, peer <-chan struct{}
}

// signals returns the channels that wake the connection once a piece may have become available,
// and whether the peer's BitTorrent connection has closed.
func (f *fastFetch) signals() (w fastWake, closed bool) {
	t := f.t
	t.mu.Lock()
	defer t.mu.Unlock()
	ps, fp := t.peers[f.pc], t.fast.peers[f.pc]
	if ps == nil || ps.closed || fp == nil {
		return w, true
	}
	if t.fast.signal == nil {
		t.fast.signal = make(chan struct{})
	}
	if fp.signal == nil {
		fp.signal = make(chan struct{})
	}
	return fastWake{all: t.fast.signal, peer: fp.signal}, false
}

// fastRecheck bounds a connection's wait for pieces. Every change that can give a waiting
// connection a piece signals it (its peer's announcement, a piece given back by any path:
// fastPeer.signal, fastTorrent.signal), so this is a safety net, long enough that an idle
// connection does not wake its process several times a second.
const fastRecheck = 2 * time.Second

// wait waits until a piece may have become available (w), at most fastRecheck, or until the
// pause after a busy reply ends. It reports false once ctx ends.
func (f *fastFetch) wait(ctx context.Context, w fastWake) bool {
	d := fastRecheck
	if until := time.Until(f.pause); until > 0 {
		d = min(d, until)
	}
	if f.timer == nil {
		f.timer = time.NewTimer(d)
	} else {
		f.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		return false
	case <-w.all:
	case <-w.peer:
	case <-f.timer.C:
	}
	return true
}

// claimFast takes a piece for the fast path to pc's peer: one the peer has and this node
// lacks, not partly present (the range path's) unless the range path gave it up, not refused by
// the peer before, and no other path's. The search starts at *next and moves it past the piece taken. -1: none.
func (t *Torrent) claimFast(pc *torrent.PeerConn, next *int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	fp := t.fast.peers[pc]
	if fp == nil || fp.failed {
		return -1
	}
	p := t.store.claimFast(*next, fp.pieces, func(i int) bool {
		return (t.missing[i] == nil || t.fast.whole[i]) && !fp.refused.Contains(uint32(i))
	})
	if p >= 0 {
		*next = p + 1
	}
	return p
}

// receive reads the reply for piece p and hands the piece to check. A refused piece goes back to
// the other paths here; after an error the caller gives it back.
func (f *fastFetch) receive(ctx context.Context, p int) error {
	t := f.t
	// The time from here to the piece's end is one piece's transfer while requests keep the
	// connection busy (adapt); the header waits for the piece behind it (readHeader).
	start := time.Now()
	n := t.store.pieceLength(p)
	var hdr [fastReplyLen]byte
	if err := f.readHeader(hdr[:], p); err != nil {
		return fmt.Errorf("fast path %s: reading the reply for piece %d: %w", f.addr, p, err)
	}
	kind, err := decodeFastReply(hdr[:], p, t.store.pieceLength)
	if err != nil {
		return fmt.Errorf("fast path %s: %w", f.addr, err)
	}
	switch kind {
	case msgFastBusy:
		// The peer sends pieces to others (fastServeSlots): this one goes back to every
		// path, and this connection asks the peer again a little later.
		f.pause = time.Now().Add(fastBusyWait + rand.N(fastBusyWait))
		t.giveBackFast(p)
		return nil
	case msgFastRefused:
		t.mu.Lock()
		if fp := t.fast.peers[f.pc]; fp != nil {
			fp.refused.Add(uint32(p))
		}
		t.mu.Unlock()
		t.giveBackFast(p)
		return nil
	}
	// The download limit is paid once the reply is known to be data: busy replies are
	// common, and one paid for would lower the rate.
	var paid int64
	var buf []byte
	select {
	case buf = <-f.free:
	case <-ctx.Done():
		return ctx.Err()
	}
	b := buf[:n]
	for off := int64(0); off < n; {
		k := min(fastRead, n-off)
		if due := off + k - paid; due > 0 {
			if err := waitRate(ctx, t.node.downLimit, int(due)); err != nil {
				f.free <- buf
				return err
			}
			paid += due
		}
		// The mark matters only to a read that waits on the socket: one that the buffer
		// serves leaves it as it is (a system call saved, and a wake-up, since lowering the
		// mark wakes the poller when enough is there).
		if f.br.Buffered() == 0 {
			if err := f.setLowWater(int(min(n-off, fastLowWater))); err != nil {
				f.free <- buf
				return err
			}
		}
		// Whatever the socket holds, not k bytes at once: each read shows the scheduler that
		// the piece is moving (a slow peer's pieces are not taken for stalled).
		m, err := f.br.Read(b[off : off+k])
		if err != nil {
			f.free <- buf
			return fmt.Errorf("fast path %s: reading piece %d: %w", f.addr, p, err)
		}
		t.store.noteWrite(p)
		off += int64(m)
	}
	took := time.Since(start)
	f.adapt(took)
	t.store.peerBytes.Add(n)
	if float64(n) < fastInlineRate*took.Seconds() {
		f.checkPiece(ctx, fastPiece{p: p, b: b})
	} else {
		f.work <- fastPiece{p: p, b: b}
	}
	return nil
}

// readHeader reads the header of the reply for piece p into hdr. A reply is mostly the piece
// behind its header, so the read waits in the kernel until both are there (up to fastLowWater
// of the piece): one wake-up for the header and the piece, not one for each. A refusal is a
// header alone; if no more than that comes within fastHeaderWait, the read takes the header
// by itself.
func (f *fastFetch) readHeader(hdr []byte, p int) error {
	if f.br.Buffered() == 0 {
		want := len(hdr) + int(min(f.t.store.pieceLength(p), fastLowWater))
		if err := f.setLowWater(want); err != nil {
			return err
		}
		if err := f.conn.SetReadDeadline(time.Now().Add(fastHeaderWait)); err != nil {
			return err
		}
		_, err := f.br.Peek(len(hdr))
		if err := f.conn.SetReadDeadline(time.Time{}); err != nil {
			return err
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
	// A mark above what is still to come of the header would hold the read until the next
	// reply: the buffer may hold the header's first bytes (the previous piece's last read
	// filled it past the piece).
	if b := f.br.Buffered(); b < len(hdr) {
		if err := f.setLowWater(len(hdr) - b); err != nil {
			return err
		}
	}
	_, err := io.ReadFull(f.br, hdr)
	return err
}

// setLowWater sets the connection's read low-water mark to n bytes, unless it is set so already.
func (f *fastFetch) setLowWater(n int) error {
	if n == f.lowWater {
		return nil
	}
	if err := setReadLowWater(f.conn, n); err != nil {
		return fmt.Errorf("fast path %s: setting the read low-water mark: %w", f.addr, err)
	}
	f.lowWater = n
	return nil
}

// check hashes the pieces receive read and stores those that match; a piece that does not
// match bans the peer and goes back to the other paths. Either way the piece is no longer the
// reader's to give back. Several checks run at once (fastCheckers), each taking the next
// piece read.
func (f *fastFetch) check(ctx context.Context) {
	for fp := range f.work {
		f.checkPiece(ctx, fp)
	}
}

// checkPiece hashes one piece receive read and stores it if it matches; a piece that does not
// match bans the peer and goes back to the other paths, as does every piece after it. Its
// buffer then goes back to f.free.
func (f *fastFetch) checkPiece(ctx context.Context, fp fastPiece) {
	t := f.t
	defer func() { f.free <- fp.b[:cap(fp.b)] }()
	if f.liar.Load() {
		t.giveBackFast(fp.p)
		return
	}
	sum := sha1.Sum(fp.b)
	switch {
	case !bytes.Equal(sum[:], t.info.Pieces[fp.p*sha1.Size:(fp.p+1)*sha1.Size]):
		f.liar.Store(true)
		f.ban(fp.p)
		t.giveBackFast(fp.p)
	case f.store(ctx, fp.p, fp.b) != nil:
		t.giveBackFast(fp.p) // the download has failed (setFatal)
	}
}

// store writes verified piece p and has the library mark it complete, in the background.
func (f *fastFetch) store(ctx context.Context, p int, b []byte) error {
	t := f.t
	off := int64(p) * t.info.PieceLength
	// The checkers hash at once but write through the page cache in turn (writeWhole).
	err := t.store.writeWhole(b, off, &f.writing)
	if err != nil {
		err = fmt.Errorf("bt: %q: storing piece %d from a peer (fast path) at %d of %s: %w", t.name, p, off, t.store.f.Name(), err)
		t.setFatal(err)
		return err
	}
	t.fastDown.Add(int64(len(b)))
	f.got.Store(true)
	t.mu.Lock()
	t.peerLocked(f.pc).down += int64(len(b))
	t.mu.Unlock()
	t.markFast(ctx, p)
	return nil
}

// markFast has the library mark verified piece p complete, with the others that arrive before
// the next multiple of fastMarkDelay (markFastLoop), or at once when fastMarkBatch are waiting or p is the last piece
// this node lacks: on a fast link a batch fills in moments, and the download's end waits for no
// timer.
func (t *Torrent) markFast(ctx context.Context, p int) {
	t.mu.Lock()
	t.fast.toMark = append(t.fast.toMark, p)
	start := !t.fast.marking
	if start {
		t.fast.marking = true
		t.fast.markNow = make(chan struct{}, 1)
		t.fast.wg.Add(1)
	}
	now := len(t.fast.toMark) >= fastMarkBatch ||
		t.store.completed()+t.fast.inMark+len(t.fast.toMark) >= t.info.NumPieces()
	if now {
		select {
		case t.fast.markNow <- struct{}{}:
		default:
		}
	}
	markNow := t.fast.markNow
	t.mu.Unlock()
	if start {
		go t.markFastLoop(ctx, markNow)
	}
}

// markFastLoop hands the pieces of t.fast.toMark to the library (completeFast), all those
// gathered until the next multiple of fastMarkDelay on the wall clock (untilMark), or until
// markNow, at once, until none is left.
func (t *Torrent) markFastLoop(ctx context.Context, markNow <-chan struct{}) {
	defer t.fast.wg.Done()
	timer := time.NewTimer(untilMark(time.Now()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
		case <-markNow:
		case <-timer.C:
		}
		t.mu.Lock()
		batch := t.fast.toMark
		t.fast.toMark = nil
		t.fast.inMark = len(batch)
		if len(batch) == 0 {
			t.fast.marking = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		for _, p := range batch {
			t.completeFast(p)
		}
		t.mu.Lock()
		t.fast.inMark = 0
		t.mu.Unlock()
		timer.Reset(untilMark(time.Now()))
	}
}

// untilMark returns how long it is from now until the next multiple of fastMarkDelay on the
// wall clock, when markFastLoop hands its batch over. Every node hands its batches over at the
// same instants (clocks in a data center agree to well within fastMarkDelay), so the HAVEs
// its peers send for them arrive together, and a node takes them in one wake-up rather than
// one per peer; a process woken costs more CPU than the messages it reads.
func untilMark(now time.Time) time.Duration {
	return now.Truncate(fastMarkDelay).Add(fastMarkDelay).Sub(now)
}

// completeFast has the library take verified piece p, which the fast path wrote, as complete,
// and ends the fast path's hold on it. Storage says the piece is complete, and
// Piece.UpdateCompletion has the library read that and announce the piece, under one client
// lock: the library's own verification would queue the piece for a hasher goroutine and wake
// the caller once it is hashed, several goroutine hand-offs per piece for a hash the fast path
// has already checked.
func (t *Torrent) completeFast(p int) {
	t.store.setComplete(p, true)
	select {
	case <-t.lt.Closed():
	default:
		t.lt.Piece(p).UpdateCompletion()
	}
	t.giveBackFast(p)
}

// adapt sets how many requests the connection keeps in flight from how long a piece took to
// arrive after the one before it: fastAhead of transfer, within the bounds.
func (f *fastFetch) adapt(took time.Duration) {
	if took <= 0 {
		f.depth = fastMaxDepth
		return
	}
	ahead := int(int64(fastAhead)/int64(took)) + 1
	f.depth = min(max(ahead+1, fastMinDepth), fastMaxDepth)
}

// ban bans the fast-path peer that sent a bad copy of piece p.
func (f *fastFetch) ban(p int) {
	t := f.t
	a := f.addr.Addr()
	t.mu.Lock()
	if fp := t.fast.peers[f.pc]; fp != nil {
		fp.failed = true // no new connection to it while the ban closes this one
	}
	t.mu.Unlock()
	if t.node.ban(a) && t.node.bans.firstLog(a) {
		t.node.log.Info("bt: banned peer", "torrent", t.name, "peer", a,
			"reason", "sent a piece over pkgsync_fast that failed verification", "piece", p)
	}
}

// giveBack returns the pieces requested and not received.
func (f *fastFetch) giveBack() {
	for _, p := range f.out {
		f.t.giveBackFast(p)
	}
	f.out = nil
}

// giveBackFast ends the fast path's hold on piece p. A piece that did not complete goes back
// to the library (and the other paths), and the connections waiting for pieces are woken; a
// complete one wakes nobody, since no path can take it.
func (t *Torrent) giveBackFast(p int) {
	if !t.store.releaseFast(p) || t.store.isComplete(p) {
		return
	}
	t.lt.DownloadPieces(p, p+1)
	t.mu.Lock()
	t.fastSignalLocked()
	t.mu.Unlock()
}
