package originplan

import (
	"slices"
	"testing"
	"time"
)

// fakePieces is a view of the pieces built from sets.
type fakePieces struct {
	taken, avail map[int]bool
	notBefore    map[int]time.Time
	wrote        map[int]time.Time
}

func (f fakePieces) Taken(p int) bool     { return f.taken[p] }
func (f fakePieces) Available(p int) bool { return f.avail[p] }
func (f fakePieces) Timers(p int) (time.Time, time.Time) {
	return f.notBefore[p], f.wrote[p]
}

func set(ps ...int) map[int]bool {
	m := make(map[int]bool)
	for _, p := range ps {
		m[p] = true
	}
	return m
}

func id(b byte) PeerID { return PeerID{b} }

func seq(a, b int) []int {
	var s []int
	for p := a; p < b; p++ {
		s = append(s, p)
	}
	return s
}

func TestPlan(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name     string
		self     PeerID
		todo     []int
		num      int
		members  []Member
		inflight int
		pieces   fakePieces
		at       time.Duration // after the start
		want     []int
	}{
		{name: "alone: Concurrency pieces from the start", self: id(5), todo: seq(0, 10), num: 10,
			want: []int{0, 1, 2, 3}},
		{name: "alone with fetches in flight", self: id(5), todo: seq(0, 10), num: 10, inflight: 3,
			pieces: fakePieces{taken: set(0, 1, 2)}, want: []int{3}},
		{name: "taken and available pieces are skipped", self: id(5), todo: seq(0, 10), num: 10,
			pieces: fakePieces{taken: set(0, 2), avail: set(1, 4)}, want: []int{3, 5, 6, 7}},
		{name: "backoff and a recent peer write hold a piece back", self: id(5), todo: seq(0, 10), num: 10,
			pieces: fakePieces{notBefore: map[int]time.Time{0: t0.Add(time.Minute)},
				wrote: map[int]time.Time{1: t0.Add(-500 * time.Millisecond)}},
			want: []int{2, 3, 4, 5}},
		{name: "stalled: pieces peers have go to the origin too", self: id(5), todo: seq(0, 10), num: 10,
			pieces: fakePieces{avail: set(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)}, at: 6 * time.Second,
			want: []int{0, 1, 2, 3}},
		{name: "first of two: its own block, two at once", self: id(1), todo: seq(0, 20), num: 20,
			members: []Member{{ID: id(9), Outstanding: 1}}, want: []int{0, 1}},
		{name: "second of two: its own block", self: id(9), todo: seq(0, 20), num: 20,
			members: []Member{{ID: id(1), Outstanding: 1}}, want: []int{10, 11}},
		{name: "blocks are cut from todo", self: id(9), todo: []int{3, 7, 8, 12}, num: 16,
			members: []Member{{ID: id(1), Outstanding: 1}}, want: []int{8, 12}},
		{name: "own block done: takes from the end of a working owner's far block", self: id(1), todo: seq(0, 40), num: 40,
			members: []Member{{ID: id(9), Outstanding: 1}}, pieces: fakePieces{taken: set(seq(0, 20)...)},
			want: []int{39, 38}},
		{name: "own block done: the owner's frontier is left alone", self: id(1), todo: seq(0, 20), num: 20,
			members: []Member{{ID: id(9), Outstanding: 1}}, pieces: fakePieces{taken: set(seq(0, 10)...)},
			want: []int{19, 18}},
		{name: "pieces outside todo (a failed recheck) come last", self: id(5), todo: []int{0, 1}, num: 6,
			want: []int{0, 1, 2, 3}},
		{name: "nothing free", self: id(5), todo: seq(0, 10), num: 10, inflight: 4, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pl := New(Config{}, tc.self, tc.num, tc.todo, t0)
			got := pl.Plan(View{Now: t0.Add(tc.at), Members: tc.members, Inflight: tc.inflight, Pieces: tc.pieces})
			if !slices.Equal(got, tc.want) {
				t.Errorf("Plan = %v, want %v", got, tc.want)
			}
		})
	}
}

