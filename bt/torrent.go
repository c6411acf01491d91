package bt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"

	"github.com/pkgsync/pkgsync/originplan"
)

// OriginFunc fetches the bytes of one piece that are still missing from the origin and
// writes them into the Package's Data file at their offsets. It returns how many bytes it
// fetched. The piece is verified (SHA-1) after it returns; no peer writes to the piece
// while it runs. It must honour ctx and may be called for several pieces at once.
type OriginFunc func(ctx context.Context, piece int) (bytes int64, err error)

// Package is one file (or torrent byte sequence) to obtain or serve.
type Package struct {
	// MetaInfo describes the data; it must be a BitTorrent v1 torrent. Its trackers are
	// announced to; its url-list web seeds are ignored (the origin is reached through
	// Origin only).
	MetaInfo *metainfo.MetaInfo
	// Data holds the torrent's bytes at their torrent offsets; its size must be the
	// torrent's length. Opened read-write, or read-only when every piece is Have. It must
	// stay open until the Torrent or its Node is closed.
	Data *os.File
	// Direct, if set, is Data's file opened a second time for writes that bypass the page
	// cache (directio.Open). The fast path writes the verified pieces it receives through it
	// where they are at least directio.MinWrite long and offset, length and buffer are
	// aligned, and the rest through Data; once the file system refuses an O_DIRECT write
	// (EINVAL), everything goes through Data. Writing through the page cache first allocates
	// and dirties a page per 4 KiB, which on a fast link cost the downloader more CPU than
	// receiving and hashing the piece (docs/BENCHMARKS.md). A piece that peers then fetch
	// from this node is read back from the disk. Direct must stay open as long as Data; the
	// caller closes it.
	Direct *os.File
	// Have marks the pieces the caller has verified complete: len(Have) == NumPieces, or
	// nil for none.
	Have []bool
	// Origin fetches a piece from the origin; nil means peers only.
	Origin OriginFunc
	// Refetch, if set, is used instead of Origin when a piece that Origin wrote failed
	// verification: it must fetch the whole piece, since a bad peer may have overwritten
	// bytes that Origin assumed were already in place. Nil means Origin is retried.
	Refetch OriginFunc
	// OriginFetcher, if set, replaces Origin and Refetch: Download asks it for a run of
	// adjacent pieces in one Fetch (few requests to the origin) and verifies each piece as its
	// bytes arrive. It is asked for the Missing ranges of a piece, or the whole piece; the
	// whole piece again after the piece failed verification.
	OriginFetcher RangeFetcher
	// Peers are dialed in addition to the peers the trackers return.
	Peers []netip.AddrPort
	// Missing, if set, returns the byte ranges (torrent offsets) of a piece not in Have
	// that Data does not hold yet; the rest of the piece is assumed to be in place. Nil,
	// or no ranges, or ranges covering the whole piece, mean the whole piece is missing.
	// It is called once per piece not in Have, by Add.
	//
	// Download completes a partly present piece that a pkgsync peer has by asking such
	// peers for the missing ranges only (rangeExtension), then verifies it. If that fails
	// the piece is fetched whole from peers, or its missing ranges from the origin.
	Missing func(piece int) []Range
	// OriginAddrs are the origin's addresses, for the site rule (sites.go): with a
	// Config.Topology that places them and this node, a node keeps out of other sites
	// unless it is its site's gateway. Empty: no site rule. A seeder at one of them is
	// taken for the origin (see Torrent.atOrigin) while Origin works.
	OriginAddrs []netip.Addr
	// PeerWait, if positive, replaces Config.PeerWait for this package: a small file that
	// blocks what follows (the .zsync) should not wait long for peers that may never come.
	PeerWait time.Duration
	// Written, if set, is called with the count of bytes after each write into Data (by
	// peers, the fast path or the origin; not the writes through Direct), from several
	// goroutines at once, and must not block: the caller may push the bytes on to the disk
	// while the download goes on, so that its fsync at the end has little left to wait for.
	Written func(n int64)
}

// notifyingFile is a Package's Data whose writes are reported to Package.Written.
type notifyingFile struct {
	*os.File
	written func(n int64)
}

func (f notifyingFile) WriteAt(b []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(b, off)
	if n > 0 {
		f.written(int64(n))
	}
	return n, err
}

// dataFile returns what the Torrent writes p.Data through: p.Data itself, or with its writes
// reported to p.Written.
func (p Package) dataFile() dataFile {
	if p.Written == nil {
		return p.Data
	}
	return notifyingFile{File: p.Data, written: p.Written}
}

