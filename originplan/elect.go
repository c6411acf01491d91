package originplan

import (
	"cmp"
	"math"
	"slices"
)

// ElectedFetchers is how many origin fetchers the nodes of a swarm elect among themselves
// when no tracker hands out roles (a stock tracker, such as opentracker). It is a constant,
// the same on every node, since the nodes cut their blocks by it. Under a coordinating
// tracker the default is the peers a node connects to (DefaultFetchers, capped at the
// tracker's list size); a stock tracker's lists are short (opentracker's default is 50
// peers), and a node's first connections number about as many as the dozen or two below.
const ElectedFetchers = 16

// ElectSlots is how many slots the elected fetchers of a swarm larger than ElectedFetchers
// are placed in, each where its hash puts it; the vacant slots' blocks go to heirs among them
// (VacantHeirs). With 16 fetchers in 16 slots, most shared a slot with another before they
// heard of each other, and moved when they did; in 32 slots fewer than half do. With more
// slots, the blocks grow too small for the steal gap.
const ElectSlots = 32

// MaxElectHops is how far word of a candidate travels: a node's own entry has 0 hops, its
// connected peers' 1, and each relay adds one. Farther entries are dropped, so that the
// entry of a node that left dies out within MaxElectHops exchanges instead of going round
// the swarm for ever; a stock tracker's random lists make a graph whose diameter is a few
// hops for thousands of nodes.
const MaxElectHops = 4

// Heard is what a connected peer said last: its list and its estimate of the swarm's size.
type Heard struct {
	List  []Candidate
	Swarm int
}

// eligibleShare is how many times ElectedFetchers nodes of a swarm may be elected at all (see
// Election.Eligible).
const eligibleShare = 1.0

// Candidate is an entry of an election list: a node that fetches from the origin and still
// needs data, and how many hops its word travelled.
type Candidate struct {
	ID   PeerID
	Hops int
}

// Election elects origin fetchers without a tracker, the way a tracker's Slots names them:
// every node weighs every candidate it hears of by a hash of its ID and the swarm's salt
// (rendezvous hashing), keeps the ElectedFetchers heaviest, and tells its connected peers
// that list; they merge it with their own. Only the nodes whose weight lies in the top
// eligibleShare x ElectedFetchers of the swarm's size, which the nodes pass on too, can be
// elected at all, so that a node that sees few others does not take itself for one of the
// heaviest. The heaviest nodes of the swarm thus come to be
// on every node's list within a few exchanges, whatever part of the swarm each node is
// connected to, and each elected node's slot follows from the list, so that the fetchers
// cut the same blocks (Role), as under a tracker's Slots, and the rest leave the origin to
// them. A node not connected to a fetcher still leaves it its block while its peers bring
// pieces: that fetcher's pieces reach it through them.
//
// Without it, the members of the origin rule are the peers a node is connected to: 48 nodes
// whose gates opened with 12 to 46 of their 47 peers connected cut different blocks, and the
// origin sent 2.4 times the package.
//
// Election is pure and not safe for concurrent use; its zero value is not usable (NewElection).
type Election struct {
	self PeerID
	salt uint64
	n    int
	list []Candidate // the last result, heaviest first
	// swarm is the largest swarm size this node knows of: its own count of the peers it
	// knows, or a peer's, passed on.
	swarm int
	role  Role
	all   []weighed // scratch
}

// NewElection returns self's election for the swarm named by salt (a hash of the info hash,
// so that a node is not elected in every swarm it is part of), electing n fetchers
// (ElectedFetchers when n <= 0).
func NewElection(self PeerID, salt uint64, n int) *Election {
	if n <= 0 {
		n = ElectedFetchers
	}
	return &Election{self: self, salt: salt, n: n, swarm: 1, role: Role{Slot: -1}}
}

