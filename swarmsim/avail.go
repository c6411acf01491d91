package swarmsim

// avail is one node's count of how many connected peers have each piece, kept so that the
// rarest wanted piece is found without a scan: the wanted pieces are stored in one array
// ordered by that count, each count's pieces contiguous (a bucket), and a count moves by one
// with one swap at a bucket's edge. Pieces the node does not want (it has them, or fetches
// them already) sit in a region before bucket 0, and their counts are kept all the same.
//
// order[0:start[0]] is the region of unwanted pieces; bucket l is order[start[l]:start[l+1]].
// Counts fit a byte: a node has at most 250 connections (Scenario.MaxConns).
type avail struct {
	cnt   []uint8
	order []uint16
	pos   []uint16
	start []uint16 // levels+2 entries
	out   []bool   // in the unwanted region
}

const maxLevel = 251

func newAvail(n int, unwanted func(p int) bool) *avail {
	a := &avail{cnt: make([]uint8, n), order: make([]uint16, n), pos: make([]uint16, n),
		start: make([]uint16, maxLevel+2), out: make([]bool, n)}
	i := 0
	for p := range n {
		if unwanted(p) {
			a.order[i], a.pos[p], a.out[p] = uint16(p), uint16(i), true
			i++
		}
	}
	nOut := i
	for p := range n {
		if !a.out[p] {
			a.order[i], a.pos[p] = uint16(p), uint16(i)
			i++
		}
	}
	a.start[0] = uint16(nOut)
	for l := 1; l < len(a.start); l++ {
		a.start[l] = uint16(n)
	}
	return a
}

func (a *avail) swap(i, j uint16) {
	pi, pj := a.order[i], a.order[j]
	a.order[i], a.order[j] = pj, pi
	a.pos[pi], a.pos[pj] = j, i
}

// inc counts one more peer with piece p.
func (a *avail) inc(p int) {
	l := a.cnt[p]
	a.cnt[p]++
	if a.out[p] {
		return
	}
	last := a.start[l+1] - 1
	a.swap(a.pos[p], last)
	a.start[l+1]--
}

// dec counts one peer fewer with piece p.
func (a *avail) dec(p int) {
	l := a.cnt[p]
	a.cnt[p]--
	if a.out[p] {
		return
	}
	first := a.start[l]
	a.swap(a.pos[p], first)
	a.start[l]++
}

// drop moves p to the unwanted region.
func (a *avail) drop(p int) {
	if a.out[p] {
		return
	}
	for l := int(a.cnt[p]); l >= 0; l-- {
		a.swap(a.pos[p], a.start[l])
		a.start[l]++
	}
	a.out[p] = true
}

// want moves p back among the wanted pieces, in the bucket of its count.
func (a *avail) want(p int) {
	if !a.out[p] {
		return
	}
	a.out[p] = false
	a.start[0]--
	a.swap(a.pos[p], a.start[0])
	for l := 0; l < int(a.cnt[p]); l++ {
		last := a.start[l+1] - 1
		a.swap(a.pos[p], last)
		a.start[l+1]--
	}
}

// unseen counts the wanted pieces no connected peer has.
func (a *avail) unseen() int { return int(a.start[1] - a.start[0]) }

// rarest returns a wanted piece with the smallest count of at least min, chosen in its
// bucket by r (any non-negative number), or -1.
func (a *avail) rarest(min int, r uint64) int {
	for l := min; l <= maxLevel; l++ {
		if lo, hi := a.start[l], a.start[l+1]; hi > lo {
			return int(a.order[lo+uint16(r%uint64(hi-lo))])
		}
	}
	return -1
}
