package bt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"

	"github.com/pkgsync/pkgsync/originplan"
)

const (
	// maxOriginAttempts is how often one piece may fail at the origin (error or bad data)
	// before Download gives up.
	maxOriginAttempts = 4
	// settleAfterHandshake: how long after a peer's extended handshake its bitfield may
	// still be on the way (clients that have nothing may send none).
	settleAfterHandshake = 200 * time.Millisecond
	// tick: a round runs at least this often; minRoundInterval: at most this often, unless
	// an origin slot just freed up. Peers' messages wake the scheduler constantly in a big
	// swarm, and a round reads every connection's bitfield. At 100 and 25 ms the 16 nodes of
	// a 16 MiB fan-out used 28-30 CPU s; at 250 and 100 ms, 25-27 s, with the same B/A and
	// origin bytes, and delta fan-out no slower.
	tick             = 250 * time.Millisecond
	minRoundInterval = 100 * time.Millisecond
)

// ErrClosed is returned by Download when the Torrent or its Node is closed meanwhile.
var ErrClosed = errors.New("bt: torrent closed")

// Download obtains every missing piece and returns nil once all pieces are complete and
// verified. Peers are asked for every missing piece from the moment the Torrent is added,
// except partly present ones (Package.Missing): Download asks pkgsync peers for their
// missing ranges. Download adds the origin (Package.Origin), for the pieces that no
// connected peer has, that no other pkgsync node is fetching from the origin, and that
// nobody is sending us.
// With no peers at all it keeps Config.OriginConcurrency origin fetches in flight; with
// Package.OriginFetcher one fetch covers a run of adjacent pieces (originrun.go).
//
// Only one Download may run per Torrent at a time. When ctx ends Download cancels its
// origin fetches, waits for them and returns ctx's error.
func (t *Torrent) Download(ctx context.Context) error {
	if !t.downloading.CompareAndSwap(false, true) {
		return fmt.Errorf("bt: %q: Download is already running", t.name)
	}
	defer t.downloading.Store(false)
	done := make(chan struct{})
	t.mu.Lock()
	t.dlDone = done
	t.rangeInbox = nil // replies to an earlier Download
	t.mu.Unlock()
	defer close(done)
	s := newScheduler(t)
	return s.run(ctx)
}

// originResult is what one origin fetch came back with.
type originResult struct {
	piece    int
	bytes    int64
	err      error // the OriginFunc's error
	verified bool  // the data passed verification
	refetch  bool  // Refetch was used
	ranged   bool  // not an origin fetch: a piece completed over rangeExtension was verified
	run      *originRun
	cut      bool // given up before it arrived: a peer claims it or has it (originRun)
}

// scheduler decides which pieces go to the origin and when. It runs in Download's
// goroutine; origin fetches run in their own goroutines and report on results.
type scheduler struct {
	t      *Torrent
	cfg    Config
	num    int
	origin bool // fetching from the origin: Package.Origin is set and the site rule allows it

	hasOrigin    bool
	siteMark     int       // complete pieces at siteProgress
	siteProgress time.Time // when the count of complete pieces last moved

	start       time.Time
	plan        *originplan.Planner // which pieces go to the origin, and when
	originDone  int                 // pieces the origin completed
	lastRefresh time.Time
	lastClaimed time.Time
	lastRedial  time.Time

	claimPeers []*torrent.PeerConn // connections speaking claimExtension, as of the last round
	slotSaid   int                 // the origin fetcher slot this node last told its peers it holds, -1: none
	// elect elects origin fetchers with the pkgsync peers while no tracker gives a Role (nil
	// with Config.NoElect or without an origin).
	elect *originplan.Election
	up    upThrottle // caps this node's upload while it falls behind

	inflight  map[int]context.CancelFunc // pieces being fetched from the origin
	runs      int                        // origin fetches in flight (originRun)
	active    map[*originRun]bool        // those of them with a result still to come
	released  []int                      // failed origin pieces whose claims are still to be released
	attempts  []int
	badData   []bool // the last origin attempt for the piece failed verification
	notBefore []time.Time
	results   chan originResult
	wg        sync.WaitGroup

	// Partial pieces (see Package.Missing) and their completion over rangeExtension.
	partial     []int                     // the partial pieces, in order
	ranging     map[int]*rangePiece       // pieces being completed from pkgsync peers
	rangeReqs   map[uint32]*rangeRequest  // outstanding range requests by id
	perPeer     map[*torrent.PeerConn]int // outstanding range requests per connection
	nextID      uint32
	rangeFailed []bool // the range path failed for the piece: only the other paths remain
	libOn       []bool // the library was asked for the whole piece
	// rangeSuspects holds what peers sent for pieces that failed verification (judgeRanges).
	rangeSuspects map[int][]rangeGot

	// scratch reused between rounds
	complete  []bool
	lastWrite []time.Time
	busy      []bool
	busyAt    time.Time // when busy was taken (busyPieces)
	// avail is the last union of the peers' bitmaps, availOf the bitmaps it was made of
	// (availFrom).
	avail   *roaring.Bitmap
	availOf map[*torrent.PeerConn]*roaring.Bitmap
	// electKey is what the election was last worked out from (electRound); electKeyOK: it was.
	electKey   electKey
	electKeyOK bool
	claimed    []bool
	todo       []int // the pieces the caller did not have, cut into blocks (originplan)
	todoPos    []int // each piece's position in todo, -1 for none
	// hasTrackers: peers may still appear through announces, so an empty peer list at the
	// start is not yet a reason to go to the origin.
	hasTrackers bool
}