// An idle member's block goes to its heir after IdleGrace and to everybody after OrphanAfter.
func TestPlanIdleMember(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// Members 1, 2 and 3 (self 2 or 3); 30 pieces, blocks [0,10) [10,20) [20,30). Member 1 is
	// idle; the blocks of 2 and 3 are done.
	pieces := fakePieces{taken: set(seq(10, 30)...)}
	plan := func(self byte, at time.Duration, pl *Planner) []int {
		var ms []Member
		for _, b := range []byte{1, 2, 3} {
			if b != self {
				ms = append(ms, Member{ID: id(b), Outstanding: map[bool]int{true: 1}[b != 1]})
			}
		}
		return pl.Plan(View{Now: t0.Add(at), Members: ms, Pieces: pieces})
	}
	heir, other := New(Config{}, id(2), 30, seq(0, 30), t0), New(Config{}, id(3), 30, seq(0, 30), t0)
	tests := []struct {
		name      string
		at        time.Duration
		heir, oth []int
	}{
		// Takers walk the block from its end, each leaving a different number of pieces.
		{"not idle yet: both take from its end, one piece apart", 0, []int{8}, []int{9}},
		{"idle: only the heir takes, from the end", 1500 * time.Millisecond, []int{9}, nil},
		{"orphan: everybody takes again", 3500 * time.Millisecond, []int{8}, []int{9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := plan(2, tc.at, heir); !slices.Equal(got, tc.heir) {
				t.Errorf("heir's Plan = %v, want %v", got, tc.heir)
			}
			if got := plan(3, tc.at, other); !slices.Equal(got, tc.oth) {
				t.Errorf("other's Plan = %v, want %v", got, tc.oth)
			}
		})
	}
}

// A short PeerWait (the .zsync's swarm has one) gives way to ReachWait while a tracker reports
// a seeder that is not connected yet, or known peers are still connecting.
func TestGateReachWait(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	cfg := Config{PeerWait: 500 * time.Millisecond}
	// One of five known peers connected, settled: ready once nothing changed for ConnectGrace.
	some := GateView{Connected: 1, Known: 5, Announced: true, Settled: true}
	seederAway := some
	seederAway.SeederAway = true
	at0 := func(v GateView) GateView { v.Now = t0; return v }
	atD := func(v GateView, d time.Duration) GateView { v.Now = at(d); return v }
	tests := []struct {
		name  string
		views []GateView
		want  bool
	}{
		{"alone: the short PeerWait ends the wait", []GateView{{Now: at(500 * time.Millisecond), Announced: true, Settled: true, Alone: true}}, true},
		{"the tracker has not answered: PeerWait does not end the wait", []GateView{{Now: at(500 * time.Millisecond), Settled: true, Alone: true}}, false},
		{"the tracker has not answered: ReachWait ends the wait", []GateView{{Now: at(2 * time.Second), Settled: true, Alone: true}}, true},
		{"known peers connecting: PeerWait does not end the wait", []GateView{at0(some), atD(some, 500*time.Millisecond)}, false},
		{"known peers quiet for ConnectGrace: go without them", []GateView{at0(some), atD(some, time.Second)}, true},
		{"a seeder reported: quiet does not end the wait", []GateView{at0(seederAway), atD(seederAway, time.Second)}, false},
		{"a seeder reported: just before ReachWait", []GateView{at0(seederAway), atD(seederAway, 2*time.Second-1)}, false},
		{"a seeder reported: ReachWait ends the wait", []GateView{at0(seederAway), atD(seederAway, 2*time.Second)}, true},
	}
	for _, tc := range tests {
		g := New(cfg, id(1), 1, nil, t0).Gate()
		var open bool
		for _, v := range tc.views {
			open, _ = g.Open(v)
		}
		if open != tc.want {
			t.Errorf("%s: Open = %v, want %v", tc.name, open, tc.want)
		}
	}
	// Known peers still connecting, one more every 400 ms: never quiet for ConnectGrace, so
	// only ReachWait opens the gate.
	g := New(cfg, id(1), 1, nil, t0).Gate()
	for i, want := range []bool{false, false, false, false, false, true} {
		now := at(time.Duration(i) * 400 * time.Millisecond)
		v := GateView{Now: now, Connected: i + 1, Known: 10, Announced: true, Settled: true}
		if open, _ := g.Open(v); open != want {
			t.Errorf("dialing, at %s with %d of 10 connected: Open = %v, want %v", now.Sub(t0), i+1, open, want)
		}
	}
}

