package originplan

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func electID(i int) PeerID {
	var id PeerID
	copy(id[:], "-PS0001-")
	id[18], id[19] = byte(i>>8), byte(i)
	return id
}

// eligibleIn counts the IDs of ids and electID(0) that reach the eligibility floor of a swarm of
// swarm nodes.
func eligibleIn(ids []PeerID, swarm int) int {
	n := 0
	for _, id := range append([]PeerID{electID(0)}, ids...) {
		if weight(id, 42) >= eligibleFloor(swarm, ElectedFetchers) {
			n++
		}
	}
	return min(n, ElectedFetchers)
}

func TestEligibleFloor(t *testing.T) {
	for _, tc := range []struct{ swarm, n int }{{1, 16}, {24, 16}, {25, 16}, {48, 16}, {1000, 16}, {1 << 20, 16}} {
		f := eligibleFloor(tc.swarm, tc.n)
		share := 1 - float64(f)/math.MaxUint64
		want := min(1, eligibleShare*float64(tc.n)/float64(tc.swarm))
		if math.Abs(share-want) > 1e-9 {
			t.Errorf("eligibleFloor(%d, %d) leaves a share %g of weights, want %g", tc.swarm, tc.n, share, want)
		}
	}
	// Of 10,000 random IDs, about eligibleShare x 16 reach the floor of a swarm of 10,000.
	rng := rand.New(rand.NewPCG(3, 4))
	n := 0
	for range 10000 {
		var id PeerID
		for i := range id {
			id[i] = byte(rng.Uint32())
		}
		if weight(id, 9) >= eligibleFloor(10000, 16) {
			n++
		}
	}
	if n < 12 || n > 40 {
		t.Errorf("%d of 10,000 IDs eligible in a swarm of 10,000, want about %g", n, eligibleShare*16)
	}
}

