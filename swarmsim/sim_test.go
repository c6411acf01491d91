package swarmsim

import (
	"container/heap"
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// small is a lab-sized fan-out: 10 Mbit/s nodes and origin, 4 MiB.
func small(name string, nodes int) Scenario {
	return Scenario{Name: name, Nodes: nodes, Size: 4 << 20, NodeRate: 1.25e6, OriginRate: 1.25e6, Seed: 7}
}

// scenarios are small runs covering every feature of the model.
func scenarios() []Scenario {
	var out []Scenario
	add := func(sc Scenario, f func(*Scenario)) {
		f(&sc)
		out = append(out, sc)
	}
	add(small("one node", 1), func(*Scenario) {})
	add(small("fanout 16", 16), func(*Scenario) {})
	add(small("fanout 40, short piece", 40), func(s *Scenario) { s.Size = 4<<20 + 12345 })
	add(small("slow origin", 16), func(s *Scenario) { s.OriginRate = 0.25e6 })
	add(small("delta", 16), func(s *Scenario) { s.Have = 0.8 })
	add(small("two sites, capped link", 24), func(s *Scenario) {
		s.Sites, s.Racks, s.InterSiteRate, s.SiteRule = 2, 3, 2.5e6, true
	})
	add(small("two sites, no site rule", 24), func(s *Scenario) { s.Sites, s.Racks = 2, 3 })
	add(small("racks capped", 30), func(s *Scenario) { s.Racks, s.RackRate = 3, 2.5e6 })
	add(small("partial views, stock tracker", 60), func(s *Scenario) {
		s.Tracker, s.MaxPeers, s.Racks = TrackerStock, 8, 4
	})
	add(small("partial views, pkgsync tracker", 60), func(s *Scenario) { s.MaxPeers, s.Racks = 8, 4 })
	add(small("splay", 20), func(s *Scenario) { s.Splay = 10 * time.Second })
	add(small("churn", 40), func(s *Scenario) { s.Churn, s.Down = 0.2, 2*time.Second })
	return out
}

// lazy is a run whose origin link carries more than lazyFlows flows at once.
func lazy() Scenario {
	sc := small("many origin fetches at once", 400)
	sc.Size, sc.Tracker, sc.MaxPeers, sc.Racks = 1<<20, TrackerStock, 3, 8
	sc.NoElect = true // every node cuts blocks among its few peers: many fetches at once
	return sc
}

func runSim(t *testing.T, sc Scenario) *sim {
	t.Helper()
	s, err := newSim(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.loop(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// Every node completes and receives exactly the bytes it lacked; what was sent was received.
func TestConservation(t *testing.T) {
	for _, sc := range append(scenarios(), lazy()) {
		t.Run(sc.Name, func(t *testing.T) {
			s := runSim(t, sc)
			u := s.missingBytes()
			sent, recv, got := s.originBytes, 0.0, 0.0
			for _, n := range s.nodes {
				if !n.complete || !n.alive {
					t.Fatalf("node %d: complete %v, alive %v", n.idx, n.complete, n.alive)
				}
				if n.gotBytes != u {
					t.Errorf("node %d completed %.0f bytes of pieces, lacked %.0f", n.idx, n.gotBytes, u)
				}
				sent += n.sent
				recv += n.recv
				got += n.gotBytes
			}
			if math.Abs(sent-recv) > 1e-6*recv {
				t.Errorf("sent %.0f bytes, received %.0f", sent, recv)
			}
			if math.Abs(recv-got-s.wasted) > 1e-6*recv {
				t.Errorf("received %.0f bytes: %.0f in completed pieces and %.0f cut short", recv, got, s.wasted)
			}
			if sc.Name == lazy().Name && s.maxFlows <= lazyFlows {
				t.Errorf("the origin link carried at most %d flows: not a lazy link", s.maxFlows)
			}
			// Without churn, only a stalled node cuts transfers short (it takes their pieces
			// to the origin): not in the runs that keep the origin busy.
			if sc.Churn == 0 && sc.Name != lazy().Name && s.wasted != 0 {
				t.Errorf("%.0f bytes cut short without churn", s.wasted)
			}
		})
	}
}

// No run beats the bound, and a lab-sized fan-out comes close to it without the origin
// sending a piece twice.
func TestBound(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			r, err := Run(context.Background(), sc)
			if err != nil {
				t.Fatal(err)
			}
			if r.A == nil || r.Completed != sc.Nodes {
				t.Fatalf("%d of %d nodes completed", r.Completed, sc.Nodes)
			}
			if *r.A < r.B*(1-1e-9) || *r.Efficiency > 1 {
				t.Errorf("A %.3f s beats the bound B %.3f s", *r.A, r.B)
			}
			if r.OriginBytesRatio < 1-1e-9 {
				t.Errorf("the origin sent %.3f of the missing bytes: some piece reached nobody", r.OriginBytesRatio)
			}
			if r.P50 > r.P99 || r.P99 > *r.A+1e-9 {
				t.Errorf("p50 %.3f, p99 %.3f, A %.3f: out of order", r.P50, r.P99, *r.A)
			}
		})
	}
}

func TestSmallFanoutSane(t *testing.T) {
	r, err := Run(context.Background(), small("fanout 16", 16))
	if err != nil {
		t.Fatal(err)
	}
	if *r.Efficiency < 0.7 || r.OriginBytesRatio > 1.1 || r.InterDCBytesRatio != nil {
		t.Errorf("16 nodes, one site: B/A %.3f, origin %.3f F, inter-site %v; want >= 0.7, <= 1.1, none",
			*r.Efficiency, r.OriginBytesRatio, r.InterDCBytesRatio)
	}
	sc := small("two sites", 16)
	sc.Sites, sc.SiteRule = 2, true
	r, err = Run(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	if r.InterDCBytesRatio == nil || *r.InterDCBytesRatio < 1 || *r.InterDCBytesRatio > 1.5 {
		t.Errorf("two sites with the site rule: inter-site %v F; want every piece across about once", r.InterDCBytesRatio)
	}
}

func TestDeterministic(t *testing.T) {
	for _, sc := range append(scenarios()[8:], lazy()) {
		t.Run(sc.Name, func(t *testing.T) {
			var out [2][]byte
			for i := range out {
				r, err := Run(context.Background(), sc)
				if err != nil {
					t.Fatal(err)
				}
				if out[i], err = json.Marshal(r); err != nil {
					t.Fatal(err)
				}
			}
			if string(out[0]) != string(out[1]) {
				t.Errorf("two runs differ:\n%s\n%s", out[0], out[1])
			}
			other := sc
			other.Seed++
			r, err := Run(context.Background(), other)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := json.Marshal(r); string(b) == string(out[0]) {
				t.Errorf("seeds %d and %d gave the same run", sc.Seed, other.Seed)
			}
		})
	}
}

func TestScenarioErrors(t *testing.T) {
	ok := small("ok", 4)
	tests := []struct {
		name string
		f    func(*Scenario)
	}{
		{"no nodes", func(s *Scenario) { s.Nodes = 0 }},
		{"empty package", func(s *Scenario) { s.Size = 0 }},
		{"no rate", func(s *Scenario) { s.NodeRate = 0 }},
		{"too many pieces", func(s *Scenario) { s.PieceSize = 32 }},
		{"too many connections", func(s *Scenario) { s.MaxConns = 300 }},
		{"unknown tracker", func(s *Scenario) { s.Tracker = "udp" }},
		{"churn above 1", func(s *Scenario) { s.Churn = 2 }},
		{"have everything", func(s *Scenario) { s.Have = 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := ok
			tc.f(&sc)
			if _, err := Run(context.Background(), sc); err == nil {
				t.Error("Run accepted the scenario")
			}
		})
	}
}

// With pkgsync's tracker, only the slot holders of originplan.Slots fetch from the origin,
// whatever part of the swarm each node sees, and they fetch each piece about once; a stock
// tracker hands no roles, and the members each node sees fetch.
func TestRoles(t *testing.T) {
	partial := func(name string, fetchers int, tracker string) Scenario {
		sc := small(name, 60)
		sc.MaxPeers, sc.Racks, sc.Fetchers, sc.Tracker = 8, 4, fetchers, tracker
		return sc
	}
	tests := []struct {
		name        string
		sc          Scenario
		maxFetchers int // nodes that fetched from the origin, at most
		maxOrigin   float64
		wantRoles   bool
	}{
		{"pkgsync tracker, partial views, four slots", partial("roles 4", 4, TrackerPkgsync), 4, 1.05, true},
		{"pkgsync tracker, partial views, default slots", partial("roles", 0, TrackerPkgsync), 60, 1.05, true},
		{"pkgsync tracker, two sites: roles only in the origin's site", func() Scenario {
			sc := small("roles, two sites", 40)
			sc.Sites, sc.Racks, sc.SiteRule = 2, 2, true
			return sc
		}(), 40, 2.1, true},
		{"stock tracker: no roles", partial("no roles", 0, TrackerStock), 60, 10, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := runSim(t, tc.sc)
			fetched := 0
			for _, n := range s.nodes {
				if n.originDone > 0 {
					fetched++
					if tc.wantRoles && n.site == 0 && !n.role.Fetcher() {
						t.Errorf("node %d fetched %d pieces from the origin without a slot", n.idx, n.originDone)
					}
				}
				switch {
				case !tc.wantRoles && n.role != nil:
					t.Errorf("node %d has a role under a stock tracker", n.idx)
				case tc.wantRoles && n.site == 0 && n.role == nil:
					t.Errorf("node %d of the origin's site has no role", n.idx)
				case n.site != 0 && n.role != nil:
					t.Errorf("node %d of site %d has a role", n.idx, n.site)
				}
			}
			if fetched > tc.maxFetchers {
				t.Errorf("%d nodes fetched from the origin, want at most %d", fetched, tc.maxFetchers)
			}
			if r := s.originBytes / s.missingBytes(); r > tc.maxOrigin {
				t.Errorf("the origin sent %.3f F, want at most %.2f", r, tc.maxOrigin)
			}
			if tc.sc.Sites > 1 {
				if r := s.crossBytes[0][1] / s.missingBytes(); r > 1.2 {
					t.Errorf("%.3f F crossed to the far site, want at most 1.2", r)
				}
			}
		})
	}
}

// Nodes that start together and find their first peers full still join one swarm: a full
// node takes a connection of the direction it has fewer of, as anacrolix does. Without that,
// the first MaxConns+1 nodes form a clique that nobody else reaches.
func TestConnectedWhenFull(t *testing.T) {
	sc := small("full nodes", 200)
	sc.MaxConns, sc.Racks, sc.Size = 16, 5, 1<<20
	s, err := newSim(sc)
	if err != nil {
		t.Fatal(err)
	}
	// Run until every node has started and announced once.
	for len(s.timers) > 0 && s.timers[0].t <= 0 {
		s.fire(heap.Pop(&s.timers).(timer))
	}
	for _, n := range s.nodes {
		if len(n.conns) > sc.MaxConns {
			t.Fatalf("node %d has %d connections, above MaxConns %d", n.idx, len(n.conns), sc.MaxConns)
		}
	}
	seen := make([]bool, len(s.nodes))
	queue := []int32{0}
	seen[0] = true
	for len(queue) > 0 {
		n := s.nodes[queue[0]]
		queue = queue[1:]
		for _, c := range n.conns {
			if !seen[c.peer] {
				seen[c.peer] = true
				queue = append(queue, c.peer)
			}
		}
	}
	reached := 0
	for _, ok := range seen {
		if ok {
			reached++
		}
	}
	if reached != len(s.nodes) {
		t.Errorf("node 0 reaches %d of %d nodes over connections", reached, len(s.nodes))
	}
}

// BenchmarkFanout runs 500 nodes fetching 64 MiB at 10 Gbit/s from a 10 Gbit/s origin with
// pkgsync's tracker: the work per event of a fleet run, at a size a benchmark repeats.
func BenchmarkFanout(b *testing.B) {
	sc := Scenario{Name: "bench", Nodes: 500, Size: 64 << 20, Racks: 50, NodeRate: 1.25e9, OriginRate: 1.25e9,
		SiteRule: true, Seed: 1}
	b.ReportAllocs()
	var events int64
	for b.Loop() {
		r, err := Run(context.Background(), sc)
		if err != nil {
			b.Fatal(err)
		}
		events += r.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