// Torrent is a Package added to a Node. It serves its complete pieces to peers from the
// moment it is added until Close, and downloads the missing ones during Download.
type Torrent struct {
	node  *Node
	lt    *torrent.Torrent
	pkg   Package
	info  *metainfo.Info
	ih    metainfo.Hash
	store *fileStorage
	name  string
	// missing holds the missing ranges of each partly present piece (see
	// Package.Missing); nil for the others.
	missing [][]Range

	ctx    context.Context // lifetime of the Torrent (announcer)
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	downloading atomic.Bool
	wake        chan struct{}

	originBytes    atomic.Int64
	originRequests atomic.Int64
	rangeUp        atomic.Int64  // bytes sent in answer to range requests
	fastUp         atomic.Int64  // bytes sent over the fast path (fast.go)
	fastDown       atomic.Int64  // bytes received over the fast path and stored
	serving        chan struct{} // semaphore of range requests being served

	// mu guards the fields below. It is a leaf lock: nothing calls into the library while
	// holding it, since the library's callbacks take it with the client lock held.
	mu      sync.Mutex
	peers   map[*torrent.PeerConn]*peerState
	remotes map[[20]byte]*remoteNode // what pkgsync peers said, by peer ID
	known   map[netip.AddrPort]bool  // addresses handed to the library to dial
	held    map[netip.AddrPort]bool  // known addresses the site rule keeps from the library
	siteOff bool                     // the site rule was dropped: no progress under it
	// originSeedOff: the origin failed, so peers on its host are heard again (atOrigin).
	originSeedOff bool
	announced     bool // every tracker answered (or failed) at least once
	trackerOK     bool // some tracker answered an announce (TrackerAnswered)
	// seedersReported is the most seeders a tracker reported at its last answer: the gate
	// waits for one to connect before the first origin request (GateView.SeederAway).
	seedersReported int32
	// elected is this node's list of elected origin fetchers (originplan.Election) as its
	// origin gate opened.
	elected    originplan.Heard
	fatal      error
	dlDone     chan struct{} // closed when the running Download returns
	fromOrigin []int         // pieces this node got from the origin, for HandOver
	// rangeInbox holds range replies for the running Download.
	rangeInbox []rangeReply
	// role is the origin role a coordinating tracker gave (announce.go), nil under a stock one.
	role *originplan.Role
	fast fastTorrent // the fast path's peers (fast.go)
}

// remoteNode is what a pkgsync peer said over claimExtension. It is kept by peer ID, not
// by connection: of two crossed connections between two nodes one is dropped, possibly
// after it carried messages.
type remoteNode struct {
	claims map[int]time.Time // piece -> expiry
	origin bool              // said it shares the origin work
	said   bool              // said whether it does
	slot   int               // the origin fetcher slot it said it holds ('s'), -1: none or not said
	// elected is its last list of elected origin fetchers ('e', originplan.Election), and
	// electedGen counts the lists it sent (the scheduler's electKey).
	elected    originplan.Heard
	electedGen uint64
}

// peerState is what the callbacks learned about one connection.
type peerState struct {
	id         [20]byte
	addr       string // dial address when known, else the remote address
	dialAddr   netip.AddrPort
	ip         netip.Addr // the connection's remote address, unmapped
	extAt      time.Time  // extended handshake received
	haveMsgAt  time.Time  // first bitfield/have-all/have-none/have received
	claimsOK   bool       // speaks claimExtension
	rangeOK    bool       // speaks rangeExtension
	greeted    bool       // was sent our current claims
	closed     bool
	clientName string
	down, up   int64
	// farSite: the peer is in another site than this node, which is in the origin's
	// (see farFromOriginSite); what it says it has is not passed on to the library.
	farSite bool
	// originHost: the peer runs on the origin's host and this node fetches from the origin
	// (see atOrigin). originSeeder: it also said it has every piece as it connected; what
	// it says it has is not passed on to the library, until the origin fails
	// (Torrent.originSeedOff).
	originHost, originSeeder bool
	// saysSeeder: the peer said in its extended handshake that it only seeds
	// (Config.Seeder, seederExtension).
	saysSeeder bool
	rangeUp    int64 // sent over rangeExtension
	fastUp     int64 // sent over the fast path
}

// config is the Node's Config with the Package's overrides.
func (t *Torrent) config() Config {
	c := t.node.cfg
	if t.pkg.PeerWait > 0 {
		c.PeerWait = t.pkg.PeerWait
	}
	return c
}