func TestGate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ready := GateView{Connected: 2, Known: 2, AllKnownConnected: true, Announced: true, Settled: true}
	tests := []struct {
		name  string
		views []GateView // one call each; the last one's answer counts
		want  bool
	}{
		{"everybody connected and settled", []GateView{ready}, true},
		{"not settled", []GateView{{Connected: 2, Known: 2, AllKnownConnected: true, Announced: true}}, false},
		{"not announced", []GateView{{Connected: 2, Known: 2, AllKnownConnected: true, Settled: true}}, false},
		{"alone with a tracker waits", []GateView{{Announced: true, Settled: true, Alone: true}}, false},
		{"PeerWait ends the wait", []GateView{{Now: at(2 * time.Second), Alone: true}}, true},
		{"a known peer missing", []GateView{{Connected: 1, Known: 2, Announced: true, Settled: true}}, false},
		{"a known peer missing while nothing changed for ConnectGrace", []GateView{
			{Now: at(0), Connected: 1, Known: 2, Announced: true, Settled: true},
			{Now: at(time.Second), Connected: 1, Known: 2, Announced: true, Settled: true}}, true},
		{"a change restarts ConnectGrace", []GateView{
			{Now: at(0), Connected: 1, Known: 3, Announced: true, Settled: true},
			{Now: at(800 * time.Millisecond), Connected: 1, Known: 2, Announced: true, Settled: true},
			{Now: at(1200 * time.Millisecond), Connected: 1, Known: 2, Announced: true, Settled: true}}, false},
		{"once open, open", []GateView{ready, {}}, true},
		{"a Role: alone, open once announced and settled", []GateView{{Announced: true, Settled: true, Alone: true, Role: true}}, true},
		{"a Role: known peers not connected", []GateView{{Connected: 1, Known: 40, Announced: true, Settled: true, Role: true}}, true},
		{"a Role: connected peers not settled", []GateView{{Connected: 1, Known: 1, AllKnownConnected: true, Announced: true, Role: true}}, false},
		{"a Role: not announced", []GateView{{Settled: true, Alone: true, Role: true}}, false},
		{"a seeder reported, none connected", []GateView{{Connected: 2, Known: 2, AllKnownConnected: true, Announced: true, Settled: true, SeederAway: true}}, false},
		{"a seeder reported, with a Role", []GateView{{Announced: true, Settled: true, Role: true, SeederAway: true}}, false},
		{"asking a stock tracker for more peers", []GateView{{Connected: 2, Known: 2, AllKnownConnected: true, Announced: true, Settled: true, Asking: true}}, false},
		{"asking: PeerWait ends the wait", []GateView{{Now: at(2 * time.Second), Connected: 2, Known: 2, AllKnownConnected: true, Announced: true, Settled: true, Asking: true}}, true},
		{"a seeder connects", []GateView{
			{Now: at(0), Connected: 2, Known: 2, AllKnownConnected: true, Announced: true, Settled: true, SeederAway: true},
			{Now: at(100 * time.Millisecond), Connected: 2, Known: 2, AllKnownConnected: true, Announced: true, Settled: true}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := New(Config{}, id(1), 1, nil, t0).Gate()
			var open bool
			for _, v := range tc.views {
				if v.Now.IsZero() {
					v.Now = t0
				}
				open, _ = g.Open(v)
			}
			if open != tc.want {
				t.Errorf("Open = %v, want %v", open, tc.want)
			}
		})
	}
}

// A planner's members change between rounds: each round cuts the blocks of its own members.
func TestPlanMembersChange(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pl := New(Config{}, id(5), 20, seq(0, 20), t0)
	rounds := []struct {
		members []PeerID
		want    []int
	}{
		{[]PeerID{id(9)}, []int{0, 1}},            // first of two
		{[]PeerID{id(1)}, []int{10, 11}},          // second of two
		{[]PeerID{id(1)}, []int{10, 11}},          // the same again
		{[]PeerID{id(1), id(7), id(9)}, []int{5}}, // second of four: one at a time
		{[]PeerID{id(9), id(7), id(1)}, []int{5}}, // the same members in another order
		{nil, []int{0, 1, 2, 3}},                  // alone
	}
	for i, r := range rounds {
		var ms []Member
		for _, m := range r.members {
			ms = append(ms, Member{ID: m, Outstanding: 1})
		}
		if got := pl.Plan(View{Now: t0, Members: ms, Pieces: fakePieces{}}); !slices.Equal(got, r.want) {
			t.Errorf("round %d with %d members: Plan = %v, want %v", i, len(ms), got, r.want)
		}
	}
}
