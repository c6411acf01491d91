package swarmsim

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/pkgsync/pkgsync/originplan"
)

// conn is one end of a connection.
type conn struct {
	peer       int32
	rev        int32   // this connection's index in the peer's conns
	peerFull   bool    // the peer was complete when it connected: counted in fullPeers, not per piece
	peerHidden bool    // the site rule hides the peer's pieces from this node (a far gateway)
	muted      bool    // the peer is not told this node's pieces: its end has peerFull or peerHidden
	out        bool    // this node dialed it
	since      float64 // when it was opened
}

// node is one host running pkgsync update (then seeding).
type node struct {
	s                *sim
	idx              int32
	site, rack, host int32
	up, down         int32 // links
	gen              int32 // lives: timers of an earlier one are ignored

	firstStart, doneAt float64
	diedAt             float64
	alive, started     bool
	complete           bool
	id                 originplan.PeerID
	plan               *originplan.Planner
	role               *originplan.Role     // the tracker's last answer; nil under a stock tracker
	elect              *originplan.Election // under a stock tracker, unless Scenario.NoElect

	have       bitset   // in sim.haves
	haveList   []uint16 // the pieces it has, in the order it got them
	avail      bitset   // the pieces some connected peer has (whose pieces it is told); in sim.avail
	busy       bitset   // the pieces in flight to it
	fullPeers  int
	conns      []conn
	outgoing   int     // conns this node dialed
	known      []int32 // sorted
	peerFlows  int     // pieces in flight from peers
	downs, ups []*flow
	origin     []int32   // pieces in flight from the origin (its claims)
	originAt   []float64 // when each of origin started (its claim reaches others ClaimDelay later)
	originDone int

	// The site rule, worked out from known (sites.go in bt).
	gateway, originPeer, siteOff bool
	gatewayOf                    []int32 // per site, the lowest index known there (-1 none)
	siteProgress                 float64 // when the rule last let this node progress

	recv, sent float64 // bytes over the network, transfers cut short included
	gotBytes   float64 // bytes of the pieces it completed
}

// begin starts (or restarts) pkgsync update on the node: it keeps the pieces it has.
func (n *node) begin() {
	s := n.s
	n.alive, n.started = true, true
	n.gen++
	var id originplan.PeerID
	binary.BigEndian.PutUint64(id[:], s.rng.Uint64())
	binary.BigEndian.PutUint32(id[8:], uint32(n.idx))
	n.id = id
	s.byID[id] = n.idx
	n.role, n.elect = nil, nil
	if s.sc.Tracker == TrackerStock && !s.sc.NoElect {
		n.elect = originplan.NewElection(n.id, s.sc.Seed, 0)
	}
	n.plan = originplan.New(originplan.Config{}, n.id, s.pieces, s.todo, s.at(s.now))
	clear(n.avail)
	n.busy = newBitset(s.pieces)
	n.known, n.conns, n.outgoing, n.fullPeers = nil, nil, 0, 0
	s.starved[n.idx] = false
	n.siteOff, n.siteProgress = false, s.now
	n.workOutSites()
	if len(n.haveList) == s.pieces {
		n.finish()
	} else {
		s.after(s.now, evRound, n.idx, n.gen)
	}
	if !slices.Contains(s.listed, n.idx) {
		s.listed = append(s.listed, n.idx)
		s.racksBy[n.rack] = append(s.racksBy[n.rack], n.idx)
	}
	n.announce()
}

// finish records the node's completion; it stays, seeding.
func (n *node) finish() {
	n.complete = true
	n.s.done[n.idx] = true
	n.doneAt = n.s.now
	n.s.liveDone++
}

// kill stops the node at once: its transfers are cut, its peers forget it.
func (n *node) kill() {
	s := n.s
	for len(n.downs) > 0 {
		s.wasted += s.end(n.downs[0])
	}
	var refill []*node
	for len(n.ups) > 0 {
		f := n.ups[0]
		dst, p := s.nodes[f.dst], int(f.piece)
		s.wasted += s.end(f)
		dst.peerFlows--
		dst.busy.clear(p)
		refill = append(refill, dst)
	}
	n.origin = n.origin[:0]
	n.originAt = n.originAt[:0]
	n.peerFlows = 0
	for len(n.conns) > 0 {
		n.disconnect(len(n.conns) - 1)
	}
	if n.complete {
		s.liveDone--
	}
	n.alive, n.complete = false, false
	s.done[n.idx] = false
	n.diedAt = s.now
	n.gen++
	for _, d := range refill {
		d.fill()
	}
}

// got records piece p as complete here and tells the peers (HAVE).
//
// A run sends tens of millions of pieces, each announced to a hundred peers or more: the
// loop reads only this node's connections and arrays indexed by peer (avail, done, starved),
// not the peers' own structs. A complete peer reads its avail no more, so it is not told.
func (n *node) got(p int) {
	s := n.s
	n.have.set(p)
	n.busy.clear(p)
	n.gotBytes += s.pieceSize(p)
	n.haveList = append(n.haveList, uint16(p))
	n.siteProgress = s.now
	word, bit, stride := p>>6, uint64(1)<<(p&63), s.words
	for _, c := range n.conns {
		if c.muted || s.done[c.peer] {
			continue
		}
		s.avail[int(c.peer)*stride+word] |= bit
		if s.starved[c.peer] {
			if !s.peerHas(c.peer, p) {
				s.starved[c.peer] = false
				s.nodes[c.peer].fill()
			}
		}
	}
	if len(n.haveList) == s.pieces {
		n.finish()
	}
}

// fillTries bounds how many pieces one call of fill passes over because every connected
// holder already sends this node a piece.
const fillTries = 32

