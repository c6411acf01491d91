package originplan

import (
	"slices"
	"testing"
	"time"
)

// TestPlanRole drives planners that have a tracker's Role through rounds. The package has 40
// pieces, all in todo; four slots cut them into [0,10) [10,20) [20,30) [30,40). Concurrency
// 16 gives each of four fetchers four fetches in flight.
func TestPlanRole(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ids := func(bs ...byte) []PeerID {
		out := make([]PeerID, len(bs))
		for i, b := range bs {
			if b != 0 {
				out[i] = id(b)
			}
		}
		return out
	}
	working := func(bs ...byte) []Member {
		var ms []Member
		for _, b := range bs {
			ms = append(ms, Member{ID: id(b), Outstanding: 1})
		}
		return ms
	}
	type round struct {
		at         time.Duration
		peerPieces int
		want       []int
	}
	tests := []struct {
		name     string
		self     byte
		role     Role
		members  []Member
		pieces   fakePieces
		inflight int
		rounds   []round
	}{
		{name: "a fetcher walks its own slot's block, Concurrency at once", self: 2,
			role: Role{Slot: 1, Fetchers: ids(1, 2, 3, 4)}, members: working(1, 3, 4),
			rounds: []round{{want: []int{10, 11, 12, 13}}}},
		{name: "views that disagree: connected to no holder, the same block as the tracker says", self: 2,
			role:   Role{Slot: 1, Fetchers: ids(1, 2, 3, 4)},
			rounds: []round{{want: []int{10, 11, 12, 13}}}},
		{name: "views that disagree: connected members that hold no slot do not cut blocks", self: 3,
			role: Role{Slot: 2, Fetchers: ids(1, 2, 3, 4)}, members: working(9, 8, 7, 1),
			rounds: []round{{want: []int{20, 21, 22, 23}}}},
		{name: "fetches in flight count against Concurrency", self: 2,
			role: Role{Slot: 1, Fetchers: ids(1, 2, 3, 4)}, members: working(1, 3, 4), inflight: 3,
			pieces: fakePieces{taken: set(10, 11, 12)}, rounds: []round{{want: []int{13}}}},
		// VacantHeirs(ids(1, 0, 3, 4), ...) makes slot 2 (id 3) the heir of slot 1.
		{name: "a vacant slot's heir walks its block as its own", self: 3,
			role: Role{Slot: 2, Fetchers: ids(1, 0, 3, 4)}, members: working(1, 4),
			pieces: fakePieces{taken: set(append(seq(0, 10), seq(20, 40)...)...)},
			rounds: []round{{want: []int{10, 11, 12, 13}}}},
		{name: "a vacant block another holder inherits is left to that heir while it works", self: 4,
			role: Role{Slot: 3, Fetchers: ids(1, 0, 3, 4)}, members: working(1, 3),
			pieces: fakePieces{taken: set(append(seq(0, 10), seq(20, 40)...)...)},
			rounds: []round{{want: nil}, {at: 5 * time.Second, want: nil}}},
		{name: "a vacant block whose heir is idle goes as the heir's own block does: to the idle heir's heir", self: 4,
			role: Role{Slot: 3, Fetchers: ids(1, 0, 3, 4)}, members: []Member{{ID: id(1), Outstanding: 1}, {ID: id(3)}},
			pieces: fakePieces{taken: set(append(seq(0, 10), seq(20, 40)...)...)},
			rounds: []round{{want: nil}, {at: time.Second, want: []int{19, 18, 17, 16}}}},
		{name: "a working holder keeps its block", self: 2,
			role: Role{Slot: 1, Fetchers: ids(1, 2, 3, 4)}, members: working(1, 3, 4),
			pieces: fakePieces{taken: set(seq(10, 40)...)},
			rounds: []round{{want: nil}, {at: 10 * time.Second, peerPieces: 1, want: nil}}},
		{name: "a holder seen without claims is idle after IdleGrace", self: 2,
			role: Role{Slot: 1, Fetchers: ids(1, 2, 3, 4)}, members: []Member{{ID: id(1)}, {ID: id(3), Outstanding: 1}},
			pieces: fakePieces{taken: set(seq(10, 40)...)},
			rounds: []round{{want: nil}, {at: time.Second, want: []int{9, 8, 7, 6}}}},
		{name: "a holder not seen keeps its block while peers make progress", self: 2,
			role: Role{Slot: 1, Fetchers: ids(1, 2, 3, 4)}, members: working(3, 4),
			pieces: fakePieces{taken: set(seq(10, 40)...)},
			rounds: []round{{want: nil}, {at: 4 * time.Second, want: nil},
				{at: 8 * time.Second, peerPieces: 1, want: nil}, {at: 12 * time.Second, peerPieces: 2, want: nil}}},
		{name: "a dead holder (not seen, peers bring nothing): idle IdleGrace into the stall, then its heir takes its block", self: 2,
			role: Role{Slot: 1, Fetchers: ids(1, 2, 3, 4)}, members: working(3, 4),
			pieces: fakePieces{taken: set(seq(10, 40)...)},
			rounds: []round{{want: nil}, {at: 5 * time.Second, want: nil},
				{at: 6 * time.Second, want: []int{9, 8, 7, 6}}}},
		{name: "a dead holder: a fetcher that is not its heir waits until it is an orphan", self: 3,
			role: Role{Slot: 2, Fetchers: ids(1, 2, 3, 4)}, members: working(2, 4),
			pieces: fakePieces{taken: set(seq(10, 40)...)},
			rounds: []round{{want: nil}, {at: 5 * time.Second, want: nil}, {at: 7 * time.Second, want: nil},
				{at: 8 * time.Second, want: []int{8, 7, 6, 5}}}},
		{name: "not a fetcher: nothing while peers make progress", self: 9,
			role:   Role{Slot: -1, Fetchers: ids(1, 2, 3, 4)},
			rounds: []round{{want: nil}, {at: 4 * time.Second, want: nil}, {at: 8 * time.Second, peerPieces: 5, want: nil}}},
		{name: "not a fetcher, stalled: only pieces no connected peer has", self: 9,
			role: Role{Slot: -1, Fetchers: ids(1, 2, 3, 4)}, pieces: fakePieces{avail: set(seq(0, 38)...)},
			rounds: []round{{at: 4 * time.Second, want: nil}, {at: 5 * time.Second, want: []int{38, 39}}}},
		{name: "not a fetcher, stalled for LongStall: pieces peers have too", self: 9,
			role: Role{Slot: -1, Fetchers: ids(1, 2, 3, 4)}, pieces: fakePieces{avail: set(seq(0, 38)...)},
			rounds: []round{{at: 5 * time.Second, want: []int{38, 39}}, {at: 19 * time.Second, want: []int{38, 39}},
				{at: LongStall * 5 * time.Second, want: seq(0, 16)}}},
		{name: "a fetcher, stalled: pieces peers have too", self: 1,
			role: Role{Slot: 0, Fetchers: ids(1, 2, 3, 4)}, members: working(2, 3, 4),
			pieces: fakePieces{avail: set(seq(0, 40)...)},
			rounds: []round{{at: 4 * time.Second, want: nil}, {at: 5 * time.Second, want: []int{0, 1, 2, 3}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl := New(Config{Concurrency: 16}, id(tc.self), 40, seq(0, 40), t0)
			for i, r := range tc.rounds {
				role := tc.role
				got := pl.Plan(View{Now: t0.Add(r.at), Members: tc.members, Inflight: tc.inflight,
					PeerPieces: r.peerPieces, Pieces: tc.pieces, Role: &role})
				if !slices.Equal(got, r.want) {
					t.Errorf("round %d at %s: Plan = %v, want %v", i, r.at, got, r.want)
				}
			}
		})
	}
}

// Fetchers that see different parts of the swarm still fetch disjoint pieces: each cuts the
// blocks by the tracker's slots, not by whom it is connected to.
func TestPlanRoleDisjoint(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fetchers := []PeerID{id(7), id(3), id(9), id(1)}
	views := [][]Member{nil, {{ID: id(7), Outstanding: 1}}, {{ID: id(1)}, {ID: id(42), Outstanding: 3}},
		{{ID: id(7), Outstanding: 1}, {ID: id(3), Outstanding: 1}, {ID: id(9), Outstanding: 1}}}
	seen := map[int]int{}
	for slot, self := range fetchers {
		pl := New(Config{Concurrency: 16}, self, 100, seq(0, 100), t0)
		got := pl.Plan(View{Now: t0, Members: views[slot], Pieces: fakePieces{},
			Role: &Role{Slot: slot, Fetchers: fetchers}})
		if len(got) != 4 {
			t.Errorf("slot %d picked %v, want 4 pieces", slot, got)
		}
		for _, p := range got {
			if other, dup := seen[p]; dup {
				t.Errorf("slots %d and %d both picked piece %d", other, slot, p)
			}
			seen[p] = slot
			if owner := BlockOwner(p, 100, len(fetchers)); owner != slot {
				t.Errorf("slot %d picked piece %d of slot %d's block", slot, p, owner)
			}
		}
	}
}

// Fewer nodes than slots: each vacant block has one heir (VacantHeirs), so two fetchers whose
// own blocks are done pick disjoint pieces, each from the blocks it inherits, walked forwards.
func TestPlanRoleVacantShared(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fetchers := make([]PeerID, 8)
	fetchers[0], fetchers[1] = id(1), id(2)
	heirs := VacantHeirs(fetchers, nil)
	// 80 pieces in blocks of 10; the holders' own blocks are done.
	pieces := fakePieces{taken: set(seq(0, 20)...)}
	seen := map[int]int{}
	for slot := range 2 {
		pl := New(Config{Concurrency: 16}, fetchers[slot], 80, seq(0, 80), t0)
		got := pl.Plan(View{Now: t0, Members: []Member{{ID: fetchers[1-slot], Outstanding: 1}}, Pieces: pieces,
			Role: &Role{Slot: slot, Fetchers: fetchers}})
		first := -1 // the first block this fetcher inherits after its own, wrapping around
		for d := 1; d < 8 && first < 0; d++ {
			if k := (slot + d) % 8; heirs[k] == slot {
				first = k
			}
		}
		if first < 0 || len(got) == 0 || got[0] != 10*first {
			t.Errorf("slot %d: Plan = %v, want to start at piece %d (heirs %v)", slot, got, 10*first, heirs)
		}
		for _, p := range got {
			if owner := BlockOwner(p, 80, 8); heirs[owner] != slot {
				t.Errorf("slot %d picked piece %d of slot %d, whose heir is %d", slot, p, owner, heirs[owner])
			}
			if other, dup := seen[p]; dup {
				t.Errorf("slots %d and %d both picked piece %d", other, slot, p)
			}
			seen[p] = slot
		}
	}
}

// TestVacantHeirs: every vacant slot gets one of the holders, the same for every caller, and
// the holders inherit about as many pieces each (within one block's pieces of each other).
func TestVacantHeirs(t *testing.T) {
	tests := []struct {
		name    string
		holders []int // slots held, of 16
		sizes   []int // pieces of each slot's block; nil: one each
	}{
		{name: "one holder inherits everything", holders: []int{0}},
		{name: "four in the lowest slots", holders: []int{0, 1, 2, 3}},
		{name: "scattered", holders: []int{1, 5, 6, 11, 15}},
		{name: "empty blocks weigh nothing (a delta's few missing pieces)", holders: []int{0, 1, 2, 3},
			sizes: []int{1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1}},
		{name: "all held", holders: seq(0, 16)},
		{name: "none held", holders: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fetchers := make([]PeerID, 16)
			for _, k := range tc.holders {
				fetchers[k] = id(byte(100 + k))
			}
			size := func(k int) int { return 1 }
			if tc.sizes != nil {
				size = func(k int) int { return tc.sizes[k] }
			}
			heirs := VacantHeirs(fetchers, size)
			if !slices.Equal(heirs, VacantHeirs(slices.Clone(fetchers), size)) {
				t.Fatal("two calls on the same list differ")
			}
			load := map[int]int{}
			for k, h := range heirs {
				held := fetchers[k] != (PeerID{})
				switch {
				case held && h != -1:
					t.Errorf("held slot %d has heir %d, want -1", k, h)
				case !held && len(tc.holders) > 0 && (h < 0 || fetchers[h] == (PeerID{})):
					t.Errorf("vacant slot %d has heir %d, want a held slot", k, h)
				case !held && len(tc.holders) == 0 && h != -1:
					t.Errorf("vacant slot %d has heir %d with no holder", k, h)
				}
				if h >= 0 {
					load[h] += size(k)
				}
			}
			lo, hi := -1, -1
			for _, k := range tc.holders {
				if lo < 0 || load[k] < lo {
					lo = load[k]
				}
				hi = max(hi, load[k])
			}
			if hi-lo > 1 {
				t.Errorf("holders inherit %v pieces: want within one of each other (heirs %v)", load, heirs)
			}
		})
	}
}

// TestAheadOfHeirs: the open pieces each vacant block's heir walks before it, its own block's
// first, then its inherited blocks in slot order from its own, wrapping around.
func TestAheadOfHeirs(t *testing.T) {
	// 8 slots of 5 pieces each; slots 0 and 4 held; 1, 2 and 7 inherited by 0; 3, 5 and 6 by 4.
	heir := []int{-1, 0, 0, 4, -1, 4, 4, 0}
	open := []int{5, 1, 2, 3, 4, 5, 0, 2} // open pieces per block
	ob := make([]int, 41)
	for k, n := range open {
		for j := range 5 {
			ob[k*5+j+1] = ob[k*5+j]
			if j < n {
				ob[k*5+j+1]++
			}
		}
	}
	b := blockView{nt: 40, nm: 8, heir: heir, openBefore: ob}
	got := b.aheadOfHeirs(nil)
	want := []int{0, 5, 6, 4 + 5 + 0, 0, 4, 4 + 5, 5 + 1 + 2}
	if !slices.Equal(got, want) {
		t.Errorf("aheadOfHeirs = %v, want %v", got, want)
	}
}
