package swarmsim

// Connections follow anacrolix/torrent's rules (Torrent.addPeerConn, wantOutgoingConns,
// wantIncomingConns, worstBadConn): a node takes up to MaxConns connections; a full node
// still takes one more in the direction it has fewer of, when it has more than one
// connection more of the other direction, and closes the worst of those to make room (one
// whose peer has nothing it lacks first, then the oldest). Nodes that start together
// otherwise wire themselves into a clique of the first MaxConns+1 and leave the rest apart:
// every later node finds the first ones full. The library's other evictions (a connection
// that sends mostly wasted chunks, one in the worse half for over a minute) are not modelled.

// connect opens a connection from n to q (n dials) if both may: alive, allowed by both
// sides' site rule, and with room on both sides or room made as the library makes it.
func (n *node) connect(q *node) {
	s := n.s
	if q == n || !q.alive || n.connected(q.idx) || !n.allowPeer(q) || !q.allowPeer(n) ||
		!n.mayAdd(true) || !q.mayAdd(false) {
		return
	}
	n.makeRoom(true)
	q.makeRoom(false)
	i, j := int32(len(n.conns)), int32(len(q.conns))
	n.conns = append(n.conns, conn{peer: q.idx, rev: j, out: true, since: s.now})
	q.conns = append(q.conns, conn{peer: n.idx, rev: i, since: s.now})
	n.outgoing++
	n.learn(int(i))
	q.learn(int(j))
	n.conns[i].muted = q.conns[j].peerFull || q.conns[j].peerHidden
	q.conns[j].muted = n.conns[i].peerFull || n.conns[i].peerHidden
	n.fill()
	q.fill()
}

// mayAdd reports whether n takes one more connection, outgoing or not: below MaxConns, or
// full with more than one connection more of the other direction.
func (n *node) mayAdd(outgoing bool) bool {
	if len(n.conns) < n.s.sc.MaxConns {
		return true
	}
	in := len(n.conns) - n.outgoing
	if outgoing {
		return in-n.outgoing > 1
	}
	return n.outgoing-in > 1
}

// makeRoom closes, when n is full, its worst connection of the direction opposite to the
// one it adds: one whose peer has no piece n lacks before one that has, then the oldest.
func (n *node) makeRoom(outgoing bool) {
	if len(n.conns) < n.s.sc.MaxConns {
		return
	}
	worst, worstUseful := -1, false
	for i, c := range n.conns {
		if c.out == outgoing {
			continue
		}
		useful := n.useful(c)
		if worst < 0 || (worstUseful && !useful) ||
			(useful == worstUseful && c.since < n.conns[worst].since) {
			worst, worstUseful = i, useful
		}
	}
	n.drop(worst)
}

// useful reports whether the peer of c has a piece n lacks (anacrolix's Peer.useful, for a
// node that still downloads; a complete node finds every interested peer useful).
func (n *node) useful(c conn) bool {
	if n.complete {
		return true
	}
	if c.peerHidden {
		return false
	}
	q := n.s.nodes[c.peer]
	if c.peerFull {
		return true
	}
	for i, w := range q.have {
		if w&^n.have[i] != 0 {
			return true
		}
	}
	return false
}

// drop closes conns[i]: the transfers between the two nodes are cut (their bytes count as
// wasted), and each side asks its other peers again.
func (n *node) drop(i int) {
	s := n.s
	q := s.nodes[n.conns[i].peer]
	s.cutTransfers(n, q)
	s.cutTransfers(q, n)
	n.disconnect(i)
	n.fill()
	q.fill()
}

// cutTransfers ends the transfers from src to dst.
func (s *sim) cutTransfers(src, dst *node) {
	for k := 0; k < len(dst.downs); {
		f := dst.downs[k]
		if f.src != src.idx {
			k++
			continue
		}
		p := int(f.piece)
		s.wasted += s.end(f) // removes f from dst.downs
		dst.peerFlows--
		dst.busy.clear(p)
	}
}
