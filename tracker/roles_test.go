package tracker

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/topology"
)

// roleOf reads the "pkgsync" key of an announce answer: the asker's slot and, for each slot, the
// name (among names) of the peer whose peer_id holds it, "" for a free one. ok is false when the
// answer has no such key.
func roleOf(t *testing.T, d map[string]any, names []string) (slot int, holders []string, ok bool) {
	t.Helper()
	raw, present := d["pkgsync"]
	if !present {
		return 0, nil, false
	}
	m, isDict := raw.(map[string]any)
	fetchers, isStr := m["fetchers"].(string)
	s, isInt := m["slot"].(int64)
	if !isDict || !isStr || !isInt || len(fetchers)%20 != 0 || len(m) != 2 {
		t.Fatalf("pkgsync key %#v: want a dictionary of fetchers (20-byte peer IDs) and slot (an integer)", raw)
	}
	for b := fetchers; b != ""; b = b[20:] {
		name := ""
		if b[:20] != string(make([]byte, 20)) {
			name = "?" + fmt.Sprintf("%x", b[:20])
			for _, n := range names {
				if id := peerIDOf(n); string(id[:]) == b[:20] {
					name = n
				}
			}
		}
		holders = append(holders, name)
	}
	return int(s), holders, true
}

// TestOriginRoles walks one swarm with two fetcher slots through the life of its slots: handed
// first come first served to announcers that need data, kept by a holder that completes, freed
// by stopped, by silence past the peer TTL and by a restart at the same address, and inherited
// by the next announcer that needs data. Every answer names the same holders.
func TestOriginRoles(t *testing.T) {
	type step struct {
		advance  time.Duration
		who      string // the announcer, at 10.0.0.<its digit>:6881
		event    string
		left     int
		nofetch  bool // pkgsync_nofetch=1
		wantSlot int
		want     []string // holder of each slot, "" for free
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first come first served", []step{
			{who: "n1", left: 5, wantSlot: 0, want: []string{"n1", ""}},
			{who: "n2", left: 5, wantSlot: 1, want: []string{"n1", "n2"}},
			{who: "n3", left: 5, wantSlot: -1, want: []string{"n1", "n2"}},
			{who: "n1", left: 5, wantSlot: 0, want: []string{"n1", "n2"}},
		}},
		{"a seeder gets none, a holder that completes keeps its slot", []step{
			{who: "n1", left: 0, wantSlot: -1, want: []string{"", ""}},
			{who: "n2", left: 5, wantSlot: 0, want: []string{"n2", ""}},
			{who: "n2", left: 0, event: "completed", wantSlot: 0, want: []string{"n2", ""}},
		}},
		{"stopped frees the slot for the next that needs data", []step{
			{who: "n1", left: 5, wantSlot: 0, want: []string{"n1", ""}},
			{who: "n2", left: 5, wantSlot: 1, want: []string{"n1", "n2"}},
			{who: "n1", left: 5, event: "stopped", wantSlot: -1, want: []string{"", "n2"}},
			{who: "n3", left: 5, wantSlot: 0, want: []string{"n3", "n2"}},
		}},
		{"a holder silent for the peer TTL loses its slot with its entry", []step{
			{who: "n1", left: 5, wantSlot: 0, want: []string{"n1", ""}},
			{advance: 20 * time.Second, who: "n2", left: 5, wantSlot: 1, want: []string{"n1", "n2"}},
			{advance: 10*time.Second - time.Nanosecond, who: "n3", left: 5, wantSlot: -1, want: []string{"n1", "n2"}},
			{advance: time.Nanosecond, who: "n3", left: 5, wantSlot: 0, want: []string{"n3", "n2"}},
		}},
		{"an announcer that will not fetch gets none, and a holder that says so gives its slot back", []step{
			{who: "n1", left: 5, nofetch: true, wantSlot: -1, want: []string{"", ""}},
			{who: "n2", left: 5, wantSlot: 0, want: []string{"n2", ""}},
			{who: "n3", left: 5, wantSlot: 1, want: []string{"n2", "n3"}},
			{who: "n2", left: 5, nofetch: true, wantSlot: -1, want: []string{"", "n3"}},
			{who: "n1", left: 5, wantSlot: 0, want: []string{"n1", "n3"}},
		}},
		{"a restart at the same address under a new peer ID frees the old slot", []step{
			{who: "n1", left: 5, wantSlot: 0, want: []string{"n1", ""}},
			{who: "n2", left: 5, wantSlot: 1, want: []string{"n1", "n2"}},
			{who: "n1-again", left: 5, wantSlot: 0, want: []string{"n1-again", "n2"}},
		}},
	}
	names := []string{"n1", "n2", "n3", "n1-again"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{OriginFetchers: 2, Interval: 10 * time.Second}) // peer TTL 30 s
			ih := ihOf(tt.name)
			for i, s := range tt.steps {
				e.clock.Advance(s.advance)
				ip := "10.0.0." + s.who[1:2]
				kv := []string{"ip", ip, "left", strconv.Itoa(s.left), "event", s.event}
				if s.nofetch {
					kv = append(kv, NoFetchParam, "1")
				}
				q := announceQuery(ih, s.who, 6881, kv...)
				slot, holders, ok := roleOf(t, e.rawGet(t, "/announce", q), names)
				if !ok {
					t.Fatalf("step %d (%s): answer without the pkgsync key", i, s.who)
				}
				if slot != s.wantSlot || !slices.Equal(holders, s.want) {
					t.Errorf("step %d (%s %s left=%d): slot %d, fetchers %q; want slot %d, fetchers %q",
						i, s.who, s.event, s.left, slot, holders, s.wantSlot, s.want)
				}
			}
		})
	}
}

