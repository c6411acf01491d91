package tracker

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/anacrolix/torrent/tracker/shared"
	"github.com/anacrolix/torrent/tracker/udp"

	"github.com/pkgsync/pkgsync/metrics"
	"github.com/pkgsync/pkgsync/originplan"
)

// store holds the live peers of every torrent, keyed by the address they are handed out at, each
// dropped once silent for the TTL.
//
// An announce is one pass under its swarm's lock (record the asker, then walk the swarm once,
// dropping expired peers and scoring the others for the asker), and the ranking runs after it,
// outside the lock, on the scored copies. Each swarm has a lock of its own, so that announces of
// different packages do not wait for each other (with one lock for the store, two cores serving
// 100 packages waited 88 µs per announce for it); the store's lock guards only the map of swarms,
// and is taken before a swarm's. What walks every swarm (the expiry sweep, the metrics, a scrape
// of everything) takes them one at a time (store.each), so that no announce waits for all of them. A swarm keeps its peers in a slice (an index map finds a peer by
// address), so that the walk reads contiguous memory and a peer costs no allocation of its own.
type store struct {
	sites    *sites
	ttl      int64 // nanoseconds
	interval int32 // seconds
	fetchers int   // origin fetcher slots per swarm (Options.OriginFetchers); 0: none
	now      func() time.Time

	mu     sync.RWMutex
	swarms map[[20]byte]*swarm
}

type swarm struct {
	mu    sync.Mutex
	dead  bool                     // dropped from store.swarms: look the torrent up again
	index map[netip.AddrPort]int32 // position in peers
	peers []peer
	// completed counts completions seen (BEP 48 "downloaded"). It outlives the peers, so a swarm
	// with completions is kept when it empties: one small record per torrent ever completed.
	completed int32
	// slots hands out the swarm's origin roles (see the package doc); nil when the tracker
	// hands out none. fetchers is the list of holders its last answer gave, after which the
	// peers' fetcher marks were set.
	slots    *originplan.Slots
	fetchers []originplan.PeerID
	// gone holds, per address, the peer ID that announced "stopped" from it and when (Unix
	// nanoseconds), for the TTL. A later announce of that peer ID from there that is not
	// "started" is answered but not recorded: it left before its "stopped" and came in after
	// it, on a connection of its own (a client that sends "completed" and leaves at once), and
	// recorded it would list a process that is gone until the TTL, which every node that
	// starts meanwhile waits for.
	gone map[netip.AddrPort]goneEntry
}

type goneEntry struct {
	id [20]byte
	at int64
}

// peer is what PeerInfo says of a peer, in less room.
type peer struct {
	addr                 netip.AddrPort
	id                   [20]byte
	uploaded, downloaded int64
	left                 int64 // -1 if never reported
	seen                 int64 // time of the last announce, Unix nanoseconds
	key                  rankKey
	counted              bool // its completion is in swarm.completed
	fetcher              bool // its peer ID holds an origin fetcher slot (swarm.fetchers)
}

func (p *peer) seeder() bool { return p.left == 0 }

func (p *peer) info() PeerInfo {
	return PeerInfo{
		Addr: p.addr, ID: p.id, Uploaded: p.uploaded, Downloaded: p.downloaded, Left: p.left,
		LastSeen: time.Unix(0, p.seen),
	}
}

func newStore(opts Options) *store {
	return &store{
		sites:    newSites(opts.Topology),
		ttl:      int64(opts.PeerTTL),
		interval: int32(max(1, opts.Interval/time.Second)),
		fetchers: max(0, opts.OriginFetchers),
		now:      opts.Now,
		swarms:   make(map[[20]byte]*swarm),
	}
}

// announced is what an announce answers: the swarm's counts, the peers ranked for the asker and,
// when the tracker hands out origin roles (coordinated), the asker's.
type announced struct {
	seeders, leechers int32
	peers             []cand
	coordinated       bool
	role              originplan.Role
}

// fetcherOrder is the rank order (see asker.score) that puts a fellow origin fetcher ahead of
// every other peer in a fetcher's list: the closest score the sort keys hold, in the first tier.
const fetcherOrder = uint64(math.MaxUint32-maxScore) << 1