func newScheduler(t *Torrent) *scheduler {
	n := t.info.NumPieces()
	s := &scheduler{
		t:         t,
		cfg:       t.config(),
		num:       n,
		origin:    t.usesOrigin(),
		hasOrigin: t.usesOrigin(),
		slotSaid:  -1,
		inflight:  make(map[int]context.CancelFunc),
		active:    make(map[*originRun]bool),
		attempts:  make([]int, n),
		badData:   make([]bool, n),
		notBefore: make([]time.Time, n),
		results:   make(chan originResult),
		complete:  make([]bool, n),
		lastWrite: make([]time.Time, n),
		busy:      make([]bool, n),
		claimed:   make([]bool, n),
	}
	s.hasTrackers = len(t.trackerURLs()) > 0
	if s.hasOrigin && !s.cfg.NoElect {
		ih := t.lt.InfoHash()
		s.elect = originplan.NewElection(t.node.cl.PeerID(), binary.BigEndian.Uint64(ih[:8]), s.cfg.electFetchers)
	}
	s.ranging = make(map[int]*rangePiece)
	s.rangeReqs = make(map[uint32]*rangeRequest)
	s.perPeer = make(map[*torrent.PeerConn]int)
	s.rangeFailed = make([]bool, n)
	s.libOn = make([]bool, n)
	for p := range n {
		if t.missing[p] != nil {
			s.partial = append(s.partial, p)
		}
	}
	s.todoPos = make([]int, n)
	for p := range n {
		s.todoPos[p] = -1
		if p >= len(t.pkg.Have) || !t.pkg.Have[p] {
			s.todoPos[p] = len(s.todo)
			s.todo = append(s.todo, p)
		}
	}
	return s
}

func (s *scheduler) run(ctx context.Context) error {
	t := s.t
	s.start = time.Now()
	s.plan = originplan.New(originplan.Config{
		Concurrency:  s.cfg.OriginConcurrency,
		PeerWait:     s.cfg.PeerWait,
		StallTimeout: s.cfg.StallTimeout,
	}, t.node.cl.PeerID(), s.num, s.todo, s.start)
	s.siteProgress = s.start
	fetchCtx, cancelFetches := context.WithCancel(ctx)
	defer func() {
		// Peers stop counting on us for origin work, including the fetches cancelled now.
		if s.origin {
			s.broadcast(s.claimPeers, msgRelease, append(s.released, s.inflightPieces()...))
			s.broadcast(s.claimPeers, msgOriginOff, nil)
		}
		cancelFetches()
		if s.up.limit > 0 {
			t.node.setUploadCap(t, 0)
		}
		// Drain results so that the fetch goroutines can finish.
		go func() {
			s.wg.Wait()
			close(s.results)
		}()
		for r := range s.results {
			s.account(r)
		}
		s.judgeRanges() // the last piece may have settled a suspect
		// Pieces left half-done over rangeExtension go back to the library.
		for p := range s.ranging {
			t.store.setBusy(p, false)
			t.fastWhole(p)
			t.lt.DownloadPieces(p, p+1)
		}
	}()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	var lastRound time.Time
	var delayed <-chan time.Time // a round put off by minRoundInterval
	now := true                  // run a round at the next turn regardless of the interval
	for {
		if t.Complete() {
			return nil
		}
		t.mu.Lock()
		fatal := t.fatal
		t.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		if err := s.takeReplies(fetchCtx); err != nil {
			return err
		}
		if time.Since(s.lastRefresh) >= 500*time.Millisecond {
			t.refreshPeerStats()
			s.lastRefresh = time.Now()
		}
		// Peers' messages wake the loop often in a big swarm; rounds are rate limited,
		// except when an origin slot just freed up.
		if wait := minRoundInterval - time.Since(lastRound); now || wait <= 0 {
			s.round(fetchCtx)
			lastRound, delayed, now = time.Now(), nil, false
		} else if delayed == nil {
			delayed = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bt: %q: %w", t.name, ctx.Err())
		case <-t.lt.Closed():
			return fmt.Errorf("bt: %q: %w", t.name, ErrClosed)
		case <-t.store.done():
		case r := <-s.results:
			if err := s.finish(r); err != nil {
				return err
			}
			now = true
		case <-delayed:
			delayed = nil
		case <-t.wake:
		case <-ticker.C:
		}
	}
}

