package tracker

import (
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/tracker/shared"
	"github.com/anacrolix/torrent/tracker/udp"
)

// TestConcurrentAnnounces has goroutines join and leave a few swarms at once, so that swarms
// empty, are dropped and are made again while others announce to them, with sweeps and scrapes
// in between; no announce may be lost to a swarm dropped under it (the store checks for that:
// without the check this test fails within a few runs).
func TestConcurrentAnnounces(t *testing.T) {
	s := newStore(Options{Interval: time.Minute, PeerTTL: time.Hour, MaxPeers: 50, Now: time.Now})
	ihs := [][20]byte{ihOf("c1"), ihOf("c2")}
	const workers, rounds = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rb rankBuf
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(w + 1)}), 6881)
			for r := range rounds {
				ih := ihs[(w+r)%len(ihs)]
				req := udp.AnnounceRequest{InfoHash: ih, PeerId: peerIDOf(addr.String()), Left: 10, Event: shared.Started}
				s.announce(&req, addr, 50, &rb, false)
				// Only this worker removes its peer: it must be listed now.
				if !slices.ContainsFunc(s.peerInfos(ih), func(p PeerInfo) bool { return p.Addr == addr }) {
					t.Errorf("round %d: %v announced but not listed", r, addr)
					return
				}
				req.Event = shared.Stopped
				s.announce(&req, addr, 0, &rb, false)
				if w == 0 && r%10 == 0 {
					s.sweep()
					s.Scrape(ihs)
				}
			}
			// Each worker ends listed in the swarm it joins again ("started": after its
			// "stopped" there, another announce would be taken for one that came in late).
			req := udp.AnnounceRequest{InfoHash: ihs[w%len(ihs)], PeerId: peerIDOf(addr.String()), Left: 10, Event: shared.Started}
			s.announce(&req, addr, 50, &rb, false)
		}()
	}
	wg.Wait()
	total := 0
	for i, ih := range ihs {
		n := len(s.peerInfos(ih))
		want := 0
		for w := range workers {
			if w%len(ihs) == i {
				want++
			}
		}
		if n != want {
			t.Errorf("swarm %d: %d peers, want %d", i, n, want)
		}
		total += n
	}
	if total != workers {
		t.Errorf("%d peers listed in all, want %d", total, workers)
	}
}

// TestSweepWalksOneSwarmAtATime: the walk of all swarms (sweep, the metrics' state, a scrape of
// everything) holds one swarm's lock at a time and not the store's, so that announces to the
// other swarms, new ones included, are served meanwhile. Inside the walk of one swarm, an
// announce makes a new swarm, which takes the store's lock: a walk under the store's lock would
// hang here. The table checks what the walk keeps.
func TestSweepWalksOneSwarmAtATime(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := newStore(Options{Interval: time.Minute, PeerTTL: time.Hour, MaxPeers: 50, Now: func() time.Time { return now }})
	var rb rankBuf
	announce := func(ih [20]byte, last byte, ev udp.AnnounceEvent, left int64) {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, last}), 6881)
		req := udp.AnnounceRequest{InfoHash: ih, PeerId: peerIDOf(addr.String()), Event: ev, Left: left}
		s.announce(&req, addr, 50, &rb, false)
	}
	for _, c := range []struct {
		name string
		ev   udp.AnnounceEvent
		left int64
	}{
		{"expired leecher", shared.Started, 10},
		{"expired seeder that completed", shared.Completed, 0},
		{"live leecher", shared.Started, 10}, // announces again below
	} {
		announce(ihOf(c.name), 1, c.ev, c.left)
	}
	now = now.Add(2 * time.Hour)
	announce(ihOf("live leecher"), 1, shared.None, 10)
	walked := 0
	s.each(func(ih [20]byte, sw *swarm) {
		if walked++; walked == 1 {
			announce(ihOf("made during the walk"), 2, shared.Started, 10)
		}
	})
	if walked != 3 {
		t.Errorf("the walk saw %d swarms, want the 3 there were when it started", walked)
	}
	for _, c := range []struct {
		name  string
		peers int
		kept  bool
	}{
		{"expired leecher", 0, false},
		{"expired seeder that completed", 0, true}, // BEP 48 "downloaded" outlives the peers
		{"live leecher", 1, true},
		{"made during the walk", 1, true},
	} {
		s.mu.RLock()
		_, kept := s.swarms[ihOf(c.name)]
		s.mu.RUnlock()
		if n := len(s.peerInfos(ihOf(c.name))); n != c.peers || kept != c.kept {
			t.Errorf("%s: %d peers, kept %v; want %d, %v", c.name, n, kept, c.peers, c.kept)
		}
	}
}

