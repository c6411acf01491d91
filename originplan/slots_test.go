package originplan

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestSlots(t *testing.T) {
	t0 := time.Unix(1000, 0)
	id := func(b byte) PeerID { return PeerID{b} }
	type step struct {
		who          byte
		at           time.Duration
		needs, stops bool
		wantSlot     int
		wantFetchers []byte // first byte of each slot's holder, 0 for free
	}
	tests := []struct {
		name  string
		n     int
		steps []step
	}{
		{"first come first served", 2, []step{
			{who: 1, needs: true, wantSlot: 0, wantFetchers: []byte{1, 0}},
			{who: 2, needs: true, wantSlot: 1, wantFetchers: []byte{1, 2}},
			{who: 3, needs: true, wantSlot: -1, wantFetchers: []byte{1, 2}},
			{who: 1, at: time.Second, needs: true, wantSlot: 0, wantFetchers: []byte{1, 2}},
		}},
		{"a complete node gets no slot, a holder that completes keeps its own", 1, []step{
			{who: 1, needs: false, wantSlot: -1, wantFetchers: []byte{0}},
			{who: 2, needs: true, wantSlot: 0, wantFetchers: []byte{2}},
			{who: 2, at: time.Second, needs: false, wantSlot: 0, wantFetchers: []byte{2}},
		}},
		{"stopped frees the slot for the next that needs data", 2, []step{
			{who: 1, needs: true, wantSlot: 0, wantFetchers: []byte{1, 0}},
			{who: 2, needs: true, wantSlot: 1, wantFetchers: []byte{1, 2}},
			{who: 1, at: time.Second, stops: true, wantSlot: -1, wantFetchers: []byte{0, 2}},
			{who: 3, at: 2 * time.Second, needs: true, wantSlot: 0, wantFetchers: []byte{3, 2}},
		}},
		{"a holder silent past the TTL loses its slot", 1, []step{
			{who: 1, needs: true, wantSlot: 0, wantFetchers: []byte{1}},
			{who: 2, at: 30 * time.Second, needs: true, wantSlot: -1, wantFetchers: []byte{1}},
			{who: 2, at: 61 * time.Second, needs: true, wantSlot: 0, wantFetchers: []byte{2}},
			{who: 1, at: 62 * time.Second, needs: true, wantSlot: -1, wantFetchers: []byte{2}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSlots(tt.n, time.Minute)
			for i, st := range tt.steps {
				r := s.Announce(id(st.who), t0.Add(st.at), st.needs, st.stops)
				if r.Slot != st.wantSlot {
					t.Errorf("step %d: node %d got slot %d, want %d", i, st.who, r.Slot, st.wantSlot)
				}
				if r.Fetcher() != (st.wantSlot >= 0) {
					t.Errorf("step %d: Fetcher() = %v with slot %d", i, r.Fetcher(), r.Slot)
				}
				var got []byte
				for _, f := range r.Fetchers {
					got = append(got, f[0])
				}
				if string(got) != string(st.wantFetchers) {
					t.Errorf("step %d: fetchers %v, want %v", i, got, st.wantFetchers)
				}
				if held := s.Holds(id(st.who), t0.Add(st.at)); held != (st.wantSlot >= 0) {
					t.Errorf("step %d: Holds = %v with slot %d", i, held, r.Slot)
				}
			}
		})
	}
}

func TestSlotsDefault(t *testing.T) {
	if got := len(NewSlots(0, 0).Fetchers(time.Time{})); got != DefaultFetchers {
		t.Fatalf("NewSlots(0) has %d slots, want %d", got, DefaultFetchers)
	}
}

func TestRoleWithHolders(t *testing.T) {
	a, b, c := id(1), id(2), id(3)
	tests := []struct {
		name string
		role Role
		held []SlotHolder
		want []PeerID
	}{
		{name: "nothing said", role: Role{Slot: 0, Fetchers: []PeerID{a, {}, {}}}, want: []PeerID{a, {}, {}}},
		{name: "a newcomer fills a vacant slot", role: Role{Slot: 0, Fetchers: []PeerID{a, {}, {}}},
			held: []SlotHolder{{Slot: 2, ID: c}}, want: []PeerID{a, {}, c}},
		{name: "a live holder replaces a silent one", role: Role{Slot: 0, Fetchers: []PeerID{a, b, {}}},
			held: []SlotHolder{{Slot: 1, ID: c}}, want: []PeerID{a, c, {}}},
		{name: "nobody takes this node's own slot", role: Role{Slot: 0, Fetchers: []PeerID{a, {}}},
			held: []SlotHolder{{Slot: 0, ID: b}}, want: []PeerID{a, {}}},
		{name: "slots outside the list are ignored", role: Role{Slot: 0, Fetchers: []PeerID{a, {}}},
			held: []SlotHolder{{Slot: 2, ID: b}, {Slot: -1, ID: c}}, want: []PeerID{a, {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.role.Fetchers)
			got := tc.role.WithHolders(tc.held)
			if !slices.Equal(got.Fetchers, tc.want) || got.Slot != tc.role.Slot {
				t.Errorf("WithHolders = slot %d %x, want slot %d %x", got.Slot, got.Fetchers, tc.role.Slot, tc.want)
			}
			if !slices.Equal(tc.role.Fetchers, before) {
				t.Errorf("the role's own list changed to %x", tc.role.Fetchers)
			}
		})
	}
}

// TestSlotsListCache drives Slots with random announces over time and checks every answer's
// list against one worked out afresh from the holders: the shared list must change whenever a
// holder comes, goes, lapses or comes back.
func TestSlotsListCache(t *testing.T) {
	const ttl = 10 * time.Second
	fresh := func(s *Slots, now time.Time) []PeerID {
		out := make([]PeerID, len(s.holders))
		for k, h := range s.holders {
			if h.held && now.Sub(h.lastSeen) <= ttl {
				out[k] = h.id
			}
		}
		return out
	}
	r := rand.New(rand.NewPCG(1, 2))
	s := NewSlots(4, ttl)
	now := time.Unix(1000, 0)
	for i := range 5000 {
		now = now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
		id := PeerID{byte(1 + r.IntN(8))}
		role := s.Announce(id, now, r.IntN(4) > 0, r.IntN(10) == 0)
		if want := fresh(s, now); !slices.Equal(role.Fetchers, want) {
			t.Fatalf("announce %d at %v: list %x, want %x", i, now.Sub(time.Unix(1000, 0)), role.Fetchers, want)
		}
		if later := now.Add(time.Duration(r.IntN(15000)) * time.Millisecond); !slices.Equal(s.Fetchers(later), fresh(s, later)) {
			t.Fatalf("after announce %d, at %v: list %x, want %x", i, later.Sub(time.Unix(1000, 0)), s.Fetchers(later), fresh(s, later))
		}
	}
}