// connView is one round's picture of a connection.
type connView struct {
	pc   *torrent.PeerConn
	bm   *roaring.Bitmap // the pieces the peer has
	full bool            // the peer has every piece
}

// roundView is what one round learned from the library and the callbacks.
type roundView struct {
	conns      []connView
	avail      *roaring.Bitmap // the pieces connected peers have (only when fetching from the origin)
	members    []originplan.Member
	claimPeers []*torrent.PeerConn // connections speaking claimExtension
	newPeers   []*torrent.PeerConn // of those, the ones not greeted yet
	rangePeers map[*torrent.PeerConn]bool
	gate       originplan.GateView
	role       *originplan.Role // what a coordinating tracker said, with what connected fetchers say of their slots; nil: none
	// elected: role is not a tracker's but the fetchers elected with the peers
	// (originplan.Election); electChanged: this round changed the list, which every peer hears.
	elected, electChanged bool
	// unconnected lists the known peers this node is not connected to (redialKnown).
	unconnected []netip.AddrPort
}

// round runs one scheduling round: it refreshes the view of the peers, tells new pkgsync
// peers what this node is doing, and starts origin fetches for the pieces that should go
// to the origin now.
func (s *scheduler) round(ctx context.Context) {
	t := s.t
	now := time.Now()
	originWas := s.origin
	s.applySiteRule(now)
	v := s.observe(now)
	s.redialKnown(v.unconnected, now)

	// Peers that just arrived learn whether we use the origin and what we are fetching.
	hello := msgOriginOff
	if s.origin {
		hello = msgOriginOn
	}
	if s.origin != originWas {
		// The site rule changed this node's part in the origin work: tell every peer.
		v.newPeers = v.claimPeers
	}
	s.broadcast(v.newPeers, hello, nil)
	s.broadcast(v.newPeers, msgClaim, s.claimedPieces())
	s.tellSlot(v)
	s.tellElect(v)
	s.claimPeers = v.claimPeers
	s.broadcast(v.claimPeers, msgRelease, s.released) // failed origin fetches
	s.released = s.released[:0]
	s.rangeRound(v.conns, v.rangePeers, v.gate.Settled, now)
	if !s.origin {
		return
	}
	// The gate: before the first origin request, let the known peers connect and say what
	// they have, so that nodes starting together agree on who fetches what.
	open, opened := s.plan.Gate().Open(v.gate)
	if !open {
		return
	}
	if opened {
		if s.elect != nil {
			h := s.elect.List()
			t.mu.Lock()
			t.elected = originplan.Heard{List: slices.Clone(h.List), Swarm: h.Swarm}
			t.mu.Unlock()
		}
		t.node.log.Info("bt: origin allowed", "torrent", t.name, "after", now.Sub(s.start).Round(time.Millisecond),
			"peers", len(v.conns), "known", v.gate.Known, "all_known_connected", v.gate.AllKnownConnected,
			"pieces_peers_have", v.avail.GetCardinality(), "sharing", len(v.members)+1,
			"role", roleLog(v.role, v.elected))
	}
	if now.Sub(s.lastClaimed) >= claimRefresh && len(s.inflight) > 0 {
		s.broadcast(v.claimPeers, msgClaim, s.claimedPieces())
		s.lastClaimed = now
	}
	s.advanceRuns(v.claimPeers, v.avail)
	s.planRuns(ctx, v, now)
}