// BenchmarkAnnounceDuringSweep times announces to a store of 100 swarms of 100 peers (the load
// of cmd/trackerload) while another goroutine sweeps it without pause, and reports the 99th
// percentile and the longest wait of one announce. A sweep is due once per peer TTL; sweeping
// without pause puts every announce beside one, which is what the percentiles are about. It
// needs two cores to mean anything (the sweep and the announces run at once).
//
//	go test ./tracker -run '^$' -bench AnnounceDuringSweep -benchtime 20000x -count 3
func BenchmarkAnnounceDuringSweep(b *testing.B) {
	const swarms, perSwarm = 100, 100
	s := newStore(Options{Interval: time.Minute, PeerTTL: time.Hour, MaxPeers: 200, Now: time.Now})
	var rb rankBuf
	reqs := make([]udp.AnnounceRequest, swarms*perSwarm)
	addrs := make([]netip.AddrPort, len(reqs))
	for i := range reqs {
		addrs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 6881)
		reqs[i] = udp.AnnounceRequest{InfoHash: ihOf(strconv.Itoa(i % swarms)), PeerId: peerIDOf(addrs[i].String()), Left: 10}
		s.announce(&reqs[i], addrs[i], 200, &rb, false)
	}
	stop := make(chan struct{})
	swept := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				swept <- n
				return
			default:
				s.sweep()
				n++
			}
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		k := i * 7919 % len(reqs)
		t0 := time.Now()
		s.announce(&reqs[k], addrs[k], 200, &rb, false)
		lat = append(lat, time.Since(t0))
		i++
	}
	close(stop)
	sweeps := <-swept
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(sweeps)/float64(b.N), "sweeps/op")
}

// An announce of a peer that comes in after that peer's "stopped" (sent before it, on another
// connection) does not list the peer again; "started" does, and so does any announce once the
// TTL is over or from another peer ID at the address. A late "completed" still counts.
func TestLateAnnounceAfterStopped(t *testing.T) {
	addr := netip.MustParseAddrPort("10.0.0.1:6881")
	ih := ihOf("late")
	type step struct {
		event udp.AnnounceEvent
		id    string
		after time.Duration // since the previous step
	}
	tests := []struct {
		name      string
		steps     []step
		listed    bool
		completed int32
	}{
		{"completed after stopped", []step{{shared.Started, "a", 0}, {shared.Stopped, "a", time.Second}, {shared.Completed, "a", 0}}, false, 1},
		{"re-announce after stopped", []step{{shared.Started, "a", 0}, {shared.Stopped, "a", time.Second}, {shared.None, "a", time.Second}}, false, 0},
		{"started after stopped", []step{{shared.Started, "a", 0}, {shared.Stopped, "a", time.Second}, {shared.Started, "a", time.Second}}, true, 0},
		{"a new peer ID at the address", []step{{shared.Started, "a", 0}, {shared.Stopped, "a", time.Second}, {shared.None, "b", 0}}, true, 0},
		{"after the TTL", []step{{shared.Started, "a", 0}, {shared.Stopped, "a", time.Second}, {shared.None, "a", time.Hour}}, true, 0},
		{"completed, then stopped", []step{{shared.Started, "a", 0}, {shared.Completed, "a", time.Second}, {shared.Stopped, "a", 0}}, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			s := newStore(Options{Interval: time.Minute, PeerTTL: 30 * time.Minute, MaxPeers: 50, OriginFetchers: 4, Now: func() time.Time { return now }})
			var rb rankBuf
			for _, st := range tc.steps {
				now = now.Add(st.after)
				left := int64(10)
				if st.event == shared.Completed {
					left = 0
				}
				req := udp.AnnounceRequest{InfoHash: ih, PeerId: peerIDOf(st.id), Left: left, Event: st.event}
				s.announce(&req, addr, 50, &rb, false)
			}
			listed := slices.ContainsFunc(s.peerInfos(ih), func(p PeerInfo) bool { return p.Addr == addr })
			if listed != tc.listed {
				t.Errorf("listed: %v, want %v", listed, tc.listed)
			}
			if got := s.Scrape([][20]byte{ih})[0].Completed; got != tc.completed {
				t.Errorf("completed: %d, want %d", got, tc.completed)
			}
		})
	}
}