// Add adds p to the Node. Complete pieces are served at once, missing ones are requested
// from peers at once (partly present ones wait for Download); Download fetches what the
// peers cannot give.
func (n *Node) Add(ctx context.Context, p Package) (*Torrent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bt: add: %w", err)
	}
	info, err := checkPackage(p)
	if err != nil {
		return nil, err
	}
	// A torrent that FetchInfo left for this info hash gives way: one library torrent per
	// info hash.
	n.takeMeta(p.MetaInfo.HashInfoBytes())
	t := n.newTorrent(p, info)
	// Register first: connections for this info hash may arrive as soon as it is added.
	if err := n.register(t); err != nil {
		return nil, err
	}
	if err := t.addToClient(); err != nil {
		n.unregister(t)
		return nil, err
	}
	t.requestMissing()
	t.addPeers(p.Peers, torrent.PeerSourceDirect)

	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.announceLoop(t.ctx)
	}()
	return t, nil
}

// checkPackage returns p's info dictionary once it is sure that the torrent is a v1 one whose
// pieces fit its length, and that p.Have and p.Data fit the torrent.
func checkPackage(p Package) (*metainfo.Info, error) {
	if p.MetaInfo == nil || p.Data == nil {
		return nil, errors.New("bt: add: Package needs MetaInfo and Data")
	}
	info, err := p.MetaInfo.UnmarshalInfo()
	if err != nil {
		return nil, fmt.Errorf("bt: add %s: info dictionary: %w", p.Data.Name(), err)
	}
	name := info.BestName()
	if !info.HasV1() || info.HasV2() {
		return nil, fmt.Errorf("bt: add %q: only BitTorrent v1 torrents are supported", name)
	}
	if len(info.Pieces)%20 != 0 || info.PieceLength <= 0 ||
		(info.TotalLength()+info.PieceLength-1)/info.PieceLength != int64(info.NumPieces()) {
		return nil, fmt.Errorf("bt: add %q: piece length %d and %d piece hashes do not fit length %d",
			name, info.PieceLength, len(info.Pieces)/20, info.TotalLength())
	}
	if p.Have != nil && len(p.Have) != info.NumPieces() {
		return nil, fmt.Errorf("bt: add %q: Have has %d entries for %d pieces", name, len(p.Have), info.NumPieces())
	}
	st, err := p.Data.Stat()
	if err != nil {
		return nil, fmt.Errorf("bt: add %q: %w", name, err)
	}
	if st.Size() != info.TotalLength() {
		return nil, fmt.Errorf("bt: add %q: %s has %d bytes, the torrent %d", name, p.Data.Name(), st.Size(), info.TotalLength())
	}
	return &info, nil
}

// newTorrent makes the Torrent of p, not yet known to the Node or the library, with the
// missing ranges of its partly present pieces.
func (n *Node) newTorrent(p Package, info *metainfo.Info) *Torrent {
	t := &Torrent{
		node:    n,
		pkg:     p,
		info:    info,
		ih:      p.MetaInfo.HashInfoBytes(),
		store:   newFileStorage(p.dataFile(), info, p.Have),
		name:    info.BestName(),
		wake:    make(chan struct{}, 1),
		serving: make(chan struct{}, rangeServing),
		peers:   make(map[*torrent.PeerConn]*peerState),
		remotes: make(map[[20]byte]*remoteNode),
		known:   make(map[netip.AddrPort]bool),
		held:    make(map[netip.AddrPort]bool),
	}
	t.store.onChange = t.poke
	if p.Direct != nil { // not a typed nil in the interface
		t.store.direct.Direct = p.Direct
	}
	t.store.onFree = t.fastFreed
	t.missing = make([][]Range, info.NumPieces())
	if p.Missing != nil {
		for i := range info.NumPieces() {
			if p.Have != nil && p.Have[i] {
				continue
			}
			off, l := int64(i)*info.PieceLength, t.store.pieceLength(i)
			if m := p.Missing(i); !isWhole(m, off, l) {
				t.missing[i] = m
			}
		}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t
}

// register makes t the Node's torrent of its info hash, unless the Node is closed or has one.
func (n *Node) register(t *Torrent) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("bt: add %q: node is closed", t.name)
	}
	if _, dup := n.torrents[t.ih]; dup {
		return fmt.Errorf("bt: add %q: info hash %s already added", t.name, t.ih.HexString())
	}
	n.torrents[t.ih] = t
	return nil
}

// addToClient adds t to the library, on t's storage.
func (t *Torrent) addToClient() error {
	lt, isNew := t.node.cl.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  t.ih,
		Storage:   t.store,
		InfoBytes: t.pkg.MetaInfo.InfoBytes,
	})
	if !isNew || lt.Info() == nil {
		if isNew {
			lt.Drop()
		}
		return fmt.Errorf("bt: add %q: the client did not accept info hash %s", t.name, t.ih.HexString())
	}
	t.lt = lt
	// The library calls this in a goroutine of its own, without its lock.
	lt.SetOnWriteChunkError(func(err error) {
		if !errors.Is(err, errPieceBusy) {
			t.setFatal(fmt.Errorf("bt: %q: storing a chunk from a peer: %w", t.name, err))
			lt.DisallowDataDownload()
		}
	})
	return nil
}