// announce records an announce of req from addr (event=stopped removes the peer, anything else
// adds or refreshes it) and returns up to limit other live peers, closest to addr first (see
// rankBuf.rank), with the swarm's seeder and leecher counts and the asker's origin role. An
// origin fetcher gets its fellow fetchers first, so that they connect to each other. The peers
// are in rb. noFetch says the asker will not fetch from the origin (NoFetchParam): it holds no
// origin fetcher slot.
func (s *store) announce(req *udp.AnnounceRequest, addr netip.AddrPort, limit int, rb *rankBuf, noFetch bool) announced {
	clock := s.now()
	now := clock.UnixNano()
	asker := newAsker(s.sites, addr, req.Left == 0)
	var out announced
	cands := rb.cands[:0]

	stopped := req.Event == shared.Stopped
	sw := s.lockSwarm(req.InfoHash, !stopped)
	if sw != nil {
		var replaced [20]byte
		late := false
		switch {
		case stopped:
			sw.remove(addr)
			sw.markGone(addr, req.PeerId, now)
		case sw.late(addr, req, now, s.ttl):
			late = true
			if req.Event == shared.Completed {
				sw.completed++ // a completion all the same, though not listed
			}
		default:
			replaced = sw.record(req, addr, now, s.sites)
		}
		var marks map[originplan.PeerID]bool // the fetchers, when the peers' marks must change
		if sw.slots != nil {
			out.coordinated = true
			creq := req
			if late {
				gone := *req // it takes no slot: to the slots it is still gone
				gone.Event = shared.Stopped
				creq = &gone
			}
			out.role, marks = sw.coordinate(creq, clock, replaced, noFetch)
		}
		fetcher := out.role.Fetcher()
		cands = slices.Grow(cands, len(sw.peers))
		for i := len(sw.peers) - 1; i >= 0; i-- {
			p := &sw.peers[i]
			if now-p.seen >= s.ttl {
				sw.remove(p.addr) // moves the last peer, already walked, to i
				continue
			}
			if marks != nil {
				p.fetcher = marks[p.id]
			}
			if p.seeder() {
				out.seeders++
			} else {
				out.leechers++
			}
			// Never list the asker, also not under an older address with the same peer_id.
			if limit == 0 || p.addr == addr || (req.PeerId != [20]byte{} && p.id == req.PeerId) {
				continue
			}
			n := len(cands)
			cands = cands[:n+1]
			asker.score(&cands[n], p)
			if fetcher && p.fetcher {
				cands[n].order = fetcherOrder
			}
		}
		s.unlockSwarm(req.InfoHash, sw)
	}

	rb.cands = cands
	out.peers = rb.rank(limit, rankSeed(req.InfoHash, addr))
	return out
}

// coordinate records the announce of req at now with the swarm's slots, after freeing the slot
// of replaced, the peer ID the asker's entry had until now (a node restarted at the same address
// under a new one), and returns the asker's role. When the holders differ from those of the last
// answer it also returns them as a set, by which the caller marks every peer it walks; otherwise
// the marks stand, and an announce costs no more than comparing the two lists. An asker that
// will not fetch (noFetch) gets no slot and gives back the one it holds. sw.mu is held.
func (sw *swarm) coordinate(req *udp.AnnounceRequest, now time.Time, replaced [20]byte, noFetch bool) (originplan.Role, map[originplan.PeerID]bool) {
	if replaced != ([20]byte{}) {
		// Its old self is gone, and so is the old self's slot.
		sw.slots.Announce(replaced, now, false, true)
	}
	role := sw.slots.Announce(req.PeerId, now, req.Left > 0 && !noFetch, req.Event == shared.Stopped || noFetch)
	if slices.Equal(role.Fetchers, sw.fetchers) {
		return role, nil
	}
	sw.fetchers = role.Fetchers // Slots never changes a list it handed out
	marks := make(map[originplan.PeerID]bool, len(role.Fetchers))
	for _, id := range role.Fetchers {
		if id != (originplan.PeerID{}) {
			marks[id] = true
		}
	}
	return role, marks
}