// planRuns asks the planner for the pieces to fetch from the origin now, turns them into runs
// (runPlanner), claims them and starts them. A run absorbs picks that follow it in the block,
// so the planner is asked again while it picked more than was started, up to its limit; those
// later picks count only in the node's own block: the claims of the runs just started have
// not reached the peers, whose blocks are left to the next round.
func (s *scheduler) planRuns(ctx context.Context, v roundView, now time.Time) {
	lo, hi := s.ownBlock(v.members, v.role)
	capBytes, maxParts, maxPieces := int64(runBytesShared), runPartsShared, s.claimWindow()
	// Long runs only with no peer in sight: a peer that is known or connected but has not yet
	// said it shares the origin work may be about to, and bytes of a long run already on
	// their way cannot be handed back.
	if !sharing(v.members, v.role) && v.gate.Known == 0 && v.gate.Connected == 0 {
		capBytes, maxParts, maxPieces = runBytesAlone, 0, 0
	}
	var busy []bool // busyPieces, once a round: it walks every piece under the client lock
	for again := range s.cfg.OriginConcurrency + 1 {
		inRun := make(map[int]bool)
		pieces := &roundPieces{s: s, avail: v.avail, inRun: inRun, busy: busy}
		view := originplan.View{
			Now:        now,
			Members:    v.members,
			Inflight:   s.runs,
			PeerPieces: s.peerPieces(),
			Pieces:     pieces,
			Role:       v.role,
		}
		picked := s.plan.Plan(view)
		if again > 0 {
			picked = slices.DeleteFunc(picked, func(p int) bool { return s.todoPos[p] < lo || s.todoPos[p] >= hi })
		}
		if len(picked) == 0 {
			return
		}
		// The planner's next pick, were one more fetch allowed, with the runs so far taken.
		next := func() []int {
			view.Inflight = 0
			return s.plan.Plan(view)
		}
		rp := &runPlanner{s: s, pieces: pieces, now: now, lo: lo, hi: hi, capBytes: capBytes, maxParts: maxParts,
			maxPieces: maxPieces, taken: inRun, next: next}
		var runs [][]int
		for _, p := range picked {
			if run := rp.run(p); run != nil {
				runs = append(runs, run)
			}
		}
		s.lastClaimed = now
		for _, run := range runs {
			s.launchRun(ctx, run, v.claimPeers)
		}
		if len(runs) == len(picked) {
			return
		}
		busy = pieces.busy
	}
}

// knownRedial is how often a downloading node hands the known peers it is not connected to back
// to the library. The library dials a peer once per hand-over: a connection that failed or was
// dropped (a peer that still held this node's earlier connection, for the info dictionary,
// took the new one for a duplicate) left a node alone with its one known peer until the next
// announce, while it failed against a dead origin.
const knownRedial = time.Second

// redialKnown hands the known peers in unconnected to the library again, at most every
// knownRedial; it skips those it is connected or dialing to.
func (s *scheduler) redialKnown(unconnected []netip.AddrPort, now time.Time) {
	if len(unconnected) == 0 || now.Sub(s.lastRedial) < knownRedial {
		return
	}
	s.lastRedial = now
	infos := make([]torrent.PeerInfo, len(unconnected))
	for i, a := range unconnected {
		infos[i] = torrent.PeerInfo{Addr: net.TCPAddrFromAddrPort(a), Source: torrent.PeerSourceTracker}
	}
	s.t.lt.AddPeers(infos)
}

// observe takes one round's view: what the peers have (from the library, which takes the
// client lock: t.mu must not be held meanwhile) and what the callbacks learned: claims, who
// shares the origin work, whether the known peers are connected and have said what they
// have and whether they use the origin.
func (s *scheduler) observe(now time.Time) roundView {
	t := s.t
	conns, same := s.connViews()
	n := len(conns)
	v := roundView{conns: conns, rangePeers: make(map[*torrent.PeerConn]bool, n)}
	v.avail = s.availFrom(v.conns, same)
	t.store.snapshot(s.complete, s.lastWrite)
	s.throttleUpload(now, v.conns)

	memberIDs := make([][20]byte, 0, n)
	var held []originplan.SlotHolder           // the slots connected fetchers say they hold
	heard := make([]originplan.Heard, 0, n)    // the connected peers' lists of elected fetchers
	notCandidate := make(map[[20]byte]bool, n) // connected peers that seed or do not use the origin
	var ek electKey                            // what the election is worked out from (electRound)
	seederConnected := false
	connected := make(map[netip.AddrPort]bool, n)
	open := make(map[[20]byte]bool, n)
	v.claimPeers = make([]*torrent.PeerConn, 0, n)
	settled := true
	t.mu.Lock()
	for _, cv := range v.conns {
		ps := t.peerLocked(cv.pc)
		if ps.closed {
			continue
		}
		open[ps.id] = true
		if ps.dialAddr.IsValid() {
			connected[ps.dialAddr] = true
		}
		if ps.extAt.IsZero() || (ps.haveMsgAt.IsZero() && now.Sub(ps.extAt) < settleAfterHandshake) {
			settled = false
		}
		if ps.rangeOK {
			v.rangePeers[cv.pc] = true
		}
		seederConnected = seederConnected || cv.full || ps.originSeeder
		if !ps.claimsOK {
			continue
		}
		v.claimPeers = append(v.claimPeers, cv.pc)
		if !ps.greeted {
			ps.greeted = true
			v.newPeers = append(v.newPeers, cv.pc)
		}
		rn := t.remotes[ps.id]
		if rn != nil && rn.slot >= 0 {
			held = append(held, originplan.SlotHolder{Slot: rn.slot, ID: ps.id})
		}
		if rn != nil && rn.elected.Swarm > 0 {
			heard = append(heard, rn.elected)
			ek.add(ps.id, electHeard, rn.electedGen)
		}
		if cv.full || ps.originSeeder { // a seeder (the library may not know it: atOrigin)
			notCandidate[ps.id] = true
			ek.add(ps.id, electOut, 0)
			continue
		}
		switch {
		case rn == nil || !rn.said:
			settled = false // a pkgsync peer that still needs data has not said whether it uses the origin
		case rn.origin:
			memberIDs = append(memberIDs, ps.id)
			ek.add(ps.id, electMember, 0)
		default:
			notCandidate[ps.id] = true
			ek.add(ps.id, electOut, 0)
		}
	}
	outstanding := s.takeClaims(now, open, v.avail)
	for a := range t.known {
		if !connected[a] {
			v.unconnected = append(v.unconnected, a)
		}
	}
	allKnownConnected := len(v.unconnected) == 0
	v.gate = originplan.GateView{Now: now, Connected: len(connected), Known: len(t.known),
		AllKnownConnected: allKnownConnected, Announced: t.announced, Settled: settled,
		Alone: len(t.known) == 0 && s.hasTrackers, SeederAway: t.seedersReported > 0 && !seederConnected,
		Role:   t.role != nil && !t.role.Fetcher(),
		Asking: s.asking(now)}
	v.role = t.role
	if t.role != nil && len(held) > 0 {
		r := t.role.WithHolders(held)
		v.role = &r
	}
	if t.role == nil && s.elect != nil {
		s.electRound(&v, memberIDs, heard, notCandidate, ek)
	}
	t.mu.Unlock()
	v.members = make([]originplan.Member, 0, len(memberIDs))
	for _, id := range memberIDs {
		v.members = append(v.members, originplan.Member{ID: id, Outstanding: outstanding[id]})
	}
	return v
}