// requestMissing puts the missing pieces to normal priority: peers are asked for them right
// away. Partly present pieces wait for Download, which asks pkgsync peers for their missing
// ranges.
func (t *Torrent) requestMissing() {
	have := make([]bool, t.info.NumPieces())
	copy(have, t.pkg.Have)
	for i := range have {
		have[i] = have[i] || t.missing[i] != nil
	}
	for b := 0; b < len(have); {
		if have[b] {
			b++
			continue
		}
		e := b + 1
		for e < len(have) && !have[e] {
			e++
		}
		t.lt.DownloadPieces(b, e)
		b = e
	}
}

func (n *Node) unregister(t *Torrent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.torrents[t.ih] == t {
		delete(n.torrents, t.ih)
	}
}

// Close stops announcing (telling the trackers it stopped), drops the torrent from the
// Node and waits for a running Download to return. Data is left open.
func (t *Torrent) Close() error {
	t.once.Do(func() {
		t.cancel()
		t.stopFast()
		t.wg.Wait()
		t.lt.Drop()
		t.node.unregister(t)
		// A running Download notices the drop; wait until its origin fetches are over.
		t.mu.Lock()
		dl := t.dlDone
		t.mu.Unlock()
		if dl != nil {
			<-dl
		}
	})
	return nil
}

// Name returns the torrent's name (its info's).
func (t *Torrent) Name() string {
	return t.name
}

// NumPieces returns the number of pieces of the torrent.
func (t *Torrent) NumPieces() int {
	return t.info.NumPieces()
}

// Complete reports whether every piece is complete and verified.
func (t *Torrent) Complete() bool {
	return t.store.completed() == t.info.NumPieces()
}

// HandOver waits, at most max, until every connected peer holds each piece this node got from
// the origin, or no peer is connected any more, and reports how many pieces it got from the
// origin and how many of them a connected peer still lacked when it returned (all of them
// when none is connected). A node about to leave (update --seed-time 0) calls it: where it
// fetched a piece that its peers had not taken yet, leaving at once sends them back to the
// origin for it (seen in tests: the origin sent 1.2-2.3x the missing bytes to four nodes
// updating together, instead of 1.0x).
//
// Every peer, not some peer: nodes that finish together each see the others hold their pieces
// and all leave, and the one still behind goes to the origin for what they took along (four
// nodes updating from S3 made it send 1.55x the missing bytes that way). A peer that leaves
// (one that completes may drop its connection at once: two seeders have nothing to trade)
// no longer counts.
func (t *Torrent) HandOver(ctx context.Context, max time.Duration) (fromOrigin, left int) {
	t.mu.Lock()
	pieces := slices.Clone(t.fromOrigin)
	t.mu.Unlock()
	if len(pieces) == 0 {
		return 0, 0
	}
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conns := t.lt.PeerConns()
		held := make([]*roaring.Bitmap, len(conns))
		for i, pc := range conns {
			held[i] = t.peerPieces(pc)
		}
		left = lackedBySome(pieces, held)
		if left == 0 || len(conns) == 0 {
			return len(pieces), left
		}
		select {
		case <-ctx.Done():
			return len(pieces), left
		case <-deadline.C:
			return len(pieces), left
		case <-tick.C:
		}
	}
}

// lackedBySome counts the pieces that at least one of the bitfields held lacks; with no
// bitfield at all, every piece (nobody else holds it).
func lackedBySome(pieces []int, held []*roaring.Bitmap) int {
	if len(held) == 0 {
		return len(pieces)
	}
	n := 0
	for _, p := range pieces {
		for _, h := range held {
			if !h.Contains(uint32(p)) {
				n++
				break
			}
		}
	}
	return n
}

// PieceComplete reports whether piece i is complete and verified: its bytes in the data file
// are final, unless CompletionLosses grows (a piece failed a later check and is fetched again).
func (t *Torrent) PieceComplete(i int) bool {
	return t.store.isComplete(i)
}

// CompletionLosses counts the times a complete piece became incomplete again. A caller that
// read complete pieces while the download went on compares it before and after.
func (t *Torrent) CompletionLosses() int64 {
	return t.store.completionLosses()
}

// NumConns returns how many peer connections are open now.
func (t *Torrent) NumConns() int {
	return len(t.lt.PeerConns())
}

