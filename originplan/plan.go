package originplan

import (
	"slices"
	"time"
)

// PeerID names a node: the BitTorrent peer ID in bt, any distinct 20 bytes in a simulation.
// Members are ordered by it (SortedMembers), so every node cuts the same blocks from the same
// member list.
type PeerID = [20]byte

// Config holds the tunables of the policy. Zero fields take the values bt uses.
type Config struct {
	// Concurrency is how many origin fetches a node alone keeps in flight (bt's
	// Config.OriginConcurrency).
	Concurrency int
	// PeerWait bounds the gate: how long a node waits, before its first origin request, for
	// its known peers to connect and say what they have.
	PeerWait time.Duration
	// StallTimeout: once peers have completed no piece for this long, pieces that peers claim
	// to have may go to the origin too.
	StallTimeout time.Duration
	// PeerWriteGrace: a piece a peer wrote to this recently is being received; leave it.
	PeerWriteGrace time.Duration
	// IdleGrace: a member with no origin fetch outstanding for this long is idle, and its
	// heir takes its block over.
	IdleGrace time.Duration
	// OrphanAfter: a member idle this long has its block open to every node.
	OrphanAfter time.Duration
	// ConnectGrace: the gate stops waiting for known peers that have not connected once the
	// peers that did have settled and nothing changed for this long.
	ConnectGrace time.Duration
	// ReachWait bounds the gate instead of PeerWait, when longer, while peers that may hold
	// the pieces are still coming into reach: the first announce is not answered yet, a
	// tracker reports a seeder and no connected peer is one (GateView.SeederAway), or known
	// peers are still connecting (the connected count changed within ConnectGrace). Under load, dialing a dozen peers takes longer than
	// a short PeerWait (the .zsync's swarm has one), and a piece fetched from the origin
	// meanwhile is one the swarm already had.
	ReachWait time.Duration
}

// LongStall is how many StallTimeouts a node that is not a fetcher waits, stalled, before it
// takes from the origin pieces its connected peers say they have.
const LongStall = 4

// Defaults are the values bt runs with.
var Defaults = Config{
	Concurrency:    4,
	PeerWait:       2 * time.Second,
	StallTimeout:   5 * time.Second,
	PeerWriteGrace: time.Second,
	IdleGrace:      time.Second,
	OrphanAfter:    3 * time.Second,
	ConnectGrace:   time.Second,
	ReachWait:      2 * time.Second,
}

func (c Config) withDefaults() Config {
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = Defaults.Concurrency
	}
	set(&c.PeerWait, Defaults.PeerWait)
	set(&c.StallTimeout, Defaults.StallTimeout)
	set(&c.PeerWriteGrace, Defaults.PeerWriteGrace)
	set(&c.IdleGrace, Defaults.IdleGrace)
	set(&c.OrphanAfter, Defaults.OrphanAfter)
	set(&c.ConnectGrace, Defaults.ConnectGrace)
	set(&c.ReachWait, Defaults.ReachWait)
	return c
}

// Pieces is a node's view of every piece at one round.
type Pieces interface {
	// Taken reports whether piece p is out of the origin's reach whatever else holds: this
	// node has it or is verifying it, a member claims it, this node fetches it from the origin
	// already or completes it by another path.
	Taken(p int) bool
	// Available reports whether a connected peer has piece p.
	Available(p int) bool
	// Timers gives when piece p may next go to the origin (after a failed fetch; zero when
	// any time) and when a peer last wrote to it here (zero when never).
	Timers(p int) (notBefore, lastPeerWrite time.Time)
}

// Member is another connected node that fetches from the origin and still needs data.
type Member struct {
	ID PeerID
	// Outstanding counts the pieces it claims that no connected peer has and this node lacks:
	// while it has some, it is working on its block.
	Outstanding int
}

// View is what a node knows at one round.
type View struct {
	Now      time.Time
	Members  []Member
	Inflight int // this node's origin fetches in flight
	// PeerPieces counts the pieces this node completed other than by the origin: the peers'
	// progress. Bytes do not count: a peer that trickles data would hold its pieces forever.
	PeerPieces int
	Pieces     Pieces
	// Role is what a coordinating tracker told this node (see Slots), nil under a stock
	// tracker or before the first answer. With a Role the fetchers are the tracker's, not
	// the connected members: a fetcher cuts the blocks by slot, and a node that is not a
	// fetcher leaves the origin to them unless the swarm stalls.
	Role *Role
}