// connViews takes every connection's bitmap (from the library, which takes the client lock),
// and reports whether they are the bitmaps the last union of them (availFrom) was made of.
func (s *scheduler) connViews() (conns []connView, same bool) {
	pcs := s.t.lt.PeerConns()
	conns = make([]connView, 0, len(pcs))
	same = s.avail != nil && len(pcs) == len(s.availOf)
	for _, pc := range pcs {
		bm := s.t.peerPieces(pc)
		if same && s.availOf[pc] != bm {
			same = false
		}
		conns = append(conns, connView{pc: pc, bm: bm, full: bm.GetCardinality() >= uint64(s.num)})
	}
	return conns, same
}

// availFrom returns the pieces the peers of conns have, when this node fetches from the origin
// (an empty bitmap when not): the union of their bitmaps, or the last union when same says
// they are the bitmaps it was made of. A fast-path peer's bitmap stays the same object until
// the peer announces more (fastPeer.snap), and HAVEs come in batches, so most rounds of a big
// swarm need no new union. The result is shared: nobody changes it.
func (s *scheduler) availFrom(conns []connView, same bool) *roaring.Bitmap {
	if !s.origin {
		return roaring.New()
	}
	if same {
		return s.avail
	}
	avail := roaring.New()
	if s.availOf == nil {
		s.availOf = make(map[*torrent.PeerConn]*roaring.Bitmap, len(conns))
	}
	clear(s.availOf)
	for _, cv := range conns {
		avail.Or(cv.bm)
		s.availOf[cv.pc] = cv.bm
	}
	s.avail = avail
	return avail
}

// asking reports whether this node still asks a tracker that hands out no roles for more
// peers (announceLoop's fewReannounce), to elect fetchers by the swarm's size (GateView.Asking).
// t.mu is held.
func (s *scheduler) asking(now time.Time) bool {
	t := s.t
	return s.elect != nil && s.hasTrackers && t.announced && t.role == nil &&
		len(t.known) < originplan.ElectedFetchers && now.Sub(s.start) < s.cfg.PeerWait
}

// electRound updates the election with what this round saw (originplan.Election) and, once it
// is active, plans by its list as by a tracker's Role. The election is worked out again only
// when what it is worked out from changed (ek): a node hears every peer's list, and merging
// them every round was a third of the rounds' CPU in a 48-node swarm under opentracker. t.mu
// is held.
func (s *scheduler) electRound(v *roundView, members [][20]byte, heard []originplan.Heard, notCandidate map[[20]byte]bool, ek electKey) {
	t := s.t
	ek.add([20]byte{}, electSelf, uint64(len(t.known)+1)<<1|b2u(s.origin))
	if !s.electKeyOK || ek != s.electKey {
		s.electKey, s.electKeyOK = ek, true
		v.electChanged = s.elect.Update(s.origin, len(t.known)+1, members, heard, func(id originplan.PeerID) bool { return notCandidate[id] })
	}
	if v.electChanged {
		h := s.elect.List()
		t.node.log.Debug("bt: election", "torrent", t.name, "listed", len(h.List), "swarm", h.Swarm,
			"role", roleLog(s.elect.Role(), true), "members", len(members), "heard", len(heard))
	}
	if s.elect.Active() {
		v.role, v.elected = s.elect.Role(), true
	}
}