func TestElectionUpdate(t *testing.T) {
	self := electID(0)
	ids := make([]PeerID, 40)
	for i := range ids {
		ids[i] = electID(i + 1)
	}
	tests := []struct {
		name     string
		selfIn   bool
		swarm    int
		direct   []PeerID
		heard    [][]Candidate
		out      []PeerID
		wantLen  int
		wantHops map[PeerID]int // for IDs that must be on the list
		notOn    []PeerID
	}{
		{name: "alone", selfIn: true, wantLen: 1, wantHops: map[PeerID]int{self: 0}},
		{name: "alone, done", selfIn: false, wantLen: 0},
		{name: "direct peers", selfIn: true, direct: ids[:3], wantLen: 4,
			wantHops: map[PeerID]int{self: 0, ids[0]: 1, ids[1]: 1, ids[2]: 1}},
		{name: "heard, fewest hops kept", selfIn: true, direct: ids[:1],
			heard:   [][]Candidate{{{ID: ids[0], Hops: 0}, {ID: ids[5], Hops: 2}}, {{ID: ids[5], Hops: 0}}},
			wantLen: 3, wantHops: map[PeerID]int{ids[0]: 1, ids[5]: 1}},
		{name: "too far dropped", selfIn: true,
			heard:   [][]Candidate{{{ID: ids[7], Hops: MaxElectHops}, {ID: ids[8], Hops: MaxElectHops - 1}}},
			wantLen: 2, wantHops: map[PeerID]int{ids[8]: MaxElectHops}, notOn: []PeerID{ids[7]}},
		{name: "self's entry relayed back is not a candidate twice", selfIn: true,
			heard: [][]Candidate{{{ID: self, Hops: 1}}}, wantLen: 1, wantHops: map[PeerID]int{self: 0}},
		{name: "connected and out: relayed entries dropped", selfIn: true,
			heard: [][]Candidate{{{ID: ids[3], Hops: 0}, {ID: ids[4], Hops: 1}}}, out: ids[3:4],
			wantLen: 2, notOn: []PeerID{ids[3]}},
		{name: "n nodes, all listed", selfIn: true, direct: ids[:ElectedFetchers-1], wantLen: ElectedFetchers},
		{name: "a swarm of 41: the eligible", selfIn: true, direct: ids, wantLen: eligibleIn(ids, 41)},
		{name: "alone in a large swarm", selfIn: true, swarm: 48, wantLen: eligibleIn(nil, 48)},
		{name: "a large swarm: only the heaviest eligible", selfIn: true, swarm: 400, direct: ids,
			wantLen: eligibleIn(ids, 400)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewElection(self, 42, 0)
			out := func(id PeerID) bool { return slices.Contains(tt.out, id) }
			var heard []Heard
			for _, l := range tt.heard {
				heard = append(heard, Heard{List: l})
			}
			changed := e.Update(tt.selfIn, tt.swarm, tt.direct, heard, out)
			l := e.List().List
			if changed != (tt.wantLen > 0 || tt.swarm > 1) {
				t.Errorf("changed = %v for a list of %d", changed, len(l))
			}
			if len(l) != tt.wantLen {
				t.Fatalf("list of %d, want %d: %v", len(l), tt.wantLen, l)
			}
			for i := 1; i < len(l); i++ {
				if weight(l[i-1].ID, 42) < weight(l[i].ID, 42) {
					t.Errorf("list not heaviest first at %d", i)
				}
			}
			for id, hops := range tt.wantHops {
				i := slices.IndexFunc(l, func(c Candidate) bool { return c.ID == id })
				if i < 0 || l[i].Hops != hops {
					t.Errorf("%x: at %d of %v, want %d hops", id[18:], i, l, hops)
				}
			}
			for _, id := range tt.notOn {
				if slices.ContainsFunc(l, func(c Candidate) bool { return c.ID == id }) {
					t.Errorf("%x is on the list %v", id[18:], l)
				}
			}
			r := e.Role()
			if want := slices.ContainsFunc(l, func(c Candidate) bool { return c.ID == self }); r.Fetcher() != want {
				t.Errorf("Fetcher() = %v, self on the list %v", r.Fetcher(), want)
			}
			if r.Fetcher() && r.Fetchers[r.Slot] != self {
				t.Errorf("slot %d holds %x, not self", r.Slot, r.Fetchers[r.Slot])
			}
			held := 0
			for _, id := range r.Fetchers {
				if id != (PeerID{}) {
					held++
				}
			}
			small := e.List().Swarm <= ElectedFetchers
			if want := map[bool]int{true: len(l), false: ElectSlots}[small]; held != len(l) || len(r.Fetchers) != want {
				t.Errorf("%d of %d slots held for a list of %d, want %d slots", held, len(r.Fetchers), len(l), want)
			}
			if small && !slices.IsSortedFunc(r.Fetchers, compareIDs) {
				t.Errorf("a small swarm's slots not in the order of IDs: %x", r.Fetchers)
			}
			if e.Update(tt.selfIn, tt.swarm, tt.direct, heard, out) {
				t.Error("the same input changed the list again")
			}
		})
	}
}