// Planner is one node's origin policy for one download. It keeps what the policy remembers
// between rounds (the gate, the peers' progress, since when each member is idle) and takes
// the time from its caller.
type Planner struct {
	cfg       Config
	self      PeerID
	numPieces int
	todo      []int  // the pieces the caller did not have, cut into blocks
	inTodo    []bool // membership of todo

	start        time.Time
	gate         Gate
	progressMark int
	lastProgress time.Time
	idleSince    map[PeerID]time.Time

	// Scratch reused between rounds: a simulation runs a planner per node, four rounds a
	// second each.
	openBefore  []int    // open pieces below each position of todo
	ids         []PeerID // the last sorted members, self included
	rank        int      // self's position in ids
	lastIn      []PeerID // the members ids was sorted from, in the caller's order
	outstanding map[PeerID]int
	idle        []bool
	orphan      []bool
	heirs       []int    // VacantHeirs of heirsOf
	heirsOf     []PeerID // the Role's fetchers heirs was worked out for
	heirsNT     int      // and the pieces of todo
	heirAhead   []int    // scratch of blockView.heirAhead
}

// New returns the planner of the node self for a download of numPieces pieces starting at
// start, in which the caller lacked the pieces todo (in increasing order).
func New(cfg Config, self PeerID, numPieces int, todo []int, start time.Time) *Planner {
	cfg = cfg.withDefaults()
	pl := &Planner{
		cfg: cfg, self: self, numPieces: numPieces, todo: todo, inTodo: make([]bool, numPieces),
		start: start, lastProgress: start, idleSince: make(map[PeerID]time.Time),
		openBefore: make([]int, len(todo)+1), outstanding: make(map[PeerID]int),
	}
	pl.gate = Gate{cfg: cfg, start: start}
	for _, p := range todo {
		pl.inTodo[p] = true
	}
	return pl
}

// Gate returns the planner's gate, which the caller consults before the first origin request.
func (pl *Planner) Gate() *Gate { return &pl.gate }

// Stalled counts peerPieces (the pieces completed other than by the origin, see View) and
// reports whether peers have completed no piece for StallTimeout. Plan calls it; a caller
// that skips a round because it knows Plan would pick nothing calls it instead, so that
// progress made meanwhile still counts.
func (pl *Planner) Stalled(now time.Time, peerPieces int) bool {
	if peerPieces != pl.progressMark {
		pl.progressMark = peerPieces
		pl.lastProgress = now
	}
	return now.Sub(pl.lastProgress) >= pl.cfg.StallTimeout
}

// Plan returns the pieces to fetch from the origin now, in the order to start them. The
// caller claims them (tells its members) before it fetches. Plan assumes the gate is open.
//
// Without a Role, the pieces the caller did not have are cut into one block per member, self
// included, ordered by peer ID (ShareOrder). A node walks its own block forwards, then the
// others' backwards. A working owner's block is left to it, except far enough behind its
// frontier (at least twice Concurrency open pieces lie between). An owner idle for IdleGrace
// has its block taken over by its heir (HeirOf); after OrphanAfter it is open to all. Takers
// leave a different number of a block's last open pieces each (ThiefSkip).
//
// With a Role, a fetcher cuts the blocks by the tracker's slots instead (see slotBlocks), and
// a node that is not a fetcher picks nothing until it is stalled: then it falls back to the
// rules above among its members, for the pieces no connected peer has.
func (pl *Planner) Plan(v View) []int {
	now := v.Now
	stalled := pl.Stalled(now, v.PeerPieces)
	if v.Role != nil && !v.Role.Fetcher() && !stalled {
		return nil
	}
	nt := len(pl.todo)
	ob := pl.openBefore
	for i, q := range pl.todo {
		ob[i+1] = ob[i]
		if !v.Pieces.Available(q) && !v.Pieces.Taken(q) { // Available first: the cheaper test
			ob[i+1]++
		}
	}
	var blocks blockView
	if v.Role != nil && v.Role.Fetcher() {
		blocks = pl.slotBlocks(now, *v.Role, v.Members, stalled, nt)
	} else {
		blocks = pl.memberBlocks(now, v.Members)
	}
	blocks.nt, blocks.openBefore, blocks.stealGap = nt, ob, 2*pl.cfg.Concurrency
	if blocks.heir != nil {
		pl.heirAhead = blocks.aheadOfHeirs(pl.heirAhead)
		blocks.heirAhead = pl.heirAhead
	}
	free := Limit(pl.cfg.Concurrency, blocks.nm, blocks.rank, nt, ob) - v.Inflight
	if free <= 0 {
		return nil
	}
	// A node that is not a fetcher takes, even when stalled, only what no connected peer
	// has: the pieces its peers have reach it through them, and the fetchers are at work.
	// Stalled for LongStall, it takes those too: peers that say they have pieces and send
	// none for that long will not.
	peerRule := stalled && (v.Role == nil || v.Role.Fetcher() || now.Sub(pl.lastProgress) >= LongStall*pl.cfg.StallTimeout)
	eligible := func(p int) bool {
		if (!peerRule && v.Pieces.Available(p)) || v.Pieces.Taken(p) { // Available first: the cheaper test
			return false
		}
		notBefore, lastWrite := v.Pieces.Timers(p)
		switch {
		case now.Before(notBefore):
			return false
		case !peerRule && v.Pieces.Available(p):
			return false
		case !peerRule && now.Sub(lastWrite) < pl.cfg.PeerWriteGrace:
			return false
		}
		return true
	}
	order := ShareOrder(nt, blocks.nm, blocks.rank)
	if blocks.heir != nil {
		order = slotOrder(nt, blocks.nm, blocks.rank, blocks.heir)
	}
	var picked []int
	for i := range order {
		if len(picked) == free {
			break
		}
		if p := pl.todo[i]; eligible(p) && blocks.mayTake(i) {
			picked = append(picked, p)
		}
	}
	// Pieces the caller had and that are not complete any more (a failed recheck) belong
	// to nobody's block.
	for p := 0; p < pl.numPieces && len(picked) < free; p++ {
		if !pl.inTodo[p] && eligible(p) {
			picked = append(picked, p)
		}
	}
	return picked
}