// takeClaims fills s.claimed with the pieces claimed by connected peers that fetch from the
// origin, drops lapsed claims, and counts per peer the claimed pieces that nobody has yet
// (its work outstanding). t.mu is held.
func (s *scheduler) takeClaims(now time.Time, open map[[20]byte]bool, avail *roaring.Bitmap) map[[20]byte]int {
	t := s.t
	clear(s.claimed)
	outstanding := make(map[[20]byte]int)
	for id, rn := range t.remotes {
		for p, exp := range rn.claims {
			switch {
			case !now.Before(exp):
				delete(rn.claims, p)
			case open[id] && rn.origin:
				s.claimed[p] = true
				if !s.complete[p] && !avail.Contains(uint32(p)) {
					outstanding[id]++
				}
			}
		}
	}
	return outstanding
}

// peerPieces counts the pieces completed other than by the origin.
func (s *scheduler) peerPieces() int {
	n := -s.originDone
	for _, c := range s.complete {
		if c {
			n++
		}
	}
	return n
}

// busyFresh is how long busyPieces' walk of the library's piece states serves the rounds that
// follow. A piece the library hashes got its last chunk from a peer when it was queued, so for
// PeerWriteGrace (originplan.Defaults, longer than this) the origin plan leaves it alone by its
// last write (Timers) whatever busy says; a piece the fast path or the origin completed is
// complete in storage. The walk takes the client lock and looks at every piece: once a round,
// it was the largest part of a fan-out round's cost.
const busyFresh = 500 * time.Millisecond

// busyPieces marks the pieces the library is hashing, has queued for hashing or is marking, as
// of at most busyFresh ago.
func (s *scheduler) busyPieces() []bool {
	busy := s.busy
	now := time.Now()
	if !s.busyAt.IsZero() && now.Sub(s.busyAt) < busyFresh {
		return busy
	}
	s.busyAt = now
	clear(busy)
	i := 0
	for _, run := range s.t.lt.PieceStateRuns() {
		if run.Checking || run.Hashing || run.QueuedForHash || run.Marking {
			for j := i; j < i+run.Length && j < s.num; j++ {
				busy[j] = true
			}
		}
		i += run.Length
	}
	return busy
}

// roundPieces is one round's view of the pieces for the origin policy.
type roundPieces struct {
	s *scheduler
	// busy is busyPieces, taken when a piece first passes the other tests of Taken: it walks
	// every piece under the client lock, and most rounds ask about no piece that gets so far.
	busy  []bool
	avail *roaring.Bitmap
	inRun map[int]bool // put into a run this round, not started yet (runPlanner)
}

func (r *roundPieces) Taken(p int) bool {
	s := r.s
	if s.complete[p] || s.claimed[p] || s.inflight[p] != nil || s.ranging[p] != nil || r.inRun[p] {
		return true
	}
	if r.busy == nil {
		r.busy = s.busyPieces()
	}
	return r.busy[p]
}

func (r *roundPieces) Available(p int) bool { return r.avail.Contains(uint32(p)) }

func (r *roundPieces) Timers(p int) (notBefore, lastPeerWrite time.Time) {
	return r.s.notBefore[p], r.s.lastWrite[p]
}

// throttleUpload caps this node's upload while it falls behind its peers with its upload link
// full, and lifts the cap once it has caught up (upThrottle).
func (s *scheduler) throttleUpload(now time.Time, conns []connView) {
	if !s.up.due(now) {
		return
	}
	t := s.t
	var peers []int
	for _, cv := range conns {
		if !cv.full {
			peers = append(peers, int(cv.bm.GetCardinality()))
		}
	}
	mine := t.store.completed()
	up := t.uploaded() + t.rangeUp.Load() + t.fastUp.Load()
	down := t.store.peerBytes.Load() + t.originBytes.Load()
	limit, changed := s.up.update(now, up, down, mine, peers, s.num)
	if !changed {
		return
	}
	t.node.setUploadCap(t, limit)
	if limit > 0 {
		t.node.log.Info("bt: behind with the upload link full: upload capped", "torrent", t.name,
			"bytes_per_s", int64(limit), "pieces", mine, "peers_median", medianOf(peers))
	} else {
		t.node.log.Info("bt: caught up: upload cap lifted", "torrent", t.name, "pieces", mine)
	}
}

