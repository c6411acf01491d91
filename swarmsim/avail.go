package swarmsim

import "math/bits"

// bitset is a set of pieces. A node's sets are a few hundred bytes, so that the sets of ten
// thousand nodes stay in the processor's cache: a HAVE fans out to a hundred peers or more,
// and every one of them records it.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(p int) bool { return b[p>>6]&(1<<(p&63)) != 0 }
func (b bitset) set(p int)      { b[p>>6] |= 1 << (p & 63) }
func (b bitset) clear(p int)    { b[p>>6] &^= 1 << (p & 63) }

// fill sets the first n pieces.
func (b bitset) fill(n int) {
	for i := range b {
		b[i] = ^uint64(0)
	}
	if r := n & 63; r != 0 {
		b[len(b)-1] = 1<<r - 1
	}
}

// wanted is the set of pieces a node may ask its peers for: some connected peer has it, the
// node does not, and it is not in flight. cand holds them; it returns how many.
func wanted(cand, avail, have, busy bitset) int {
	n := 0
	for i := range cand {
		cand[i] = avail[i] &^ have[i] &^ busy[i]
		n += bits.OnesCount64(cand[i])
	}
	return n
}

// unseenCount counts the pieces of [0, n) the node lacks, has not in flight, and no connected
// peer has: the only pieces the origin policy may pick while not stalled.
func unseenCount(avail, have, busy bitset, n int) int {
	c := 0
	for i := range avail {
		w := ^(avail[i] | have[i] | busy[i])
		if i == len(avail)-1 && n&63 != 0 {
			w &= 1<<(n&63) - 1
		}
		c += bits.OnesCount64(w)
	}
	return c
}

// nth returns the k-th (from 0) piece of b.
func nth(b bitset, k int) int {
	for i, w := range b {
		c := bits.OnesCount64(w)
		if k >= c {
			k -= c
			continue
		}
		for ; k > 0; k-- {
			w &= w - 1
		}
		return i<<6 | bits.TrailingZeros64(w)
	}
	return -1
}