// lockSwarm returns the swarm of a torrent, locked, making it if create is set; nil if there is
// none and create is not set.
func (s *store) lockSwarm(infoHash [20]byte, create bool) *swarm {
	for {
		s.mu.RLock()
		sw := s.swarms[infoHash]
		s.mu.RUnlock()
		if sw == nil {
			if !create {
				return nil
			}
			s.mu.Lock()
			if sw = s.swarms[infoHash]; sw == nil {
				sw = &swarm{index: make(map[netip.AddrPort]int32)}
				if s.fetchers > 0 {
					// A slot lapses when its holder's peer entry does (see expire): the peer
					// TTL less a nanosecond, since Slots keeps a holder silent for exactly
					// its TTL and the store does not.
					sw.slots = originplan.NewSlots(s.fetchers, time.Duration(s.ttl-1))
				}
				s.swarms[infoHash] = sw
			}
			s.mu.Unlock()
		}
		sw.mu.Lock()
		if !sw.dead {
			return sw
		}
		sw.mu.Unlock() // dropped since it was looked up
	}
}

func (sw *swarm) empty() bool { return len(sw.peers) == 0 && sw.completed == 0 && len(sw.gone) == 0 }

// markGone records that the peer id at addr announced "stopped" at now (gone). sw.mu is held.
func (sw *swarm) markGone(addr netip.AddrPort, id [20]byte, now int64) {
	if id == ([20]byte{}) {
		return
	}
	if sw.gone == nil {
		sw.gone = make(map[netip.AddrPort]goneEntry)
	}
	sw.gone[addr] = goneEntry{id: id, at: now}
}

// late reports whether req, from addr at now, is an announce of a peer that announced
// "stopped" from there less than ttl ago, and not "started" (gone); a "started" ends that.
// sw.mu is held.
func (sw *swarm) late(addr netip.AddrPort, req *udp.AnnounceRequest, now, ttl int64) bool {
	g, ok := sw.gone[addr]
	if !ok {
		return false
	}
	if now-g.at >= ttl || g.id != req.PeerId || req.Event == shared.Started {
		delete(sw.gone, addr)
		return false
	}
	return true
}

// record adds or refreshes the peer at addr. It returns the peer ID the entry had when the
// announce names another one (a node restarted at the same address), else zero.
func (sw *swarm) record(req *udp.AnnounceRequest, addr netip.AddrPort, now int64, ss *sites) (replaced [20]byte) {
	i, ok := sw.index[addr]
	if !ok {
		i = int32(len(sw.peers))
		sw.index[addr] = i
		sw.peers = append(sw.peers, peer{addr: addr, left: -1, key: newRankKey(ss, addr)})
	}
	p := &sw.peers[i]
	// A completion is the completed event, or a peer seen leeching that now reports nothing
	// left (not every client sends the event). Each peer entry counts once.
	finished := req.Event == shared.Completed || (p.left > 0 && req.Left == 0)
	if finished && !p.counted {
		p.counted = true
		sw.completed++
	}
	if ok && p.id != req.PeerId {
		replaced = p.id
	}
	if !ok || p.id != req.PeerId {
		// A slot holder seen at a new address is still one (the marks change with the holders).
		p.fetcher = slices.Contains(sw.fetchers, req.PeerId)
	}
	p.id = req.PeerId
	p.uploaded, p.downloaded, p.left = req.Uploaded, req.Downloaded, req.Left
	p.seen = now
	return replaced
}

// remove drops the peer at addr, if listed, moving the last peer into its place.
func (sw *swarm) remove(addr netip.AddrPort) {
	i, ok := sw.index[addr]
	if !ok {
		return
	}
	delete(sw.index, addr)
	last := int32(len(sw.peers) - 1)
	if i != last {
		sw.peers[i] = sw.peers[last]
		sw.index[sw.peers[i].addr] = i
	}
	sw.peers[last] = peer{}
	sw.peers = sw.peers[:last]
	// Give memory back when a swarm has shrunk to a quarter of what it held.
	if cap(sw.peers) > 64 && len(sw.peers) < cap(sw.peers)/4 {
		sw.peers = slices.Clip(slices.Clone(sw.peers))
	}
}

// Scrape returns seeders, completions and leechers for each info hash, in order; unknown
// torrents count zero.
func (s *store) Scrape(infoHashes [][20]byte) []udp.ScrapeInfohashResult {
	now := s.now().UnixNano()
	out := make([]udp.ScrapeInfohashResult, len(infoHashes))
	for i, ih := range infoHashes {
		if sw := s.lockSwarm(ih, false); sw != nil {
			sw.expire(now, s.ttl)
			out[i] = sw.counts()
			s.unlockSwarm(ih, sw)
		}
	}
	return out
}

