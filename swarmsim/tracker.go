package swarmsim

import (
	"math/bits"
	"slices"

	"github.com/pkgsync/pkgsync/originplan"
	"github.com/pkgsync/pkgsync/topology"
)

// Addresses: node h of rack r in site d is 10.d.r.h (racks numbered within their site), and
// the topology places it in "dcD/rackR". Closeness is topology.Closeness: shared site levels
// times topology.LevelWeight plus the leading address bits in common.

func (n *node) addr() uint32 {
	local := n.rack % int32(n.s.sc.Racks)
	return 10<<24 | uint32(n.site)<<16 | uint32(local)<<8 | uint32(n.host)
}

func closeness(a, b *node) int {
	levels := 0
	if a.site == b.site {
		levels = 1
		if a.rack == b.rack {
			levels = 2
		}
	}
	return levels*topology.LevelWeight + bits.LeadingZeros32(a.addr()^b.addr())
}

// rackCloseness ranks rack b for a node of rack a: the closeness of two nodes of theirs,
// their host bits left out.
func rackCloseness(sc Scenario, a, b int) int {
	sa, sb := a/sc.Racks, b/sc.Racks
	levels := 0
	if sa == sb {
		levels = 1
		if a == b {
			levels = 2
		}
	}
	aa := uint32(sa)<<16 | uint32(a%sc.Racks)<<8
	ab := uint32(sb)<<16 | uint32(b%sc.Racks)<<8
	return levels*topology.LevelWeight + min(24, bits.LeadingZeros32(aa^ab))
}

// listedNow reports whether the tracker lists q: it announced, and is alive or died within
// the peer TTL (the tracker does not know it died).
func (s *sim) listedNow(q *node) bool {
	return q.started && (q.alive || s.now < q.diedAt+peerTTLIntervals*s.sc.Interval.Seconds())
}

// roleFor is the origin role pkgsync's tracker hands n with its answer (originplan.Slots, the
// code package tracker runs): a node that announces still needing data may get a fetcher
// slot, and every announcer learns the slot holders. A stock tracker hands none.
//
// With the site rule, only nodes of the origin's site get a Role. A far site reaches the
// origin through its gateway, as a node that needs the package itself; a slot held by a far
// node would keep the origin's site off that block until the holder's heir took it over, and
// a far node the rule keeps off the origin cannot fetch its block either. The far sites'
// nodes follow the rule as under a stock tracker.
func (s *sim) roleFor(n *node) *originplan.Role {
	if s.sc.Tracker != TrackerPkgsync || (s.siteRule() && n.site != 0) {
		return nil
	}
	r := s.slots.Announce(n.id, n.at(), !n.complete, false)
	return &r
}

// peersFor is the tracker's answer to n: at most min(MaxPeers, MaxConns) peers (a node asks
// for MaxConns).
func (s *sim) peersFor(n *node) []int32 {
	k := min(s.sc.MaxPeers, s.sc.MaxConns)
	if s.sc.Tracker == TrackerStock {
		return s.randomPeers(n, k)
	}
	fetchers := s.fellowFetchers(n)
	if len(fetchers) >= k {
		return fetchers[:k]
	}
	return append(fetchers, s.rankedPeers(n, k-len(fetchers), fetchers)...)
}

// fellowFetchers lists, for a fetcher, the other live slot holders in slot order: pkgsync's
// tracker puts them first in a fetcher's peer list (as many as the list holds), so that
// fetchers connect to each other and see each other's claims.
func (s *sim) fellowFetchers(n *node) []int32 {
	if n.role == nil || !n.role.Fetcher() {
		return nil
	}
	var out []int32
	for k, id := range n.role.Fetchers {
		if k == n.role.Slot || id == (originplan.PeerID{}) {
			continue
		}
		if q, ok := s.byID[id]; ok && q != n.idx && s.nodes[q].id == id && s.listedNow(s.nodes[q]) {
			out = append(out, q)
		}
	}
	return out
}

// randomPeers is a stock tracker's answer: a uniform sample of the listed peers.
func (s *sim) randomPeers(n *node, k int) []int32 {
	var out []int32
	cands := len(s.listed)
	if cands <= 2*k {
		for _, q := range s.listed {
			if q != n.idx && s.listedNow(s.nodes[q]) {
				out = append(out, q)
			}
		}
		s.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out[:min(k, len(out))]
	}
	s.pickN++
	for tries := 0; len(out) < k && tries < 8*k; tries++ {
		q := s.listed[s.rng.IntN(cands)]
		if q == n.idx || s.pickMark[q] == s.pickN || !s.listedNow(s.nodes[q]) {
			continue
		}
		s.pickMark[q] = s.pickN
		out = append(out, q)
	}
	return out
}

// rankedPeers is pkgsync's tracker's answer: closest first, then among equals seeders first
// for a leecher (leechers first for a seeder), then an order of the asker's own.
// It leaves out the peers in skip.
func (s *sim) rankedPeers(n *node, k int, skip []int32) []int32 {
	type cand struct {
		q     int32
		close int
		other bool // of the other role than the asker
		tie   uint64
	}
	var cands []cand
	lastClose := -1
	for _, r := range s.rackOrder[n.rack] {
		rc := rackCloseness(s.sc, int(n.rack), int(r))
		if len(cands) >= k && rc < lastClose {
			break
		}
		for _, q := range s.racksBy[r] {
			qn := s.nodes[q]
			if q == n.idx || !s.listedNow(qn) || slices.Contains(skip, q) {
				continue
			}
			cands = append(cands, cand{q: q, close: closeness(n, qn), other: qn.complete != n.complete,
				tie: mix(s.sc.Seed ^ uint64(n.idx)<<20 ^ uint64(q))})
		}
		lastClose = rc
	}
	slices.SortFunc(cands, func(a, b cand) int {
		switch {
		case a.close != b.close:
			return b.close - a.close
		case a.other != b.other:
			if a.other {
				return -1
			}
			return 1
		case a.tie < b.tie:
			return -1
		case a.tie > b.tie:
			return 1
		}
		return 0
	})
	out := make([]int32, 0, min(k, len(cands)))
	for _, c := range cands[:min(k, len(cands))] {
		out = append(out, c.q)
	}
	return out
}

// mix is SplitMix64's finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