// fill keeps Pipeline pieces in flight from peers: a piece drawn at random among those
// connected peers have and this node lacks, from the connected peer that has it, sends this
// node nothing yet, and uploads the fewest pieces. A node finding no such piece is starved
// until a peer says it has a new one or a transfer ends.
//
// The draw takes no account of how many nodes have a piece: bt fetches from pkgsync peers
// over its fast path (fast.go), whose connection to a peer takes the next piece that peer
// has, in index order from a random point (claimFast), not the rarest. The library's rarest
// first serves only stock clients, which a pkgsync fleet has none of.
func (n *node) fill() {
	s := n.s
	c := wanted(s.cand, n.avail, n.have, n.busy) // cand is this call's: no other fill runs meanwhile
	for tries := 0; n.alive && !n.complete && n.peerFlows < s.sc.Pipeline; {
		if c == 0 {
			s.starved[n.idx] = true
			return
		}
		p := nth(s.cand, s.rng.IntN(c))
		s.cand.clear(p)
		c--
		src := n.uploader(p)
		if src == nil {
			// Every holder of p already sends this node a piece: look for another.
			if tries++; tries >= fillTries {
				s.starved[n.idx] = true
				return
			}
			continue
		}
		n.busy.set(p)
		n.peerFlows++
		s.transfer(src, n, p)
	}
}

// sending reports whether q sends n a piece now.
func (n *node) sending(q int32) bool {
	for _, f := range n.downs {
		if f.src == q {
			return true
		}
	}
	return false
}

// uploaderSample is how many holders of a piece uploader compares.
const uploaderSample = 4

// uploader is, of the first uploaderSample connected peers that have p and send n nothing
// now (from a random connection on), the one that uploads the fewest pieces now; nil when
// there is none. A connection carries one piece at a time: bt's fast path (fast.go) runs one
// fetching connection per peer, whose server (fastserve.go) answers its requests in order,
// and the library's requests to a peer share one TCP connection too.
func (n *node) uploader(p int) *node {
	s := n.s
	var best *node
	k := len(n.conns)
	if k == 0 {
		return nil
	}
	off := int(s.rng.Uint64() % uint64(k))
	found := 0
	for i := 0; i < k && found < uploaderSample; i++ {
		c := n.conns[(i+off)%k]
		if c.peerHidden {
			continue
		}
		if !c.peerFull && !s.peerHas(c.peer, p) || n.sending(c.peer) {
			continue
		}
		q := s.nodes[c.peer]
		found++
		if best == nil || len(q.ups) < len(best.ups) {
			best = q
		}
	}
	return best
}

// connected reports whether n has a connection to q.
func (n *node) connected(q int32) bool {
	for _, c := range n.conns {
		if c.peer == q {
			return true
		}
	}
	return false
}

// learn counts what the peer of conns[i] has (its bitfield).
func (n *node) learn(i int) {
	s := n.s
	c := &n.conns[i]
	q := s.nodes[c.peer]
	c.peerHidden = n.hides(q)
	switch {
	case c.peerHidden:
	case q.complete:
		c.peerFull = true
		n.fullPeers++
		n.avail.fill(s.pieces)
	default:
		for i, w := range q.have {
			n.avail[i] |= w
		}
	}
	if s.starved[n.idx] && (c.peerFull || len(q.haveList) > 0) {
		s.starved[n.idx] = false
	}
}

// disconnect closes conns[i] at both ends.
func (n *node) disconnect(i int) {
	s := n.s
	c := n.conns[i]
	q := s.nodes[c.peer]
	q.forget(int(c.rev))
	n.forget(i)
}

// forget drops conns[i] from n's side and works out again what its peers have.
func (n *node) forget(i int) {
	s := n.s
	if n.conns[i].peerFull {
		n.fullPeers--
	}
	if n.conns[i].out {
		n.outgoing--
	}
	last := len(n.conns) - 1
	if i != last {
		moved := n.conns[last]
		n.conns[i] = moved
		s.nodes[moved.peer].conns[moved.rev].rev = int32(i)
	}
	n.conns = n.conns[:last]
	// What the others have, without q.
	clear(n.avail)
	for _, c := range n.conns {
		switch p := s.nodes[c.peer]; {
		case c.peerHidden:
		case c.peerFull:
			n.avail.fill(s.pieces)
		default:
			for i, w := range p.have {
				n.avail[i] |= w
			}
		}
	}
}

// announce asks the tracker for peers, learns them, dials the new ones and schedules the
// next announce.
func (n *node) announce() {
	s := n.s
	n.role = s.roleFor(n)
	fresh := s.peersFor(n)
	for _, q := range fresh {
		if i, found := slices.BinarySearch(n.known, q); !found {
			n.known = slices.Insert(n.known, i, q)
		}
	}
	n.workOutSites()
	for _, q := range fresh {
		n.connect(s.nodes[q])
	}
	next := s.sc.Interval.Seconds()
	if len(n.known) == 0 {
		next = quickAnnounce
	}
	s.after(s.now+next, evAnnounce, n.idx, n.gen)
}

// removeOriginPiece forgets p among the pieces in flight from the origin.
func (n *node) removeOriginPiece(p int) {
	for i, q := range n.origin {
		if int(q) == p {
			last := len(n.origin) - 1
			n.origin[i], n.originAt[i] = n.origin[last], n.originAt[last]
			n.origin, n.originAt = n.origin[:last], n.originAt[:last]
			return
		}
	}
}

// at is the node's notion of now for originplan.
func (n *node) at() time.Time { return n.s.at(n.s.now) }