// PiecesComplete returns how many pieces are complete and verified so far.
func (t *Torrent) PiecesComplete() int {
	return t.store.completed()
}

// Stats describes what a Torrent transferred.
type Stats struct {
	// BytesFromPeers counts piece data accepted from peers (including data that later
	// failed verification), whole chunks and missing ranges alike; BytesFromOrigin is the
	// sum of what the OriginFunc returned, or of what the OriginFetcher wrote, over
	// OriginRequests fetches (an OriginFunc call, or a run of pieces). BytesUploaded is
	// piece data sent to peers, range replies included.
	BytesFromPeers, BytesFromOrigin, OriginRequests, BytesUploaded int64
	// BytesFromPeersFast and BytesUploadedFast are the parts of BytesFromPeers and
	// BytesUploaded that went over the fast path between pkgsync nodes (fast.go).
	BytesFromPeersFast, BytesUploadedFast int64
	// BytesWrittenDirect counts the bytes written with O_DIRECT (Package.Direct).
	BytesWrittenDirect int64
	// ChunksWasted counts chunks that arrived from peers when the piece already had them
	// (two peers answered the same request, or a request was cancelled too late).
	ChunksWasted int64
	// Peers lists every peer connected at some point, by address.
	Peers []PeerStat
}

// PeerStat is what one peer address gave and took.
type PeerStat struct {
	Addr       string `json:"addr"`
	ClientName string `json:"client"`
	// Downloaded is useful piece data received from the peer, Uploaded piece data sent.
	Downloaded int64 `json:"downloaded"`
	Uploaded   int64 `json:"uploaded"`
}

// Stats returns the transfer counters so far.
func (t *Torrent) Stats() Stats {
	t.refreshPeerStats()
	s := Stats{
		BytesFromPeers:  t.store.peerBytes.Load(),
		BytesFromOrigin: t.originBytes.Load(),
		OriginRequests:  t.originRequests.Load(),
	}
	s.BytesFromPeersFast, s.BytesUploadedFast = t.fastDown.Load(), t.fastUp.Load()
	s.BytesWrittenDirect = t.store.direct.Bytes()
	s.BytesUploaded = t.uploaded() + t.rangeUp.Load() + s.BytesUploadedFast
	ls := t.lt.Stats()
	s.ChunksWasted = ls.ChunksReadWasted.Int64()
	byAddr := make(map[string]*PeerStat)
	t.mu.Lock()
	for _, ps := range t.peers {
		st := byAddr[ps.addr]
		if st == nil {
			st = &PeerStat{Addr: ps.addr}
			byAddr[ps.addr] = st
		}
		st.ClientName = cmp.Or(ps.clientName, st.ClientName)
		st.Downloaded += ps.down
		st.Uploaded += ps.up + ps.rangeUp + ps.fastUp
	}
	t.mu.Unlock()
	for _, st := range byAddr {
		s.Peers = append(s.Peers, *st)
	}
	slices.SortFunc(s.Peers, func(a, b PeerStat) int { return cmp.Compare(a.Addr, b.Addr) })
	return s
}

// uploaded returns the piece data sent to peers so far.
func (t *Torrent) uploaded() int64 {
	ts := t.lt.Stats()
	return ts.BytesWrittenData.Int64()
}

