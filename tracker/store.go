package tracker

import (
	"cmp"
	"context"
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/anacrolix/generics"
	trackerServer "github.com/anacrolix/torrent/tracker/server"
	"github.com/anacrolix/torrent/tracker/shared"
	"github.com/anacrolix/torrent/tracker/udp"

	"github.com/pkgsync/pkgsync/topology"
)

// store is the peer store behind trackerServer.AnnounceHandler: the live peers of every torrent,
// keyed by the address they are handed out at, each dropped once silent for the TTL.
type store struct {
	topo     *topology.Map
	ttl      time.Duration
	interval int32 // seconds
	maxPeers int
	now      func() time.Time

	mu     sync.Mutex
	swarms map[[20]byte]*swarm
}

type swarm struct {
	peers map[netip.AddrPort]*peer
	// completed counts completions seen (BEP 48 "downloaded"). It outlives the peers, so a swarm
	// with completions is kept when it empties: one small record per torrent ever completed.
	completed int32
}

type peer struct {
	PeerInfo
	counted bool // its completion is in swarm.completed
}

var _ trackerServer.AnnounceTracker = (*store)(nil)

func newStore(opts Options) *store {
	return &store{
		topo:     opts.Topology,
		ttl:      opts.PeerTTL,
		interval: int32(max(1, opts.Interval/time.Second)),
		maxPeers: opts.MaxPeers,
		now:      opts.Now,
		swarms:   make(map[[20]byte]*swarm),
	}
}

// TrackAnnounce records an announce from addr: event=stopped removes the peer, anything else adds
// or refreshes it.
func (s *store) TrackAnnounce(_ context.Context, req udp.AnnounceRequest, addr netip.AddrPort) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[req.InfoHash]
	if req.Event == shared.Stopped {
		if sw != nil {
			delete(sw.peers, addr)
			s.dropIfEmpty(req.InfoHash, sw)
		}
		return nil
	}
	if sw == nil {
		sw = &swarm{peers: make(map[netip.AddrPort]*peer)}
		s.swarms[req.InfoHash] = sw
	}
	p := sw.peers[addr]
	if p == nil {
		p = &peer{PeerInfo: PeerInfo{Addr: addr, Left: -1}}
		sw.peers[addr] = p
	}
	// A completion is the completed event, or a peer seen leeching that now reports nothing
	// left (not every client sends the event). Each peer entry counts once.
	finished := req.Event == shared.Completed || (p.Left > 0 && req.Left == 0)
	if finished && !p.counted {
		p.counted = true
		sw.completed++
	}
	p.ID = req.PeerId
	p.Uploaded, p.Downloaded, p.Left = req.Uploaded, req.Downloaded, req.Left
	p.LastSeen = now
	return nil
}

// GetPeers returns the live peers of a torrent other than the asker, closest to the asker first,
// with the swarm's seeder and leecher counts and the announce interval.
func (s *store) GetPeers(
	_ context.Context, infoHash [20]byte, opts trackerServer.GetPeersOpts, asker netip.AddrPort,
) trackerServer.ServerAnnounceResult {
	limit := min(opts.MaxCount.UnwrapOr(uint(s.maxPeers)), uint(s.maxPeers))
	type cand struct {
		addr   netip.AddrPort
		seeder bool
	}
	var (
		cands             []cand
		seeders, leechers int32
		askerSeeds        bool
	)
	s.mu.Lock()
	if sw := s.swarms[infoHash]; sw != nil {
		s.expire(infoHash, sw, s.now())
		var askerID generics.Option[[20]byte]
		if p := sw.peers[asker]; p != nil && p.ID != ([20]byte{}) {
			askerID = generics.Some(p.ID)
			askerSeeds = p.Seeder()
		}
		for addr, p := range sw.peers {
			if p.Seeder() {
				seeders++
			} else {
				leechers++
			}
			// Never list the asker, also not under an older address with the same peer_id.
			if addr == asker || (askerID.Ok && p.ID == askerID.Value) {
				continue
			}
			cands = append(cands, cand{addr: addr, seeder: p.Seeder()})
		}
	}
	s.mu.Unlock()

	// Among equally close peers, those that can help the asker most come first: seeders for a
	// leecher, leechers for a seeder.
	tier := func(c cand) int {
		if c.seeder != askerSeeds {
			return 0
		}
		return 1
	}
	topology.RankBy(s.topo, asker.Addr(), cands, func(c cand) netip.AddrPort { return c.addr }, tier, rankSeed(infoHash, asker))
	if uint(len(cands)) > limit {
		cands = cands[:limit]
	}
	ret := trackerServer.ServerAnnounceResult{
		Interval: generics.Some(s.interval),
		Seeders:  generics.Some(seeders),
		Leechers: generics.Some(leechers),
		Peers:    make([]trackerServer.PeerInfo, len(cands)),
	}
	for i, c := range cands {
		ret.Peers[i] = trackerServer.PeerInfo{AnnounceAddr: c.addr}
	}
	return ret
}

