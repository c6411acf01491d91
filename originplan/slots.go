package originplan

import (
	"slices"
	"time"
)

// DefaultFetchers is how many origin fetchers a tracker names per swarm when its operator
// does not say: bt's MaxConns, the peers a node connects to.
//
// A fetcher's upload is the first hop of every piece it fetches, and under rarest first with
// every peer unchoked all its connected peers that lack a fresh piece pull it from it at
// once. The fetchers pass the origin's rate on only if they can upload each of their pieces
// to those peers as fast as the origin sends, so fetchers x upload >= peers x the origin's
// rate: on a data center's network, where nodes and origin have links of one speed, as many
// fetchers as a node has peers. A tracker that caps its peer lists below this needs no more
// fetchers than the cap. The origin still sends each piece about once, since the fetchers'
// blocks are disjoint, and it serves one connection per fetcher (Plan keeps one fetch in
// flight per fetcher when there are Concurrency or more).
const DefaultFetchers = 128

// Role is what a tracker that coordinates the origin tells one announcer: whether it fetches
// from the origin, which block is its own, and who the other fetchers are. Every announcer
// of a swarm is told the same Fetchers, so the fetchers cut the same blocks whatever part of
// the swarm each of them sees; the others leave the origin to them.
type Role struct {
	// Slot is this node's slot in Fetchers, or -1 when it is not an origin fetcher.
	Slot int
	// Fetchers holds the peer ID of each slot's holder, in slot order; a zero ID marks a
	// slot nobody holds now.
	Fetchers []PeerID
}

// Fetcher reports whether the role makes the node an origin fetcher.
func (r Role) Fetcher() bool { return r.Slot >= 0 && r.Slot < len(r.Fetchers) }

// SlotHolder is a connected fetcher's word on its own slot: it holds slot Slot of the Role's
// list (bt hears it over the claim extension; the simulator reads its peers' roles).
type SlotHolder struct {
	Slot int
	ID   PeerID
}

// WithHolders returns r with what connected fetchers say of their own slots written into its
// list: a slot that r shows vacant, or held by another, goes to the fetcher that says it holds
// it. A node's list is the tracker's answer to its last announce, and fetchers that took a slot
// since are missing from it; without them, the node would take their slots for vacant and their
// blocks for its own or its heirs' (VacantHeirs), which the newcomers fetch too. A connected
// fetcher is live, and a live one keeps its slot (Slots). r's own list is not modified; with
// nothing to change, r comes back as it is.
func (r Role) WithHolders(held []SlotHolder) Role {
	copied := false
	for _, h := range held {
		if h.Slot < 0 || h.Slot >= len(r.Fetchers) || h.Slot == r.Slot || r.Fetchers[h.Slot] == h.ID {
			continue
		}
		if !copied {
			r.Fetchers, copied = slices.Clone(r.Fetchers), true
		}
		r.Fetchers[h.Slot] = h.ID
	}
	return r
}

// Slots is the tracker's side of origin coordination for one swarm: a fixed number of
// fetcher slots handed to announcers that still need data, first come first served, the way
// Dragonfly's scheduler limits back-to-source peers. A slot is held until its holder
// announces "stopped" or is not heard from for the TTL; then the next announcer that needs
// data inherits it, block and all. A holder that completes keeps its slot: its block is in
// the swarm, and nobody needs to fetch it again.
//
// Slots is pure (the time comes in with each call) and not safe for concurrent use: the
// tracker calls it under its swarm's lock, and the simulator from its one goroutine.
type Slots struct {
	ttl     time.Duration
	holders []slotHolder
	// list is Fetchers' last answer, shared by every Role handed out until a holder changes
	// or lapses (until): a tracker answers every announce with it, and a fresh list of
	// 20-byte IDs per slot was most of what an announce allocated.
	list        []PeerID
	from, until time.Time // list stands from when it was worked out to the first holder's lapse
}

type slotHolder struct {
	id       PeerID
	lastSeen time.Time
	held     bool
}

// NewSlots returns n slots (DefaultFetchers when n <= 0) whose holders lose them after ttl
// without an announce.
func NewSlots(n int, ttl time.Duration) *Slots {
	if n <= 0 {
		n = DefaultFetchers
	}
	return &Slots{ttl: ttl, holders: make([]slotHolder, n)}
}

// Announce records an announce of id at now and returns its role. needs says the announcer
// still lacks data (BitTorrent's left > 0); stopped says it is leaving. A node that holds
// no slot gets a free one only while it needs data.
func (s *Slots) Announce(id PeerID, now time.Time, needs, stopped bool) Role {
	slot := -1
	for k := range s.holders {
		h := &s.holders[k]
		if h.held && h.id == id {
			slot = k
			break
		}
	}
	switch {
	case stopped:
		if slot >= 0 {
			s.holders[slot] = slotHolder{}
			s.list = nil
		}
		slot = -1
	case slot >= 0:
		h := &s.holders[slot]
		if s.ttl > 0 && now.Sub(h.lastSeen) > s.ttl {
			s.list = nil // it had lapsed and is back: the list changes
		}
		// Otherwise the list stands: its holder only lapses later, and the list's validity
		// (until) ends at the latest when it would have lapsed, when it is worked out again.
		h.lastSeen = now
	case needs:
		slot = s.free(now)
		if slot >= 0 {
			s.holders[slot] = slotHolder{id: id, lastSeen: now, held: true}
			s.list = nil
		}
	}
	return Role{Slot: slot, Fetchers: s.Fetchers(now)}
}

// free returns the lowest slot nobody holds at now, or -1.
func (s *Slots) free(now time.Time) int {
	for k, h := range s.holders {
		if !h.held || (s.ttl > 0 && now.Sub(h.lastSeen) > s.ttl) {
			return k
		}
	}
	return -1
}

// Fetchers returns the holder of each slot at now, a zero ID for a free one. The list is shared
// with the other callers until a holder changes: it must not be modified.
func (s *Slots) Fetchers(now time.Time) []PeerID {
	if s.list != nil && !now.Before(s.from) && !now.After(s.until) {
		return s.list
	}
	out := make([]PeerID, len(s.holders))
	until := time.Time{}
	for k, h := range s.holders {
		if h.held && (s.ttl <= 0 || now.Sub(h.lastSeen) <= s.ttl) {
			out[k] = h.id
			if s.ttl > 0 {
				if lapse := h.lastSeen.Add(s.ttl); until.IsZero() || lapse.Before(until) {
					until = lapse
				}
			}
		}
	}
	if s.ttl <= 0 || until.IsZero() {
		until = now.Add(time.Duration(1 << 62)) // nobody lapses: the list stands until a holder changes
	}
	s.list, s.from, s.until = out, now, until
	return out
}

// Holds reports whether id holds a slot at now.
func (s *Slots) Holds(id PeerID, now time.Time) bool {
	for _, h := range s.holders {
		if h.held && h.id == id && (s.ttl <= 0 || now.Sub(h.lastSeen) <= s.ttl) {
			return true
		}
	}
	return false
}