// refreshPeerStats copies the library's per-connection counters into the peer table, so
// they outlive the connections.
func (t *Torrent) refreshPeerStats() {
	var rows []row
	for _, pc := range t.lt.PeerConns() {
		rows = append(rows, peerRow(pc))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range rows {
		t.recordLocked(r)
	}
}

// peerRow reads a connection's name and upload counter; it takes the client lock.
func peerRow(pc *torrent.PeerConn) row {
	st := pc.Stats()
	name, _ := pc.PeerClientName.Load().(string)
	return row{pc: pc, name: name, up: st.BytesWrittenData.Int64()}
}

// row is what refreshPeerStats reads of one connection.
type row struct {
	pc   *torrent.PeerConn
	name string
	up   int64
}

func (t *Torrent) recordLocked(r row) {
	ps := t.peerLocked(r.pc)
	ps.clientName = cmp.Or(r.name, ps.clientName)
	ps.up = max(ps.up, r.up)
}

func (t *Torrent) onUsefulData(pc *torrent.PeerConn, n int64) {
	t.mu.Lock()
	t.peerLocked(pc).down += n
	t.mu.Unlock()
}

// peerLocked returns the state of pc, creating it. t.mu must be held. Only fields the
// library sets before a connection is added to the torrent are read from pc.
func (t *Torrent) peerLocked(pc *torrent.PeerConn) *peerState {
	ps := t.peers[pc]
	if ps == nil {
		ps = &peerState{id: pc.PeerID, addr: pc.RemoteAddr.String()}
		if ap, err := netip.ParseAddrPort(pc.RemoteAddr.String()); err == nil {
			ps.ip = ap.Addr().Unmap()
			if pc.Discovery != torrent.PeerSourceIncoming {
				ps.dialAddr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			}
			ps.farSite = t.farFromOriginSite(ap.Addr())
			ps.originHost = t.atOrigin(ap.Addr())
		}
		t.peers[pc] = ps
	}
	return ps
}

func (t *Torrent) onExtendedHandshake(pc *torrent.PeerConn, port int, claims, ranges, seeder bool) {
	t.mu.Lock()
	ps := t.peerLocked(pc)
	ps.extAt = time.Now()
	ps.claimsOK = claims
	ps.rangeOK = ranges
	ps.saysSeeder = seeder
	if !ps.dialAddr.IsValid() && port > 0 && port < 1<<16 {
		if ap, err := netip.ParseAddrPort(pc.RemoteAddr.String()); err == nil {
			ps.dialAddr = netip.AddrPortFrom(ap.Addr().Unmap(), uint16(port))
			ps.addr = ps.dialAddr.String()
		}
	}
	t.mu.Unlock()
	t.poke()
}

// onHaveMessage notes that a peer said which pieces it has, and reports whether the library
// must not hear it: a node of the origin's site takes nothing from other sites while the
// site rule holds (see farFromOriginSite), and a node that fetches from the origin nothing
// from a seeder on the origin's host while the origin works (see atOrigin).
func (t *Torrent) onHaveMessage(pc *torrent.PeerConn, msg *pp.Message) (hide bool) {
	t.mu.Lock()
	ps := t.peerLocked(pc)
	// A HAVE needs a round at once only for the first message of a peer (the gate), a partly
	// present piece (the range path asks the peer for it) and a piece being fetched (a run from
	// the origin gives it up to the peer): the origin's plan for the other pieces reads what
	// peers have at the next tick. In a swarm HAVEs come by the thousand a second, and each
	// would cost a round.
	wake := msg.Type != pp.Have || ps.haveMsgAt.IsZero() || int(msg.Index) >= t.info.NumPieces() ||
		t.missing[msg.Index] != nil || t.store.inFlight(int(msg.Index))
	if ps.haveMsgAt.IsZero() {
		ps.haveMsgAt = time.Now()
		// A pkgsync peer is that seeder only if it says it only seeds; a stock client has
		// no way to say so, and one with every piece on that host is taken for it.
		ps.originSeeder = ps.originHost && !t.originSeedOff && t.says(msg) == t.info.NumPieces() &&
			!t.namedFetcherLocked(ps.id) && (!ps.claimsOK || ps.saysSeeder)
	}
	hide = (ps.farSite && !t.siteOff) || (ps.originSeeder && !t.originSeedOff)
	if !hide {
		hide = t.fastHaveLocked(pc, msg) // the fast path takes what it has instead
	}
	t.mu.Unlock()
	if wake {
		t.poke()
	}
	return hide
}

// says returns how many pieces a bitfield, have-all or have-none message says the peer
// has, and -1 for other messages.
func (t *Torrent) says(msg *pp.Message) int {
	switch msg.Type {
	case pp.HaveAll:
		return t.info.NumPieces()
	case pp.HaveNone:
		return 0
	case pp.Bitfield:
		n := 0
		for i, b := range msg.Bitfield {
			if b && i < t.info.NumPieces() {
				n++
			}
		}
		return n
	}
	return -1
}

// atOrigin reports whether a peer at a runs on the origin's host (Package.OriginAddrs)
// while this node fetches from the origin: a node of a site without the origin does not.
// Such a peer that has every piece when it connects is a seeder beside the web server,
// and the library would ask it for pieces in rarest-first order on every node at once,
// with no regard for what the others ask: in the swarm benchmark's classic scenario (16
// nodes) the origin's host sent 1.5 times the package that way. The same bytes leave the
// same host's link through the origin path, where the nodes share the work out and each
// piece leaves once, so the library is not told what such a seeder has (a node that is
// still downloading on that host is heard as any peer, and so is one a coordinating tracker
// names an origin fetcher, by peer ID, see namedFetcherLocked, and a pkgsync peer that does
// not say it only seeds, see Config.Seeder). If the origin fails, the node falls back to the
// seeder (useOriginSeeders).
func (t *Torrent) atOrigin(a netip.Addr) bool {
	if !t.usesOrigin() || !slices.Contains(t.pkg.OriginAddrs, a.Unmap()) {
		return false
	}
	self, origin := t.sites()
	return self == "" || origin == "" || self == origin
}

// usesOrigin reports whether the Package names a way to the origin.
func (t *Torrent) usesOrigin() bool { return t.pkg.Origin != nil || t.pkg.OriginFetcher != nil }

// sites returns this node's site and the origin's by Config.Topology; "" for one it does
// not place (or when there is no topology).
func (t *Torrent) sites() (self, origin string) {
	m := t.node.cfg.Topology
	if m == nil || !t.node.addr.Addr().IsValid() {
		return "", ""
	}
	return m.Site(t.node.addr.Addr().Unmap()), originSite(m, t.pkg.OriginAddrs)
}

// useOriginSeeders stops hiding the seeders on the origin's host (see atOrigin) and
// reconnects to them, so that the library hears what they have. It reports whether it
// closed any connection.
func (t *Torrent) useOriginSeeders() bool {
	t.mu.Lock()
	if t.originSeedOff {
		t.mu.Unlock()
		return false
	}
	t.originSeedOff = true
	var drop []*torrent.PeerConn
	redial := make(map[netip.AddrPort]bool)
	for pc, ps := range t.peers {
		if ps.originSeeder && !ps.closed {
			drop = append(drop, pc)
			if ps.dialAddr.IsValid() {
				redial[ps.dialAddr] = true
			}
		}
	}
	t.mu.Unlock()
	for _, pc := range drop {
		pc.Close()
	}
	// The library skips a peer whose address is still connected, and a closed connection
	// leaves it a moment later: hand each address back once its connection is gone.
	go func() {
		for wait := 0; len(redial) > 0 && wait < 100; wait++ {
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			active := make(map[string]bool)
			for _, pc := range t.lt.PeerConns() {
				active[pc.RemoteAddr.String()] = true
			}
			for a := range redial {
				if !active[a.String()] {
					delete(redial, a)
					t.lt.AddPeers([]torrent.PeerInfo{{Addr: net.TCPAddrFromAddrPort(a), Source: torrent.PeerSourceTracker}})
				}
			}
		}
	}()
	return len(drop) > 0
}

// farFromOriginSite reports whether a peer at a is in another site than this node while
// this node is in the origin's site, under the site rule (sites.go). Such a peer is another
// site's gateway, and everything it has crossed the link from this site: taking it back
// would spend that gateway's upload, the only way into its site, and cross the link again.
// In the swarm benchmark's two data centers, the gateway sent a third of the package back
// this way while its own site waited for it. The library cannot be told not to request from
// a peer, so it is not told what such a peer has; the peer still requests from us.
func (t *Torrent) farFromOriginSite(a netip.Addr) bool {
	self, origin := t.sites()
	if self == "" || self != origin {
		return false
	}
	peer := t.node.cfg.Topology.Site(a.Unmap())
	return peer != "" && peer != self
}

func (t *Torrent) onClaimMessage(pc *torrent.PeerConn, payload []byte) {
	var kind byte
	var pieces []int
	var elected originplan.Heard
	var err error
	if len(payload) > 0 && payload[0] == msgElect {
		kind = msgElect
		elected, err = decodeElect(payload)
	} else {
		kind, pieces, err = decodeClaim(payload, t.info.NumPieces())
	}
	if err != nil {
		t.node.log.Debug("bt: ignoring message", "torrent", t.name, "peer", pc.RemoteAddr.String(), "err", err)
		return
	}
	t.mu.Lock()
	id := t.peerLocked(pc).id
	rn := t.remotes[id]
	if rn == nil {
		rn = &remoteNode{claims: make(map[int]time.Time), slot: -1}
		t.remotes[id] = rn
	}
	now := time.Now()
	switch kind {
	case msgOriginOn:
		rn.origin, rn.said = true, true
	case msgOriginOff:
		rn.origin, rn.said = false, true
		clear(rn.claims)
	case msgClaim:
		for _, p := range pieces {
			rn.claims[p] = now.Add(claimTTL)
		}
	case msgRelease:
		for _, p := range pieces {
			delete(rn.claims, p)
		}
	case msgSlot:
		rn.slot = pieces[0]
	case msgElect:
		rn.elected = elected
		rn.electedGen++
	}
	t.mu.Unlock()
	t.poke()
}

func (t *Torrent) onConnClosed(pc *torrent.PeerConn) {
	t.mu.Lock()
	t.peerLocked(pc).closed = true
	delete(t.fast.peers, pc)
	t.mu.Unlock()
	t.poke()
	// The final upload count needs the client lock, which the caller holds.
	go func() {
		r := peerRow(pc)
		t.mu.Lock()
		t.recordLocked(r)
		t.mu.Unlock()
		t.noteLibraryBan(pc)
	}()
}

// noteLibraryBan handles the library's ban of the peer of a closed connection. When one peer
// sent all of a piece that failed, v1.59.1 keys the ban by the IPv4-mapped IPv6 form of an
// IPv4 address ("::ffff:127.0.22.1", Client.banPeerIP), while it checks accepted connections
// (Client.rejectAccepted) and known peers (Torrent.dropBannedPeers) in their 4-byte form, so
// that ban does not stop the peer from connecting again. The
// address goes into the Node's own ban list too, which compares unmapped addresses. The
// library's log line names the connection, not the address: this logs the address, once.
// It takes the client lock.
func (t *Torrent) noteLibraryBan(pc *torrent.PeerConn) {
	ap, err := netip.ParseAddrPort(pc.RemoteAddr.String())
	if err != nil {
		return
	}
	a := ap.Addr().Unmap()
	banned := false
	for _, s := range t.node.cl.BadPeerIPs() {
		if b, err := netip.ParseAddr(s); err == nil && b.Unmap() == a {
			banned = true
			break
		}
	}
	if !banned {
		return
	}
	t.node.ban(a)
	if t.node.bans.firstLog(a) {
		t.node.log.Info("bt: banned peer", "torrent", t.name, "peer", a, "reason", "sent data that failed verification")
	}
}

// poke wakes the Download scheduler, if one runs; it never blocks.
func (t *Torrent) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *Torrent) setFatal(err error) {
	t.mu.Lock()
	if t.fatal == nil {
		t.fatal = err
	}
	t.mu.Unlock()
	t.poke()
}