// Update works the list out afresh and reports whether it changed (the caller then tells its
// connected peers). selfIn says this node fetches from the origin and still needs data;
// swarm is its own estimate of the swarm's size (the peers it knows of, itself included);
// direct are its connected peers that fetch from the origin and still need data; heard what
// its connected peers said last; out the connected peers known not to be candidates (done,
// or not using the origin), whose entries relayed by others are stale.
func (e *Election) Update(selfIn bool, swarm int, direct []PeerID, heard []Heard, out func(PeerID) bool) bool {
	swarm = max(swarm, 1+len(direct))
	for _, h := range heard {
		swarm = max(swarm, h.Swarm)
	}
	all := e.all[:0]
	floor := eligibleFloor(swarm, e.n)
	add := func(id PeerID, hops int) {
		if w := weight(id, e.salt); w >= floor {
			all = append(all, weighed{Candidate{ID: id, Hops: hops}, w})
		}
	}
	if selfIn {
		add(e.self, 0)
	}
	for _, id := range direct {
		add(id, 1)
	}
	for _, h := range heard {
		for _, c := range h.List {
			if c.Hops+1 <= MaxElectHops && c.ID != e.self && (out == nil || !out(c.ID)) {
				add(c.ID, c.Hops+1)
			}
		}
	}
	// Heaviest first, and for one ID its fewest hops first; then one entry per ID.
	slices.SortFunc(all, func(a, b weighed) int {
		if a.w != b.w {
			return cmp.Compare(b.w, a.w)
		}
		if c := compareIDs(a.ID, b.ID); c != 0 {
			return c
		}
		return cmp.Compare(a.Hops, b.Hops)
	})
	all = slices.CompactFunc(all, func(a, b weighed) bool { return a.ID == b.ID })
	e.all = all
	top := all[:min(len(all), e.n)]
	grew := swarm > e.swarm
	e.swarm = max(e.swarm, swarm)
	same := slices.EqualFunc(top, e.list, func(a weighed, b Candidate) bool { return a.Candidate == b })
	if same && !grew {
		return false
	}
	e.list = e.list[:0]
	for _, c := range top {
		e.list = append(e.list, c.Candidate)
	}
	e.role = e.slotted() // the swarm's size decides the slots too
	return true
}

// weighed is a candidate and its weight, for sorting.
type weighed struct {
	Candidate
	w uint64
}

// List is the last list worked out, heaviest first, and the largest swarm size this node
// knows of: what this node tells its peers. The caller must not modify the list.
func (e *Election) List() Heard { return Heard{List: e.list, Swarm: e.swarm} }

// Active reports whether the node should plan by Role: it has heard of another candidate, or
// of a swarm larger than the fetchers elected (where a node that is not eligible leaves the
// origin to others even before it hears of them). Otherwise it is alone as far as it knows,
// and keeps the rules of a node without peers.
func (e *Election) Active() bool { return len(e.list) > 1 || e.swarm > e.n }

// eligibleFloor is the weight a node needs to be elected at all in a swarm of swarm nodes:
// the weights are uniform, so about eligibleShare x n nodes of the swarm reach it, and each
// node knows whether it does from its own weight and the swarm's size alone. A node that
// knows only part of the swarm would otherwise find itself among the n heaviest of what it
// knows and fetch: 48 nodes whose gates opened while each was connected to 1 to 22 of the
// others counted 30 fetchers.
func eligibleFloor(swarm, n int) uint64 {
	span := math.Ldexp(eligibleShare*float64(n)/float64(max(swarm, 1)), 64) // of 2^64 weights
	if span >= math.Ldexp(1, 64) {
		return 0
	}
	return math.MaxUint64 - uint64(span)
}

// Role is the last list as a tracker's Role would give it (see slotted), with this node's slot
// among them, -1 when it is not elected. The caller must not modify it.
func (e *Election) Role() *Role { return &e.role }

// slotted places the elected nodes in slots. In a swarm of n nodes or fewer, every node is
// eligible and on the list: the slots are theirs in the order of their IDs, as the members of
// Plan's rules without a Role are, so that a small swarm cuts one block per node, walked in
// long runs. In a larger swarm there are ElectSlots slots, and a fetcher's slot is where its
// hash puts it (the next free one, from the heaviest down, when taken), whoever else it has
// heard of, so that its own block does not depend on which fetchers it knows yet. The slots of
// fetchers it has not heard of are vacant to it, and their blocks go to heirs (VacantHeirs),
// which walk them after their own, by when word of those fetchers has come.
func (e *Election) slotted() Role {
	r := Role{Slot: -1}
	if e.swarm <= e.n {
		for _, c := range e.list {
			r.Fetchers = append(r.Fetchers, c.ID)
		}
		slices.SortFunc(r.Fetchers, compareIDs)
		r.Slot = slices.Index(r.Fetchers, e.self)
		return r
	}
	r.Fetchers = make([]PeerID, ElectSlots)
	for _, c := range e.list {
		k := int(weight(c.ID, ^e.salt) % ElectSlots)
		for r.Fetchers[k] != (PeerID{}) {
			k = (k + 1) % ElectSlots
		}
		r.Fetchers[k] = c.ID
		if c.ID == e.self {
			r.Slot = k
		}
	}
	return r
}
