package originplan

import "time"

// Gate holds a node back from the origin until its known peers have connected and said what
// they have, at most PeerWait, so that nodes starting together agree on who fetches what.
// A node that a coordinating tracker did not make a fetcher (GateView.Role) has its word that
// others fetch: it waits only for the first announce's answer and for the peers already
// connected to say what they have, not for the known ones to connect, nor for others to show
// up when it is alone. A fetcher waits like a node under a stock tracker: a fetcher that
// went at once, before the fetchers announced after it were connected, fetched from their
// blocks (bt's TestOnlyFetchersFetch: 1.5 F in 1 of 20 runs that way, 1.0 F in 20 of 20
// waiting).
// Either way, until the first announce is answered, while a tracker reports a seeder that is
// not connected yet, and while known peers are still connecting, it waits up to ReachWait;
// while it asks a stock tracker for more peers (GateView.Asking), up to PeerWait.
type Gate struct {
	cfg        Config
	start      time.Time
	open       bool
	peerMark   [2]int    // connected and known peers, at peerChange
	peerChange time.Time // when either count last changed
}

// GateView is what the gate looks at in one round.
type GateView struct {
	Now       time.Time
	Connected int // peers connected now
	Known     int // peers known (from the caller and the tracker)
	// AllKnownConnected: every known peer is connected.
	AllKnownConnected bool
	// Announced: the first announce has been answered (or there is no tracker).
	Announced bool
	// Settled: every connected peer has said what it has and whether it uses the origin.
	Settled bool
	// Alone: nobody is known yet but a tracker may still name peers: the others that start
	// with this node may simply not have announced.
	Alone bool
	// Role: a coordinating tracker answered with a Role that does not make this node a
	// fetcher.
	Role bool
	// SeederAway: a tracker reports a seeder, and no connected peer is one yet. The gate then
	// waits for one to connect, up to ReachWait: a piece fetched from the origin meanwhile
	// is one the swarm already had.
	SeederAway bool
	// Asking: the node still asks a tracker that hands out no roles for more peers, having
	// been told of fewer than ElectedFetchers. One of the first to announce would otherwise
	// go with the few peers that announced before it, take the swarm for small, and elect
	// fetchers by its ID among them (Election), where the others elect by slot.
	Asking bool
}

// Open reports whether the node may use the origin, and whether it became so in this call.
// Once open, the gate stays open.
func (g *Gate) Open(v GateView) (open, now bool) {
	if g.open {
		return true, false
	}
	if mark := [2]int{v.Connected, v.Known}; mark != g.peerMark || g.peerChange.IsZero() {
		g.peerMark, g.peerChange = mark, v.Now
	}
	// Known peers that have not connected while nothing changed for ConnectGrace will not:
	// go without them. Two known nodes that fail to connect to each other would otherwise
	// both sit out PeerWait while the others count them as members and wait for their blocks.
	quiet := v.Connected > 0 && v.Now.Sub(g.peerChange) >= g.cfg.ConnectGrace
	ready := v.Announced && v.Settled && !v.SeederAway && !v.Asking && (v.Role || (!v.Alone && (v.AllKnownConnected || quiet)))
	wait := g.cfg.PeerWait
	dialing := v.Known > 0 && !v.AllKnownConnected && v.Now.Sub(g.peerChange) < g.cfg.ConnectGrace
	if !v.Announced || v.SeederAway || dialing {
		wait = max(wait, g.cfg.ReachWait)
	}
	if v.Now.Sub(g.start) < wait && !ready {
		return false, false
	}
	g.open = true
	return true, true
}