// all returns the info hashes of every torrent the store has a record of.
func (s *store) all() [][20]byte {
	var out [][20]byte
	s.each(func(ih [20]byte, sw *swarm) {
		if !sw.empty() {
			out = append(out, ih)
		}
	})
	slices.SortFunc(out, func(a, b [20]byte) int { return cmp.Compare(string(a[:]), string(b[:])) })
	return out
}

// each expires the peers of every swarm and calls f on it, one swarm at a time: the store's lock
// is held only to list the swarms and to drop one that has emptied, never while a swarm is
// walked, so that an announce waits at most for the walk of its own swarm, not of all of them.
// f is called with sw.mu held. A swarm made after the listing is left out, as if it had come a
// moment later.
func (s *store) each(f func(ih [20]byte, sw *swarm)) {
	now := s.now().UnixNano()
	type entry struct {
		ih [20]byte
		sw *swarm
	}
	s.mu.RLock()
	list := make([]entry, 0, len(s.swarms))
	for ih, sw := range s.swarms {
		list = append(list, entry{ih, sw})
	}
	s.mu.RUnlock()
	for _, e := range list {
		e.sw.mu.Lock()
		if e.sw.dead { // dropped since it was listed
			e.sw.mu.Unlock()
			continue
		}
		e.sw.expire(now, s.ttl)
		f(e.ih, e.sw)
		s.unlockSwarm(e.ih, e.sw)
	}
}

// unlockSwarm unlocks sw, the swarm of infoHash, and drops it from the store if it is empty.
func (s *store) unlockSwarm(infoHash [20]byte, sw *swarm) {
	empty := sw.empty()
	sw.mu.Unlock()
	if empty {
		s.mu.Lock()
		sw.mu.Lock()
		s.dropIfEmpty(infoHash, sw)
		sw.mu.Unlock()
		s.mu.Unlock()
	}
}

func (sw *swarm) counts() (r udp.ScrapeInfohashResult) {
	for i := range sw.peers {
		if sw.peers[i].seeder() {
			r.Seeders++
		} else {
			r.Leechers++
		}
	}
	r.Completed = sw.completed
	return r
}

// expire drops the peers of sw silent for ttl at now, and what gone holds longer. sw.mu must
// be held.
func (sw *swarm) expire(now, ttl int64) {
	for i := len(sw.peers) - 1; i >= 0; i-- {
		if now-sw.peers[i].seen >= ttl {
			sw.remove(sw.peers[i].addr)
		}
	}
	for a, g := range sw.gone {
		if now-g.at >= ttl {
			delete(sw.gone, a)
		}
	}
}

// dropIfEmpty drops sw, the swarm of infoHash, if it is empty and not dropped already. s.mu and
// sw.mu must be held.
func (s *store) dropIfEmpty(infoHash [20]byte, sw *swarm) {
	if sw.empty() && !sw.dead {
		sw.dead = true
		delete(s.swarms, infoHash)
	}
}

// state counts the swarms with live peers, their peers and seeders, expiring peers first.
func (s *store) state() metrics.TrackerState {
	var st metrics.TrackerState
	s.each(func(_ [20]byte, sw *swarm) {
		if len(sw.peers) > 0 {
			c := sw.counts()
			st.Swarms++
			st.Peers += int(c.Seeders + c.Leechers)
			st.Seeders += int(c.Seeders)
		}
	})
	return st
}

// sweep expires every torrent's peers.
func (s *store) sweep() { s.each(func([20]byte, *swarm) {}) }

func (s *store) peerInfos(infoHash [20]byte) []PeerInfo {
	now := s.now().UnixNano()
	sw := s.lockSwarm(infoHash, false)
	if sw == nil {
		return nil
	}
	defer s.unlockSwarm(infoHash, sw)
	sw.expire(now, s.ttl)
	out := make([]PeerInfo, len(sw.peers))
	for i := range sw.peers {
		out[i] = sw.peers[i].info()
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return a.Addr.Compare(b.Addr) })
	return out
}
