package originplan

import (
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

func TestElectionUpdate(t *testing.T) {
	self := electID(0)
	ids := make([]PeerID, 40)
	for i := range ids {
		ids[i] = electID(i + 1)
	}
	tests := []struct {
		name     string
		selfIn   bool
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
		{name: "capped at n", selfIn: true, direct: ids, wantLen: ElectedFetchers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewElection(self, 42, 0)
			out := func(id PeerID) bool { return slices.Contains(tt.out, id) }
			changed := e.Update(tt.selfIn, tt.direct, tt.heard, out)
			l := e.List()
			if changed != (tt.wantLen > 0) {
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
			if want := max(len(l), ElectedFetchers*min(1, len(l)/ElectedFetchers)); held != len(l) || len(r.Fetchers) != want {
				t.Errorf("%d of %d slots held for a list of %d, want %d slots", held, len(r.Fetchers), len(l), want)
			}
			if len(l) < ElectedFetchers && !slices.IsSortedFunc(r.Fetchers, compareIDs) {
				t.Errorf("a list of %d not full, and its slots not in the order of IDs: %x", len(l), r.Fetchers)
			}
			if e.Update(tt.selfIn, tt.direct, tt.heard, out) {
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
				lists := make([][]Candidate, tc.nodes)
				for i, e := range es {
					lists[i] = slices.Clone(e.List())
				}
				changed := false
				for i, e := range es {
					if gone(i) {
						continue
					}
					var direct []PeerID
					var heard [][]Candidate
					for _, j := range conns[i] {
						if !gone(j) {
							direct = append(direct, electID(j))
							heard = append(heard, lists[j])
						}
					}
					changed = e.Update(true, direct, heard, nil) || changed
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
		fetchers := 0
		for i := range a {
			if !slices.Equal(a[i], a[0]) {
				t.Fatalf("%d nodes: node %d elected %x, node 0 %x", tc.nodes, i, a[i], a[0])
			}
			if slices.Contains(a[0], electID(i)) {
				fetchers++
			}
		}
		if want := min(tc.nodes, ElectedFetchers); fetchers != want {
			t.Errorf("%d nodes: %d elected, want %d", tc.nodes, fetchers, want)
		}
		if tc.nodes > 2*ElectedFetchers && slices.Equal(a[0], b[0]) {
			t.Errorf("%d nodes: another salt elected the same fetchers", tc.nodes)
		}
		// The heaviest node leaves: its entry dies out within MaxElectHops rounds, and word of
		// the next heaviest reaches every node within the graph's diameter.
		top := es[0].List()[0].ID
		leaver := int(top[18])<<8 | int(top[19])
		rounds := exchange(func(i int) bool { return i == leaver })
		if rounds > 2*MaxElectHops {
			t.Errorf("%d nodes: %d rounds after a fetcher left", tc.nodes, rounds)
		}
		for i, e := range es {
			if i != leaver && slices.ContainsFunc(e.List(), func(c Candidate) bool { return c.ID == top }) {
				t.Fatalf("%d nodes: node %d still lists the node that left", tc.nodes, i)
			}
		}
	}
}