// TestNoRolesByDefault: without OriginFetchers the answers are a stock tracker's, compact or not.
func TestNoRolesByDefault(t *testing.T) {
	e := newEnv(t, Options{})
	ih := ihOf("stock")
	for _, compact := range []string{"1", "0"} {
		d := e.rawGet(t, "/announce", announceQuery(ih, "a", 1, "ip", "10.0.0.1", "compact", compact))
		if _, ok := d["pkgsync"]; ok {
			t.Errorf("compact=%s: answer has a pkgsync key without OriginFetchers: %v", compact, d)
		}
	}
}

// TestRoleInListAnswer: a compact=0 answer carries the role as a compact one does.
func TestRoleInListAnswer(t *testing.T) {
	e := newEnv(t, Options{OriginFetchers: 1})
	ih := ihOf("list")
	e.rawGet(t, "/announce", announceQuery(ih, "a", 1, "ip", "10.0.0.1"))
	d := e.rawGet(t, "/announce", announceQuery(ih, "b", 2, "ip", "10.0.0.2", "compact", "0"))
	slot, holders, ok := roleOf(t, d, []string{"a", "b"})
	if !ok || slot != -1 || !slices.Equal(holders, []string{"a"}) {
		t.Errorf("compact=0 answer: role (%v) slot %d fetchers %q, want slot -1 fetchers [a]", ok, slot, holders)
	}
}

// TestFetchersFirst: an origin fetcher's peer list starts with the other fetchers, though
// ranking by closeness would put them last (another data center) and the list is capped below
// the swarm's size; a node that fetches nothing gets the plain ranking.
func TestFetchersFirst(t *testing.T) {
	topo, err := topology.Parse(strings.NewReader("10.1.0.0/16 dc1\n10.2.0.0/16 dc2\n"), "topo.txt")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{OriginFetchers: 3, Topology: topo, MaxPeers: 5})
	ih := ihOf("first")
	// The fetchers, in dc2, announce first.
	for i, ip := range []string{"10.2.0.1", "10.2.0.2"} {
		e.rawGet(t, "/announce", announceQuery(ih, "far"+strconv.Itoa(i), 6881, "ip", ip))
	}
	// Then ten seeders in dc1.
	for i := range 10 {
		e.rawGet(t, "/announce", announceQuery(ih, "near"+strconv.Itoa(i), 6881, "ip", fmt.Sprintf("10.1.0.%d", 10+i), "left", "0"))
	}
	listOf := func(d map[string]any) []string {
		var out []string
		for b := []byte(d["peers"].(string)); len(b) >= 6; b = b[6:] {
			out = append(out, netip.AddrFrom4([4]byte(b[:4])).String())
		}
		return out
	}
	// The third slot goes to a node of dc1 that needs data.
	d := e.rawGet(t, "/announce", announceQuery(ih, "fetcher", 6881, "ip", "10.1.0.1"))
	got := listOf(d)
	if slot, _, _ := roleOf(t, d, nil); slot != 2 || len(got) != 5 || !slices.Equal(sorted(got[:2]), []string{"10.2.0.1", "10.2.0.2"}) {
		t.Errorf("fetcher (slot %d): peers %v, want the 2 other fetchers (10.2.0.1, 10.2.0.2) first, 5 in all", slot, got)
	}
	for _, a := range got[2:] {
		if !strings.HasPrefix(a, "10.1.") {
			t.Errorf("fetcher: after the fetchers, peer %s is not of its own site", a)
		}
	}
	// far0 leaves, and a node of dc1 inherits its slot: the fetcher's list now starts with the
	// new holder and far1, and a peer that held no slot (far0's stand-in at its address, with
	// another peer ID) is not put first.
	e.rawGet(t, "/announce", announceQuery(ih, "far0", 6881, "ip", "10.2.0.1", "event", "stopped"))
	e.rawGet(t, "/announce", announceQuery(ih, "heir", 6881, "ip", "10.1.0.50"))
	e.rawGet(t, "/announce", announceQuery(ih, "stand-in", 6881, "ip", "10.2.0.1", "left", "0"))
	d = e.rawGet(t, "/announce", announceQuery(ih, "fetcher", 6881, "ip", "10.1.0.1"))
	if got := listOf(d); !slices.Equal(sorted(got[:2]), []string{"10.1.0.50", "10.2.0.2"}) || slices.Contains(got, "10.2.0.1") {
		t.Errorf("fetcher after far0 left: peers %v, want the heir 10.1.0.50 and 10.2.0.2 first, and not 10.2.0.1", got)
	}
	// A node that fetches nothing: its own site only (five seeders of dc1 fill the list).
	d = e.rawGet(t, "/announce", announceQuery(ih, "other", 6881, "ip", "10.1.0.2"))
	if slot, _, _ := roleOf(t, d, nil); slot != -1 {
		t.Fatalf("a fourth announcer got slot %d of 3", slot)
	}
	for _, a := range listOf(d) {
		if !strings.HasPrefix(a, "10.1.") {
			t.Errorf("a node that fetches nothing got %s of another site in a list of 5 where its own site has 11: %v", a, listOf(d))
		}
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestFetchersCappedByMaxPeers: a swarm has no more fetcher slots than one peer list holds,
// since the fetchers are listed first to each other.
func TestFetchersCappedByMaxPeers(t *testing.T) {
	e := newEnv(t, Options{OriginFetchers: 128, MaxPeers: 3})
	ih := ihOf("capped")
	d := e.rawGet(t, "/announce", announceQuery(ih, "a", 1, "ip", "10.0.0.1"))
	slot, holders, ok := roleOf(t, d, []string{"a"})
	if !ok || slot != 0 || len(holders) != 3 {
		t.Errorf("role (%v) slot %d, %d slots; want slot 0 of 3 (MaxPeers)", ok, slot, len(holders))
	}
}