// memberBlocks cuts the blocks by the connected members, self included, sorted by peer ID,
// and works out which members are idle.
func (pl *Planner) memberBlocks(now time.Time, members []Member) blockView {
	outstanding := pl.outstanding
	clear(outstanding)
	for _, m := range members {
		outstanding[m.ID] += m.Outstanding
	}
	ids, rank := pl.sortedMembers(members)
	idle, orphan := pl.idleMembers(now, ids, rank, outstanding)
	return blockView{nm: len(ids), rank: rank, idle: idle, orphan: orphan}
}

// sortedMembers is SortedMembers of self and members. When the members are those of the last
// round in the same order (a caller's connections seldom change), the last sort stands.
func (pl *Planner) sortedMembers(members []Member) ([]PeerID, int) {
	same := len(members) == len(pl.lastIn)
	for i := 0; same && i < len(members); i++ {
		same = members[i].ID == pl.lastIn[i]
	}
	if same && pl.ids != nil {
		return pl.ids, pl.rank
	}
	pl.lastIn = pl.lastIn[:0]
	pl.ids = append(pl.ids[:0], pl.self)
	for _, m := range members {
		pl.lastIn = append(pl.lastIn, m.ID)
		pl.ids = append(pl.ids, m.ID)
	}
	pl.ids, pl.rank = sortMembers(pl.ids, pl.self)
	return pl.ids, pl.rank
}

// idleMembers works out which members (by position in ids) are idle and which are orphans:
// a member with no claim outstanding for IdleGrace is not working on its block (it may see
// the swarm differently). Self never is.
func (pl *Planner) idleMembers(now time.Time, ids []PeerID, rank int, outstanding map[PeerID]int) (idle, orphan []bool) {
	pl.idle = slices.Grow(pl.idle[:0], len(ids))[:len(ids)]
	pl.orphan = slices.Grow(pl.orphan[:0], len(ids))[:len(ids)]
	idle, orphan = pl.idle, pl.orphan
	clear(idle)
	clear(orphan)
	for k, id := range ids {
		idle[k], orphan[k] = pl.idleFor(now, id, k == rank || outstanding[id] > 0)
	}
	return idle, orphan
}

// idleFor keeps since when member id has been idle and reports whether it is idle (IdleGrace)
// and an orphan (OrphanAfter) at now; working says it is not idle now.
func (pl *Planner) idleFor(now time.Time, id PeerID, working bool) (idle, orphan bool) {
	if working {
		delete(pl.idleSince, id)
		return false, false
	}
	since, ok := pl.idleSince[id]
	if !ok {
		since = now
		pl.idleSince[id] = now
	}
	return now.Sub(since) >= pl.cfg.IdleGrace, now.Sub(since) >= pl.cfg.OrphanAfter
}

