package originplan

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"iter"
	"slices"
)

// ShareOrder is the order in which one node considers pieces for the origin. The pieces
// [0, numPieces) are cut into members contiguous blocks, block k belonging to the member
// of rank k. A node walks its own block forwards first (so N nodes that start together
// ask the origin for disjoint pieces), then the following members' blocks backwards: a
// block's owner works from its start, so a node that runs out of work meets it in the
// middle instead of racing it for the same pieces.
func ShareOrder(numPieces, members, rank int) iter.Seq[int] {
	return func(yield func(int) bool) {
		if numPieces <= 0 {
			return
		}
		if members < 1 || rank < 0 || rank >= members {
			members, rank = 1, 0
		}
		start := func(k int) int { return BlockStart(k, numPieces, members) }
		for p := start(rank); p < start(rank+1); p++ {
			if !yield(p) {
				return
			}
		}
		for d := 1; d < members; d++ {
			k := (rank + d) % members
			for p := start(k+1) - 1; p >= start(k); p-- {
				if !yield(p) {
					return
				}
			}
		}
	}
}

// slotOrder is ShareOrder under a Role, where heir gives the heir of each vacant slot's block
// (VacantHeirs, -1 for a held slot): this node's own block forwards, then the vacant blocks it
// inherits, each forwards as if its own, then the other blocks as ShareOrder has them.
func slotOrder(numPieces, members, rank int, heir []int) iter.Seq[int] {
	return func(yield func(int) bool) {
		if numPieces <= 0 || members < 1 || rank < 0 || rank >= members || len(heir) != members {
			for p := range ShareOrder(numPieces, members, rank) {
				if !yield(p) {
					return
				}
			}
			return
		}
		start := func(k int) int { return BlockStart(k, numPieces, members) }
		for d := range members {
			k := (rank + d) % members
			if k != rank && heir[k] != rank {
				continue
			}
			for p := start(k); p < start(k+1); p++ {
				if !yield(p) {
					return
				}
			}
		}
		for d := 1; d < members; d++ {
			k := (rank + d) % members
			if heir[k] == rank {
				continue
			}
			for p := start(k+1) - 1; p >= start(k); p-- {
				if !yield(p) {
					return
				}
			}
		}
	}
}

// SortedMembers sorts the peer IDs of the nodes sharing origin work (self included) and
// returns them with self's position among them.
func SortedMembers(self [20]byte, others [][20]byte) (ids [][20]byte, rank int) {
	return sortMembers(append([][20]byte{self}, others...), self)
}

// sortMembers is SortedMembers on ids, which holds self and the others; it sorts ids in place.
func sortMembers(ids [][20]byte, self [20]byte) ([][20]byte, int) {
	slices.SortFunc(ids, compareIDs)
	ids = slices.Compact(ids)
	rank, _ := slices.BinarySearchFunc(ids, self, compareIDs)
	return ids, rank
}

// compareIDs orders peer IDs as bytes.Compare does, the first 8 bytes compared as one word:
// simulations sort a hundred IDs per node and round.
func compareIDs(a, b [20]byte) int {
	if x, y := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8]); x != y {
		return cmp.Compare(x, y)
	}
	return bytes.Compare(a[8:], b[8:])
}

// HeirOf is the member that takes over the block of idle member k: the next member after k,
// in the sorted order and wrapping around, that is not idle. A node never counts itself idle,
// so its own rank is found at the latest. When every node took an idle block over at once,
// the origin sent its pieces once per node, within one claim's round trip (seen: one piece
// five times); one heir per block fetches each piece once.
func HeirOf(k int, idle []bool) int {
	for d := 1; d < len(idle); d++ {
		if j := (k + d) % len(idle); !idle[j] {
			return j
		}
	}
	return k
}

// ThiefSkip is how many of the open pieces at the end of another member's block a node
// leaves to other takers before it takes one: d is how far the block lies after the node's
// own in the sorted member list (1 to members-1, distinct for every node taking from one
// block), takeable the open pieces of the block it may take. Nodes that ran out of work
// all walk the same block from its end; without a skip they chose the same last open
// piece within one claim's round trip (seen: 29 pieces fetched two to five times in a
// 16-node fan-out on a loaded machine). Taker d leaves d-1 pieces, modulo takeable, so
// takers pick distinct pieces while there are enough.
func ThiefSkip(d, takeable int) int {
	if d < 1 || takeable <= 1 {
		return 0
	}
	return (d - 1) % takeable
}

// BlockStart is the first piece of member k's block (see ShareOrder).
func BlockStart(k, numPieces, members int) int {
	return k * numPieces / members
}

// BlockOwner is the member whose block holds piece p: the largest k with
// BlockStart(k) <= p.
func BlockOwner(p, numPieces, members int) int {
	return ((p+1)*members - 1) / numPieces
}