// account adds a finished fetch to the counters and gives the piece back to the peers.
func (s *scheduler) account(r originResult) {
	t := s.t
	if r.ranged {
		if r.verified {
			delete(s.ranging, r.piece)
			t.store.setBusy(r.piece, false)
		} else {
			s.rangeFallback(r.piece)
		}
		return
	}
	delete(s.inflight, r.piece)
	if r.run.left--; r.run.left == 0 {
		s.runs--
		delete(s.active, r.run)
	}
	t.originBytes.Add(max(r.bytes, 0))
	t.store.setBusy(r.piece, false)
	if !r.verified {
		t.lt.DownloadPieces(r.piece, r.piece+1)
	}
	// A fetch cancelled as the download completed may have completed its piece all the same.
	if r.bytes > 0 && t.store.isComplete(r.piece) {
		t.mu.Lock()
		t.fromOrigin = append(t.fromOrigin, r.piece)
		t.mu.Unlock()
	}
}

// finish handles a finished origin fetch. It returns an error once a piece has failed
// too often.
func (s *scheduler) finish(r originResult) error {
	t := s.t
	s.account(r)
	t.node.log.Debug("bt: origin result", "torrent", t.name, "piece", r.piece, "bytes", r.bytes, "verified", r.verified, "cut", r.cut, "err", r.err)
	if r.ranged {
		if !r.verified {
			t.node.log.Info("bt: piece completed from peer ranges failed verification", "torrent", t.name,
				"piece", r.piece, "err", r.err)
		}
		return nil
	}
	if r.verified {
		s.originDone++
		s.attempts[r.piece] = 0
		s.badData[r.piece] = false
		return nil
	}
	if r.cut {
		return nil // never claimed, and no failure of the origin's
	}
	s.released = append(s.released, r.piece) // told to the peers in the next round
	s.attempts[r.piece]++
	cause := r.err
	if cause == nil {
		s.badData[r.piece] = true
		cause = errors.New("the data failed SHA-1 verification")
	}
	// A run that broke off fails all its pieces still to come at once: one line for them.
	if !r.run.failLogged {
		r.run.failLogged = true
		t.node.log.Info("bt: origin fetch failed", "torrent", t.name, "piece", r.piece, "run_pieces", len(r.run.order),
			"attempt", s.attempts[r.piece], "refetch", r.refetch, "err", cause)
	}
	if r.err != nil && t.useOriginSeeders() {
		t.node.log.Info("bt: taking pieces from the peers on the origin's host too", "torrent", t.name)
	}
	if s.attempts[r.piece] >= maxOriginAttempts {
		return fmt.Errorf("bt: %q: piece %d: origin failed %d times: %w", t.name, r.piece, s.attempts[r.piece], cause)
	}
	backoff := 250 * time.Millisecond << (s.attempts[r.piece] - 1)
	s.notBefore[r.piece] = time.Now().Add(backoff)
	return nil
}

func (s *scheduler) inflightPieces() []int {
	ps := make([]int, 0, len(s.inflight))
	for p := range s.inflight {
		ps = append(ps, p)
	}
	return ps
}

// tellSlot tells new peers this node's origin fetcher slot, and every peer when it changed:
// the fetchers' lists are the tracker's answers to their last announces, and one that joined
// since is missing from the others' until they announce again (originplan.Role.WithHolders).
func (s *scheduler) tellSlot(v roundView) {
	slot := -1
	if v.role != nil && !v.elected && v.role.Fetcher() { // WithHolders leaves this node's own slot as it is
		slot = v.role.Slot
	}
	peers := v.newPeers
	if slot != s.slotSaid {
		s.slotSaid, peers = slot, v.claimPeers
	} else if slot < 0 {
		return
	}
	msg := encodeClaim(msgSlot, []int{slot})
	for _, pc := range peers {
		// An error means the connection just closed or never spoke the extension.
		_ = pc.WriteExtendedMessage(claimExtension, msg)
	}
}

// roleLog describes a node's origin role for the log.
func roleLog(r *originplan.Role, elected bool) string {
	switch {
	case r == nil:
		return "none"
	case !r.Fetcher() && elected:
		return fmt.Sprintf("not elected (%d fetchers)", len(r.Fetchers))
	case !r.Fetcher():
		return fmt.Sprintf("not a fetcher (%d slots)", len(r.Fetchers))
	case elected:
		return fmt.Sprintf("elected, slot %d of %d", r.Slot, len(r.Fetchers))
	}
	return fmt.Sprintf("fetcher, slot %d of %d", r.Slot, len(r.Fetchers))
}

// tellElect tells new peers this node's list of elected origin fetchers, and every peer when
// it changed (originplan.Election).
func (s *scheduler) tellElect(v roundView) {
	if s.elect == nil {
		return
	}
	peers := v.newPeers
	if v.electChanged {
		peers = v.claimPeers
	}
	if len(peers) == 0 {
		return
	}
	msg := encodeElect(s.elect.List())
	for _, pc := range peers {
		// An error means the connection just closed or never spoke the extension.
		_ = pc.WriteExtendedMessage(claimExtension, msg)
	}
}

