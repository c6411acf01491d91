package bt

import (
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/originplan"
	pkgtracker "github.com/pkgsync/pkgsync/tracker"
)

// roleSwarm is nodes on their own loopback addresses with a package of 4 MiB whose torrent
// names pkgsync's tracker, started with the given origin fetcher slots; each node has its own
// counting origin.
type roleSwarm struct {
	fx      *fixture
	tors    []*Torrent
	parts   []*os.File
	origins []origin
}

func startRoleSwarm(t *testing.T, nodes, fetchers int, seed uint64) *roleSwarm {
	return startRoleSwarmWith(t, nodes, fetchers, seed, nil)
}

// startRoleSwarmWith is startRoleSwarm with mod applied to every node's Config.
func startRoleSwarmWith(t *testing.T, nodes, fetchers int, seed uint64, mod func(*Config)) *roleSwarm {
	return startRoleSwarmSlow(t, nodes, fetchers, seed, 0, mod)
}

// startRoleSwarmSlow is startRoleSwarmWith with every origin fetch taking delay.
func startRoleSwarmSlow(t *testing.T, nodes, fetchers int, seed uint64, delay time.Duration, mod func(*Config)) *roleSwarm {
	t.Helper()
	tr := pkgtracker.New(pkgtracker.Options{OriginFetchers: fetchers})
	t.Cleanup(tr.Close)
	srv := httptest.NewServer(tr.Handler())
	t.Cleanup(srv.Close)
	rs := &roleSwarm{fx: newFixture(t, 4<<20, seed, srv.URL+"/announce"), origins: make([]origin, nodes)}
	for i := range rs.origins {
		rs.origins[i].delay = delay
	}
	for i := range nodes {
		n := startNode(t, loopback(t, i), mod)
		part := rs.fx.partFile(t, nil)
		rs.parts = append(rs.parts, part)
		rs.tors = append(rs.tors, addPkg(t, n, Package{MetaInfo: rs.fx.mi, Data: part, Origin: rs.origins[i].fetch(rs.fx, part, false)}))
	}
	return rs
}

// TestTrackerRoles runs four nodes that discover each other through pkgsync's own tracker with
// one origin fetcher slot (`pkgsync tracker --origin-fetchers 1`): every node must hold the role
// the tracker handed out, the same single fetcher named for all, the fetcher being one of them
// and holding slot 0 and the others none, and every node must end with the package.
func TestTrackerRoles(t *testing.T) {
	rs := startRoleSwarm(t, 4, 1, 19)
	downloadAll(t, rs.tors)
	fx, tors, parts, origins := rs.fx, rs.tors, rs.parts, rs.origins

	var fetchers []originplan.PeerID // the fetchers each node was told, all the same
	slot0 := -1                      // the node holding slot 0
	for i, tor := range tors {
		checkData(t, parts[i], fx.src)
		tor.mu.Lock()
		role := tor.role
		tor.mu.Unlock()
		self := tor.node.cl.PeerID()
		if role == nil {
			t.Fatalf("node %d holds no role; the tracker hands one to every announcer", i)
		}
		t.Logf("node %d (%x): slot %d of %x; %d bytes from the origin", i, self, role.Slot, role.Fetchers, origins[i].bytes.Load())
		switch {
		case fetchers == nil:
			fetchers = role.Fetchers
		case !slices.Equal(role.Fetchers, fetchers):
			t.Errorf("node %d was told fetchers %x, another %x", i, role.Fetchers, fetchers)
		}
		if role.Fetcher() {
			if slot0 >= 0 || role.Slot != 0 || role.Fetchers[0] != self {
				t.Errorf("node %d: slot %d of %x; node %d holds slot 0 too", i, role.Slot, role.Fetchers, slot0)
			}
			slot0 = i
		} else if role.Slot != -1 {
			t.Errorf("node %d: slot %d, want -1 when not a fetcher", i, role.Slot)
		}
	}
	if len(fetchers) != 1 || slot0 < 0 {
		t.Fatalf("fetchers %x, fetcher node %d: want one slot, held by one of the nodes", fetchers, slot0)
	}
}