// blockView is one round's picture of the blocks, for mayTake.
type blockView struct {
	nt, nm, rank int
	idle, orphan []bool
	openBefore   []int // open pieces below each position of todo
	stealGap     int   // open pieces left to a working owner ahead of what others take
	// heir holds, under a Role, the heir of each vacant slot's block (VacantHeirs), -1 for a
	// held one; nil without a Role. A node walks the blocks it inherits as its own.
	heir []int
	// heirAhead holds, for each vacant block under a Role, the open pieces its heir walks
	// before it (its own block's, then those of the blocks it inherits before this one), so
	// that others leave it the same gap as a working owner's frontier; 0 for a held block.
	heirAhead []int
}

// ahead is heirAhead of block k, 0 without a Role.
func (b blockView) ahead(k int) int {
	if b.heirAhead == nil {
		return 0
	}
	return b.heirAhead[k]
}

// aheadOfHeirs works out heirAhead into dst: every heir walks its own block and then the blocks
// it inherits in slot order from its own, wrapping around (slotOrder).
func (b blockView) aheadOfHeirs(dst []int) []int {
	dst = slices.Grow(dst[:0], b.nm)[:b.nm]
	open := func(k int) int {
		return b.openBefore[BlockStart(k+1, b.nt, b.nm)] - b.openBefore[BlockStart(k, b.nt, b.nm)]
	}
	// acc holds, per heir once the walk has passed its own block, the open pieces so far.
	acc := make([]int, b.nm)
	for k := range dst {
		dst[k], acc[k] = -1, -1 // not yet reached
	}
	for i := range 2 * b.nm {
		k := i % b.nm
		switch h := b.heir[k]; {
		case h < 0 && i < b.nm:
			acc[k] = open(k)
		case h >= 0 && acc[h] >= 0 && dst[k] < 0:
			dst[k] = acc[h]
			acc[h] += open(k)
		}
	}
	for k := range dst {
		dst[k] = max(dst[k], 0)
	}
	return dst
}

// mayTake reports whether this node may take the piece at position i of todo, given whose
// block it is in.
func (b blockView) mayTake(i int) bool {
	k := BlockOwner(i, b.nt, b.nm)
	start, end := BlockStart(k, b.nt, b.nm), BlockStart(k+1, b.nt, b.nm)
	gap := b.stealGap
	switch {
	case k == b.rank, b.heir != nil && b.heir[k] == b.rank:
		return true
	case b.orphan[k]:
		gap = 0
	case b.idle[k]:
		// Its heir takes it over; the others leave it until it is an orphan.
		return HeirOf(k, b.idle) == b.rank
	case b.ahead(k)+b.openBefore[i]-b.openBefore[start] < gap:
		return false
	}
	gap = max(0, gap-b.ahead(k))
	// Every node that takes from block k walks it from its end: each leaves a different
	// number of the open pieces there, so that they do not all pick the same one before the
	// first claim arrives.
	takeable := b.openBefore[end] - b.openBefore[start] - gap
	return b.openBefore[end]-b.openBefore[i+1] >= ThiefSkip((k-b.rank+b.nm)%b.nm, takeable)
}

// Limit is how many origin fetches a node keeps in flight, given base (Concurrency), the
// members sharing the origin (self included), self's rank among them, the number of pieces
// in todo and openBefore (open pieces below each position of todo: neither taken nor
// available from a connected peer).
//
// When several nodes share the origin, each keeps fewer fetches in flight (one when there
// are four or more): the origin then completes pieces one after another, and peers spread
// each piece while it sends the next, instead of receiving every node's pieces in parallel
// and finishing them all at the very end, which leaves the spreading for afterwards.
//
// As blocks run out of open pieces, the owners of the blocks that still have some take
// over the fetches in flight of the others, so that the swarm keeps as many as at the
// start. A node's download link also carries its peers' traffic, and one fetch gets only
// its fair share of that link. Nodes whose own block is done keep the base number: they
// take from other blocks one piece at a time (ThiefSkip spreads them one piece apart).
// Blocks a node inherits under a Role (VacantHeirs) do not count as its own here: counted so,
// every heir kept several fetches in flight from the start, and their pieces all completed
// at the end together.
func Limit(base, nm, rank, nt int, openBefore []int) int {
	if nm <= 1 {
		return base
	}
	base = max(1, base/nm)
	working, mine := 0, false
	for k := range nm {
		if openBefore[BlockStart(k+1, nt, nm)] > openBefore[BlockStart(k, nt, nm)] {
			working++
			mine = mine || k == rank
		}
	}
	if !mine {
		return base
	}
	return (base*nm + working - 1) / working
}