// broadcast sends a message of the given kind to every peer in peers; claims and
// releases only when there are pieces.
func (s *scheduler) broadcast(peers []*torrent.PeerConn, kind byte, pieces []int) {
	msgs := [][]byte{encodeClaim(kind, nil)}
	if kind == msgClaim || kind == msgRelease {
		msgs = msgs[:0]
		for _, chunk := range chunkPieces(pieces) {
			msgs = append(msgs, encodeClaim(kind, chunk))
		}
	}
	for _, msg := range msgs {
		for _, pc := range peers {
			// An error means the connection just closed or never spoke the extension.
			_ = pc.WriteExtendedMessage(claimExtension, msg)
		}
	}
}

// verify hashes piece p and reports whether it passed. The library counts the hash as done
// before it records the result in storage (Piece.VerifyDataContext can return while the
// piece is still being marked), so this waits for the marking to end too.
func (t *Torrent) verify(ctx context.Context, p int) (bool, error) {
	if err := t.lt.Piece(p).VerifyDataContext(ctx); err != nil {
		return false, fmt.Errorf("verifying piece %d: %w", p, err)
	}
	for {
		ps := t.lt.PieceState(p)
		if !ps.Marking && !ps.Hashing && !ps.QueuedForHash {
			return t.store.isComplete(p), nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("verifying piece %d: %w", p, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// siteStallFactor times Config.StallTimeout is how long the site rule may starve a node before
// the node drops it. Longer than StallTimeout: the first pieces reach a far site's nodes only
// after the origin's site has them and the gateway has brought them over, several piece
// transfers after the start.
const siteStallFactor = 3

// applySiteRule applies the site rule (sites.go) for this round: it drops the rule when it has
// starved this node for siteStallFactor StallTimeouts, hands the library the peers the rule
// now allows, closes connections it does not, and decides whether this node uses the origin.
func (s *scheduler) applySiteRule(now time.Time) {
	t := s.t
	t.mu.Lock()
	pol := t.sitePolicyLocked()
	t.mu.Unlock()
	if !pol.on {
		s.origin = s.hasOrigin
		return
	}
	// Progress: a piece completed, or a connected peer has one this node lacks (it will be
	// fetched). Only when neither holds for a while is the rule starving this node.
	done := t.store.completed()
	useful := false
	for _, pc := range t.lt.PeerConns() {
		for it := t.peerPieces(pc).Iterator(); it.HasNext(); {
			if !t.store.isComplete(int(it.Next())) {
				useful = true
				break
			}
		}
		if useful {
			break
		}
	}
	if done != s.siteMark || useful {
		s.siteMark, s.siteProgress = done, now
	}
	t.mu.Lock()
	if now.Sub(s.siteProgress) >= siteStallFactor*s.cfg.StallTimeout {
		t.siteOff = true
		pol = sitePolicy{}
		t.node.log.Info("bt: no progress under the site rule; connecting across sites", "torrent", t.name,
			"after", now.Sub(s.siteProgress).Round(time.Millisecond))
	}
	var release []netip.AddrPort
	for a := range t.held {
		if pol.allowPeer(a.Addr()) {
			release = append(release, a)
		}
	}
	var drop []*torrent.PeerConn
	for pc, ps := range t.peers {
		if ps.closed {
			continue
		}
		if ap, err := netip.ParseAddrPort(ps.addr); err == nil && !pol.allowPeer(ap.Addr()) {
			drop = append(drop, pc)
		}
	}
	t.mu.Unlock()
	if len(release) > 0 {
		t.addPeers(release, torrent.PeerSourceTracker)
	}
	for _, pc := range drop {
		pc.Close()
	}
	s.origin = s.hasOrigin && pol.allowOrigin()
}

// electKey is a fingerprint of what an election is worked out from: each connected candidate,
// each peer's list (by the peer and the count of lists it sent) and each peer that is no
// candidate, and this node's own part and count of the swarm. It is a sum, so the order in
// which the round meets the peers does not matter.
type electKey struct{ sum uint64 }

// The kinds of entries of an electKey.
const (
	electSelf = iota + 1
	electMember
	electHeard
	electOut
)

var electSeed = maphash.MakeSeed()

// add adds an entry of kind about peer id with value x.
func (k *electKey) add(id [20]byte, kind int, x uint64) {
	var h maphash.Hash
	h.SetSeed(electSeed)
	h.Write(id[:])
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(kind))
	binary.LittleEndian.PutUint64(b[8:], x)
	h.Write(b[:])
	k.sum += h.Sum64()
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
