package swarmsim

import (
	"time"

	"github.com/pkgsync/pkgsync/originplan"
)

// siteRule reports whether bt's site rule is on for the scenario.
func (s *sim) siteRule() bool { return s.sc.SiteRule && s.sc.Sites > 1 }

// workOutSites computes the site rule's view from the known peers, as bt's newSitePolicy
// does: a site's gateway is the lowest node of it that this node knows (itself included).
func (n *node) workOutSites() {
	s := n.s
	if !s.siteRule() {
		return
	}
	n.gatewayOf = make([]int32, s.sc.Sites)
	for i := range n.gatewayOf {
		n.gatewayOf[i] = -1
	}
	n.gatewayOf[n.site] = n.idx
	n.originPeer = false
	for _, q := range n.known {
		qs := s.nodes[q].site
		if qs == 0 {
			n.originPeer = true
		}
		if g := n.gatewayOf[qs]; g < 0 || q < g {
			n.gatewayOf[qs] = q
		}
	}
	n.gateway = n.site != 0 && n.gatewayOf[n.site] == n.idx
}

func (n *node) ruleOn() bool { return n.s.siteRule() && !n.siteOff }

// allowPeer is bt's sitePolicy.allowPeer.
func (n *node) allowPeer(q *node) bool {
	switch {
	case !n.ruleOn() || q.site == n.site:
		return true
	case n.site == 0:
		return n.gatewayOf[q.site] == q.idx
	default:
		return n.gateway
	}
}

// usesOrigin is bt's sitePolicy.allowOrigin.
func (n *node) usesOrigin() bool {
	return !n.ruleOn() || n.site == 0 || (n.gateway && !n.originPeer)
}

// hides reports whether n is not told what q has: a node of the origin's site does not hear
// a far gateway's HAVE and bitfield messages, so it takes nothing back across.
func (n *node) hides(q *node) bool {
	return n.ruleOn() && n.site == 0 && q.site != 0
}

// siteCheck drops the site rule once it has starved the node for siteStall seconds, and then
// dials every known peer.
func (n *node) siteCheck() {
	s := n.s
	if !n.ruleOn() {
		return
	}
	if n.peerFlows > 0 || wanted(s.cand, n.avail, n.have, n.busy) > 0 {
		n.siteProgress = s.now
	}
	if s.now-n.siteProgress < siteStall {
		return
	}
	n.siteOff = true
	for _, q := range n.known {
		n.connect(s.nodes[q])
	}
}

// round is one round of bt's scheduler for the origin: the gate, then originplan.
func (n *node) round() {
	s := n.s
	n.siteCheck()
	if !n.usesOrigin() {
		return
	}
	role := n.originRole()
	if open, _ := n.plan.Gate().Open(n.gateView()); !open {
		return
	}
	now := n.at()
	peerPieces := len(n.haveList) - n.originDone
	// Unless stalled, Plan picks only pieces no connected peer has, and nothing for a node
	// the tracker did not make a fetcher: skip the walk then.
	notFetcher := role != nil && !role.Fetcher()
	if !n.plan.Stalled(now, peerPieces) && (notFetcher || unseenCount(n.avail, n.have, n.busy, s.pieces) == 0) {
		return
	}
	s.stampN++
	v := &nodeView{n: n, stamp: s.stampN}
	for _, p := range n.origin {
		s.stamp[p], s.ownStamp[p] = s.stampN, s.stampN
	}
	var members []originplan.Member
	held := s.held[:0]
	for _, c := range n.conns {
		q := s.nodes[c.peer]
		if n.role != nil && q.role != nil && q.role.Fetcher() {
			held = append(held, originplan.SlotHolder{Slot: q.role.Slot, ID: q.id})
		}
		if c.peerHidden || q.complete || !q.usesOrigin() {
			continue
		}
		m := originplan.Member{ID: q.id}
		for i, p := range q.origin {
			if s.now-q.originAt[i] < s.sc.ClaimDelay.Seconds() {
				continue // its claim has not reached this node yet
			}
			s.stamp[p] = s.stampN
			if !n.have.has(int(p)) && !n.avail.has(int(p)) {
				m.Outstanding++
			}
		}
		members = append(members, m)
	}
	s.held = held
	if n.role != nil && len(held) > 0 {
		r := role.WithHolders(held) // what connected fetchers say of their slots, as bt hears it
		role = &r
	}
	picked := n.plan.Plan(originplan.View{Now: now, Members: members, Inflight: len(n.origin),
		PeerPieces: peerPieces, Pieces: v, Role: role})
	for _, p := range picked {
		n.fromOrigin(p)
	}
}

// originRole is the tracker's Role, or under a stock tracker the one the nodes elect among
// themselves (originplan.Election, as bt does): this node's list is worked out afresh from
// the lists its connected peers worked out in their last rounds, so word travels one hop a
// round. Nil when neither applies.
func (n *node) originRole() *originplan.Role {
	if n.role != nil || n.elect == nil {
		return n.role
	}
	s := n.s
	var direct []originplan.PeerID
	var heard []originplan.Heard
	for _, c := range n.conns {
		q := s.nodes[c.peer]
		if c.peerHidden || q.complete || !q.usesOrigin() {
			continue
		}
		direct = append(direct, q.id)
		if q.elect != nil {
			heard = append(heard, q.elect.List())
		}
	}
	n.elect.Update(true, len(n.known)+1, direct, heard, func(id originplan.PeerID) bool {
		i, ok := s.byID[id]
		if !ok || s.nodes[i].id != id {
			return false
		}
		q := s.nodes[i]
		return n.connected(i) && (q.complete || !q.usesOrigin())
	})
	if !n.elect.Active() {
		return nil // alone as far as it knows, as bt
	}
	return n.elect.Role()
}

// fromOrigin starts fetching p from the origin; a peer transfer of p (taken over when
// stalled) is cut: bt's storage refuses the peer's writes from then on.
func (n *node) fromOrigin(p int) {
	s := n.s
	for _, f := range n.downs {
		if int(f.piece) == p && f.src >= 0 {
			s.wasted += s.end(f)
			n.peerFlows--
			break
		}
	}
	n.busy.set(p)
	n.origin = append(n.origin, int32(p))
	n.originAt = append(n.originAt, s.now)
	s.transfer(nil, n, p)
}

// gateView is what bt's gate would see: connections are established at once and peers say
// at once what they have.
func (n *node) gateView() originplan.GateView {
	all := true
	for _, q := range n.known {
		if !n.connected(q) {
			all = false
			break
		}
	}
	return originplan.GateView{Now: n.at(), Connected: len(n.conns), Known: len(n.known),
		AllKnownConnected: all, Announced: true, Settled: true, Alone: len(n.known) == 0, Role: n.role != nil && !n.role.Fetcher()}
}

// nodeView is a node's pieces as originplan sees them in one round.
type nodeView struct {
	n     *node
	stamp uint32
}

func (v *nodeView) Taken(p int) bool {
	return v.n.have.has(p) || v.n.s.stamp[p] == v.stamp
}

func (v *nodeView) Available(p int) bool {
	return v.n.avail.has(p)
}

func (v *nodeView) Timers(p int) (notBefore, lastPeerWrite time.Time) {
	n := v.n
	// A piece in flight from a peer is being written to now.
	if n.busy.has(p) && n.s.ownStamp[p] != v.stamp {
		return time.Time{}, n.at()
	}
	return time.Time{}, time.Time{}
}