// addPeers hands addrs to the library, closest first, skipping banned addresses and
// ourselves, and holding back the ones the site rule (sites.go) keeps away. The library dials
// the first ones (up to its half-open limit) in this order.
func (t *Torrent) addPeers(addrs []netip.AddrPort, source torrent.PeerSource) {
	banned := make(map[netip.Addr]bool)
	for _, s := range t.node.cl.BadPeerIPs() {
		if a, err := netip.ParseAddr(s); err == nil {
			banned[a.Unmap()] = true
		}
	}
	ranked := rankPeers(t.node.addr, addrs, t.node.cfg.Topology)
	infos := make([]torrent.PeerInfo, 0, len(ranked))
	t.mu.Lock()
	for _, a := range ranked {
		if !banned[a.Addr()] && !t.node.isSelf(a) && !t.known[a] {
			t.held[a] = true
		}
	}
	pol := t.sitePolicyLocked()
	for _, a := range ranked {
		if !t.held[a] || !pol.allowPeer(a.Addr()) {
			continue
		}
		delete(t.held, a)
		t.known[a] = true
		infos = append(infos, torrent.PeerInfo{Addr: net.TCPAddrFromAddrPort(a), Source: source})
	}
	t.mu.Unlock()
	for _, pi := range infos {
		// One at a time, so that each is dialed (if a slot is free) before the next is
		// queued by the library's own priority.
		t.lt.AddPeers([]torrent.PeerInfo{pi})
	}
}

