package tracker

import (
	"net/netip"
	"slices"
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
				s.announce(&req, addr, 50, &rb)
				// Only this worker removes its peer: it must be listed now.
				if !slices.ContainsFunc(s.peerInfos(ih), func(p PeerInfo) bool { return p.Addr == addr }) {
					t.Errorf("round %d: %v announced but not listed", r, addr)
					return
				}
				req.Event = shared.Stopped
				s.announce(&req, addr, 0, &rb)
				if w == 0 && r%10 == 0 {
					s.sweep()
					s.Scrape(ihs)
				}
			}
			// Each worker ends listed in the swarm of its last round.
			req := udp.AnnounceRequest{InfoHash: ihs[w%len(ihs)], PeerId: peerIDOf(addr.String()), Left: 10}
			s.announce(&req, addr, 50, &rb)
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