// TestFetcherOnOriginHost: a node that shares the origin's address (runners on one host) and
// has completed is not taken for a seeder beside the web server when the tracker names it an
// origin fetcher. Node A, alone, is the one fetcher and fetches everything; node B then starts
// on the same address as A and the origin, and must take the package from A, asking the origin
// for nothing. Taken for the origin's seeder by its address, A would be hidden from B, and B
// would fetch the whole package from the origin again.
func TestFetcherOnOriginHost(t *testing.T) {
	const host = "127.0.5.1"
	needLoopbacks(t, host)
	tr := pkgtracker.New(pkgtracker.Options{OriginFetchers: 1})
	defer tr.Close()
	srv := httptest.NewServer(tr.Handler())
	defer srv.Close()
	fx := newFixture(t, 2<<20, 23, srv.URL+"/announce")
	originAddrs := []netip.Addr{netip.MustParseAddr(host)}

	var oa, ob origin
	partA, partB := fx.partFile(t, nil), fx.partFile(t, nil)
	a := addPkg(t, startNode(t, host, nil), Package{MetaInfo: fx.mi, Data: partA,
		Origin: oa.fetch(fx, partA, false), OriginAddrs: originAddrs})
	download(t, a)
	checkData(t, partA, fx.src)
	// A's completed announce first: answered after B's, it would list B, and A would dial B
	// before B knows its role (a window this test is not about).
	waitFor(t, "A's completed announce", func() bool {
		ps := tr.Peers(fx.mi.HashInfoBytes())
		return len(ps) == 1 && ps[0].Left == 0
	})
	b := addPkg(t, startNode(t, host, nil), Package{MetaInfo: fx.mi, Data: partB,
		Origin: ob.fetch(fx, partB, false), OriginAddrs: originAddrs})
	download(t, b)
	checkData(t, partB, fx.src)

	b.mu.Lock()
	role := b.role
	b.mu.Unlock()
	idA := a.node.cl.PeerID()
	if role == nil || role.Fetcher() || !slices.Equal(role.Fetchers, []originplan.PeerID{idA}) {
		t.Fatalf("B's role %+v; want A (%x) named the one fetcher", role, idA)
	}
	f := int64(len(fx.src))
	if got := oa.bytes.Load(); got != f {
		t.Errorf("A, alone, fetched %d bytes from the origin, want the package (%d)", got, f)
	}
	if got := ob.bytes.Load(); got != 0 {
		t.Errorf("B fetched %d bytes from the origin, want 0: A was taken for the origin's seeder", got)
	}
	// A counts a fast-path piece once its send returned, which may come after B verified it.
	waitFor(t, "A to count the package as uploaded", func() bool { return a.Stats().BytesUploaded >= f })
}

// TestOnlyFetchersFetch runs four nodes under a tracker with two origin fetcher slots: the two
// fetchers share the origin work between them, the two others ask the origin for nothing while
// their peers bring pieces, and the origin sends the package about once in all.
func TestOnlyFetchersFetch(t *testing.T) {
	rs := startRoleSwarm(t, 4, 2, 23)
	downloadAll(t, rs.tors)
	fx, tors, origins := rs.fx, rs.tors, rs.origins
	var total int64
	fetchers := 0
	for i, tor := range tors {
		tor.mu.Lock()
		role := tor.role
		tor.mu.Unlock()
		got := origins[i].bytes.Load()
		total += got
		if role == nil {
			t.Fatalf("node %d holds no role", i)
		}
		if role.Fetcher() {
			fetchers++
			continue
		}
		if got != 0 {
			t.Errorf("node %d is not a fetcher and took %d bytes from the origin", i, got)
		}
	}
	f := int64(len(fx.src))
	t.Logf("%d fetchers; the origin sent %d bytes (%.2f F)", fetchers, total, float64(total)/float64(f))
	if fetchers != 2 {
		t.Errorf("%d fetchers, want the tracker's 2", fetchers)
	}
	if total < f || float64(total) > 1.5*float64(f) {
		t.Errorf("the origin sent %d bytes for a package of %d: want about once", total, f)
	}
}