// rankSeed gives each asker of each torrent its own order of equally close peers, the same at
// every announce so that its choice of peers does not churn.
func rankSeed(infoHash [20]byte, asker netip.AddrPort) uint64 {
	h := fnv.New64a()
	h.Write(infoHash[:])
	b := asker.Addr().As16()
	h.Write(b[:])
	h.Write(binary.BigEndian.AppendUint16(nil, asker.Port()))
	return h.Sum64()
}

// Scrape returns seeders, completions and leechers for each info hash, in order; unknown
// torrents count zero.
func (s *store) Scrape(_ context.Context, infoHashes [][20]byte) ([]udp.ScrapeInfohashResult, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]udp.ScrapeInfohashResult, len(infoHashes))
	for i, ih := range infoHashes {
		if sw := s.swarms[ih]; sw != nil {
			s.expire(ih, sw, now)
			out[i] = sw.counts()
		}
	}
	return out, nil
}

// all returns the info hashes of every torrent the store has a record of.
func (s *store) all() [][20]byte {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][20]byte, 0, len(s.swarms))
	for ih, sw := range s.swarms {
		if s.expire(ih, sw, now) {
			out = append(out, ih)
		}
	}
	slices.SortFunc(out, func(a, b [20]byte) int { return cmp.Compare(string(a[:]), string(b[:])) })
	return out
}

func (sw *swarm) counts() (r udp.ScrapeInfohashResult) {
	for _, p := range sw.peers {
		if p.Seeder() {
			r.Seeders++
		} else {
			r.Leechers++
		}
	}
	r.Completed = sw.completed
	return r
}

// expire drops the peers of sw silent for the TTL, and sw itself when nothing is left worth
// keeping. It reports whether sw is still kept. s.mu must be held.
func (s *store) expire(infoHash [20]byte, sw *swarm, now time.Time) bool {
	for addr, p := range sw.peers {
		if now.Sub(p.LastSeen) >= s.ttl {
			delete(sw.peers, addr)
		}
	}
	return !s.dropIfEmpty(infoHash, sw)
}

func (s *store) dropIfEmpty(infoHash [20]byte, sw *swarm) bool {
	if len(sw.peers) == 0 && sw.completed == 0 {
		delete(s.swarms, infoHash)
		return true
	}
	return false
}

// sweep expires every torrent's peers.
func (s *store) sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for ih, sw := range s.swarms {
		s.expire(ih, sw, now)
	}
}

// peer returns what is known of one live peer.
func (s *store) peer(infoHash [20]byte, addr netip.AddrPort) (PeerInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sw := s.swarms[infoHash]; sw != nil {
		if p := sw.peers[addr]; p != nil {
			return p.PeerInfo, true
		}
	}
	return PeerInfo{}, false
}

func (s *store) peerInfos(infoHash [20]byte) []PeerInfo {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := s.swarms[infoHash]
	if sw == nil || !s.expire(infoHash, sw, now) {
		return nil
	}
	out := make([]PeerInfo, 0, len(sw.peers))
	for _, p := range sw.peers {
		out = append(out, p.PeerInfo)
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return a.Addr.Compare(b.Addr) })
	return out
}