// KnownPeers returns the listen addresses of the peers this torrent has heard of (from its
// trackers, Package.Peers or their own handshakes), whether or not they are connected.
func (t *Torrent) KnownPeers() []netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[netip.AddrPort]bool)
	var out []netip.AddrPort
	add := func(a netip.AddrPort) {
		if a.IsValid() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for a := range t.known {
		add(a)
	}
	for a := range t.held {
		add(a)
	}
	for _, ps := range t.peers {
		add(ps.dialAddr)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// sitePolicyLocked returns the site rule as the known peers make it. t.mu must be held.
func (t *Torrent) sitePolicyLocked() sitePolicy {
	if t.siteOff || len(t.pkg.OriginAddrs) == 0 || t.node.cfg.Topology == nil {
		return sitePolicy{} // the rule is off: no need to list the peers (every round asks)
	}
	all := make([]netip.AddrPort, 0, len(t.known)+len(t.held)+len(t.peers))
	for a := range t.known {
		all = append(all, a)
	}
	for a := range t.held {
		all = append(all, a)
	}
	// A node that dialed us is known too, even before the tracker says so: otherwise a
	// gateway that has not heard of a new node of its site yet would turn it away.
	for _, ps := range t.peers {
		if ap, err := netip.ParseAddrPort(ps.addr); err == nil && !ps.closed {
			all = append(all, ap)
		}
	}
	return newSitePolicy(t.node.cfg.Topology, t.node.addr.Addr(), t.pkg.OriginAddrs, all)
}