// TestFewerNodesThanSlots runs four nodes under a tracker with 16 origin fetcher slots, so that
// 12 slots stay vacant and every fetcher inherits some of their blocks (originplan.VacantHeirs),
// with an origin that answers at once on loopback: the origin must send the package about
// once. When every fetcher took from every vacant block at once, they converged on the same
// last open pieces before their claims arrived, and the origin sent up to 2.4 F here.
func TestFewerNodesThanSlots(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		rs := startRoleSwarm(t, 4, 16, seed)
		downloadAll(t, rs.tors)
		var total int64
		for i := range rs.tors {
			checkData(t, rs.parts[i], rs.fx.src)
			total += rs.origins[i].bytes.Load()
		}
		f := int64(len(rs.fx.src))
		t.Logf("seed %d: the origin sent %d bytes (%.2f F)", seed, total, float64(total)/float64(f))
		if total < f || float64(total) > 1.25*float64(f) {
			t.Errorf("seed %d: the origin sent %d bytes for a package of %d: want about once", seed, total, f)
		}
	}
}

// TestElectedFetchers runs six nodes under a tracker that hands out no roles (a stock tracker's
// part), electing three fetchers among themselves: every node must end with the package; the
// nodes that knew the whole swarm as their gates opened must have elected the same fetchers, of
// those whose weight reaches the floor of a swarm of six (at most three), and the others ask the
// origin for nothing while their peers bring pieces; and the origin sends the package about
// once.
//
// The nodes start one after another, so their gates open up to a few hundred milliseconds
// apart on a loaded machine (all at PeerWait: a swarm this small keeps asking the tracker
// until then), and on loopback the first fetchers can hold the whole package by the time the
// last gate opens. A node that is complete is rightly no candidate, so the last node then
// listed the others only (its election dropped from 5 members to 4 as its gate opened, its
// peers holding all 16 pieces): 3 of 60 runs failed that way, two test processes at once,
// and CI once. The origin's fetches take 200 ms here, so that no node has the package before
// every gate is open: 120 of 120 runs passed the same way.
func TestElectedFetchers(t *testing.T) {
	const nodes, fetchers = 6, 3
	rs := startRoleSwarmSlow(t, nodes, 0, 29, 200*time.Millisecond, func(c *Config) { c.electFetchers = fetchers })
	// The weights are random: in one run of (1/2)^6, none reaches the floor, nobody is elected,
	// and the nodes take to the origin once stalled, by the rules without a Role.
	var none []int
	downloadAll(t, rs.tors)
	var first []originplan.Candidate // the list of the first node whose gate opened
	var total int64
	for i, tor := range rs.tors {
		checkData(t, rs.parts[i], rs.fx.src)
		tor.mu.Lock()
		h, role := tor.elected, tor.role
		tor.mu.Unlock()
		if role != nil {
			t.Fatalf("node %d holds a tracker's role, from a tracker that hands out none", i)
		}
		got := rs.origins[i].bytes.Load()
		total += got
		self := tor.node.cl.PeerID()
		t.Logf("node %d (%x): gate opened with a swarm of %d, %d listed; %d bytes from the origin", i, self[16:], h.Swarm, len(h.List), got)
		if h.Swarm == 0 { // its peers brought everything before its gate opened
			if got != 0 {
				t.Errorf("node %d took %d bytes from the origin with its gate closed", i, got)
			}
			continue
		}
		var list []originplan.Candidate
		for _, c := range h.List {
			list = append(list, originplan.Candidate{ID: c.ID}) // hops differ from node to node
		}
		if len(list) == 0 {
			none = append(none, i)
			continue
		}
		if len(list) > fetchers {
			t.Errorf("node %d elected %d fetchers, want at most %d", i, len(list), fetchers)
		}
		if h.Swarm == nodes { // it knew the whole swarm
			if first == nil {
				first = list
			} else if !slices.Equal(list, first) {
				t.Errorf("node %d elected %x, another %x", i, list, first)
			}
			if !slices.Contains(list, originplan.Candidate{ID: self}) && got != 0 {
				t.Errorf("node %d is not elected and took %d bytes from the origin", i, got)
			}
		}
	}
	if len(none) > 0 && first != nil {
		t.Errorf("nodes %v elected nobody, others %x", none, first)
	}
	f := int64(len(rs.fx.src))
	t.Logf("the origin sent %d bytes (%.2f F)", total, float64(total)/float64(f))
	if total < f || float64(total) > 1.25*float64(f) {
		t.Errorf("the origin sent %d bytes for a package of %d: want about once", total, f)
	}
}