// Nodes connected at random to a few others each, exchanging lists round by round, come to
// the same Role within MaxElectHops rounds: the same fetchers in the same slots, whatever
// part of the swarm each sees. Another salt elects others.
func TestElectionConverges(t *testing.T) {
	for _, tc := range []struct{ nodes, degree int }{{5, 2}, {48, 4}, {64, 8}, {1000, 8}} {
		rng := rand.New(rand.NewPCG(uint64(tc.nodes), 1))
		conns := make([][]int, tc.nodes)
		for i := range tc.nodes { // a ring keeps the graph connected; the rest at random
			j := (i + 1) % tc.nodes
			conns[i], conns[j] = append(conns[i], j), append(conns[j], i)
			for range tc.degree - 1 {
				j := rng.IntN(tc.nodes)
				if j != i && !slices.Contains(conns[i], j) {
					conns[i], conns[j] = append(conns[i], j), append(conns[j], i)
				}
			}
		}
		var es []*Election
		// exchange runs rounds until no list changes, and returns how many it took; gone nodes
		// take no part.
		exchange := func(gone func(int) bool) int {
			for round := 0; ; round++ {
				if round == 40 {
					t.Fatalf("%d nodes: lists still change after %d rounds", tc.nodes, round)
				}
				lists := make([]Heard, tc.nodes)
				for i, e := range es {
					h := e.List()
					lists[i] = Heard{List: slices.Clone(h.List), Swarm: h.Swarm}
				}
				changed := false
				for i, e := range es {
					if gone(i) {
						continue
					}
					var direct []PeerID
					var heard []Heard
					for _, j := range conns[i] {
						if !gone(j) {
							direct = append(direct, electID(j))
							heard = append(heard, lists[j])
						}
					}
					// Each node knows of a tracker's list of up to 50 peers.
					changed = e.Update(true, min(tc.nodes, 51), direct, heard, nil) || changed
				}
				if !changed {
					return round
				}
			}
		}
		elect := func(salt uint64) [][]PeerID {
			es = make([]*Election, tc.nodes)
			for i := range es {
				es[i] = NewElection(electID(i), salt, 0)
			}
			exchange(func(int) bool { return false })
			roles := make([][]PeerID, tc.nodes)
			for i, e := range es {
				roles[i] = e.Role().Fetchers
			}
			return roles
		}
		a, b := elect(1), elect(2)
		fetchers, eligible := 0, 0
		for i := range a {
			if !slices.Equal(a[i], a[0]) {
				t.Fatalf("%d nodes: node %d elected %x, node 0 %x", tc.nodes, i, a[i], a[0])
			}
			if slices.Contains(a[0], electID(i)) {
				fetchers++
			}
			if weight(electID(i), 1) >= eligibleFloor(min(tc.nodes, 51), ElectedFetchers) {
				eligible++
			}
		}
		if want := min(eligible, ElectedFetchers); fetchers != want || fetchers == 0 {
			t.Errorf("%d nodes: %d elected, want the %d eligible, at most %d", tc.nodes, fetchers, eligible, ElectedFetchers)
		}
		if tc.nodes > 2*ElectedFetchers && slices.Equal(a[0], b[0]) {
			t.Errorf("%d nodes: another salt elected the same fetchers", tc.nodes)
		}
		// The heaviest node leaves: its entry dies out within MaxElectHops rounds, and word of
		// the next heaviest reaches every node within the graph's diameter.
		top := es[0].List().List[0].ID
		leaver := int(top[18])<<8 | int(top[19])
		rounds := exchange(func(i int) bool { return i == leaver })
		if rounds > 2*MaxElectHops {
			t.Errorf("%d nodes: %d rounds after a fetcher left", tc.nodes, rounds)
		}
		for i, e := range es {
			if i != leaver && slices.ContainsFunc(e.List().List, func(c Candidate) bool { return c.ID == top }) {
				t.Fatalf("%d nodes: node %d still lists the node that left", tc.nodes, i)
			}
		}
	}
}

// The Role follows the swarm's size even when the list stays the same: a node alone on its list
// takes a swarm of 48 for one of 48 once it hears of it, not for one of its own.
func TestElectionRoleFollowsSwarm(t *testing.T) {
	var self PeerID
	for i := 0; ; i++ { // an ID eligible in a swarm of 48
		if self = electID(i); weight(self, 42) >= eligibleFloor(48, ElectedFetchers) {
			break
		}
	}
	e := NewElection(self, 42, 0)
	e.Update(true, 1, nil, nil, nil)
	if r := e.Role(); len(r.Fetchers) != 1 || r.Slot != 0 {
		t.Fatalf("alone: %d slots, slot %d", len(r.Fetchers), r.Slot)
	}
	if !e.Update(true, 48, nil, nil, nil) {
		t.Error("a larger swarm did not change the election")
	}
	if r := e.Role(); len(r.Fetchers) != ElectSlots || !r.Fetcher() || !e.Active() {
		t.Errorf("in a swarm of 48: %d slots, fetcher %v, active %v", len(r.Fetchers), r.Fetcher(), e.Active())
	}
}
