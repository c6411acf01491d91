package delta

import (
	"slices"
	"sync"
	"sync/atomic"
)

// finals is what Options.OnFinal needs across sources: the blocks of each group (a group's
// content, once found, fills all of them) and which groups were told already.
type finals struct {
	start  []int32 // blocks of group g: blocks[start[g]:start[g+1]]
	blocks []int32
	told   []bool // per group
	out    []Final
}

func newFinals(ix *index) *finals {
	f := &finals{start: make([]int32, ix.ngroups+1), blocks: make([]int32, ix.n), told: make([]bool, ix.ngroups)}
	for _, g := range ix.group {
		f.start[g+1]++
	}
	for g := range ix.ngroups {
		f.start[g+1] += f.start[g]
	}
	fill := slices.Clone(f.start[:ix.ngroups])
	for i, g := range ix.group {
		f.blocks[fill[g]] = int32(i)
		fill[g]++
	}
	return f
}

// tracker follows the chunks of one source that is not InPlace as they complete, and tells
// Options.OnFinal about the groups whose offset can no longer change. Chunks are handed out in
// order and a chunk starting at k*chunk records only offsets at or past it, so once chunks
// 0..K-1 are complete, an offset below K*chunk is the lowest this source will find.
type tracker struct {
	s     *scan
	si    int
	offs  []int64
	chunk int64

	mu       sync.Mutex
	lists    [][]int32 // per chunk: the groups whose offset it lowered
	complete []bool
	prefix   int // chunks [0, prefix) are complete
}

// done records that chunk k is complete, found being the groups it recorded, and tells the
// groups that became final.
func (t *tracker) done(k int, found []int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lists[k], t.complete[k] = found, true
	f := t.s.finals
	f.out = f.out[:0]
	for t.prefix < len(t.complete) && t.complete[t.prefix] {
		t.prefix++
		limit := int64(t.prefix) * t.chunk
		// A run crossing a chunk's end is followed past it, so the groups of the chunk before
		// the last complete one may have offsets that only became final now.
		for kk := max(t.prefix-2, 0); kk < t.prefix; kk++ {
			for _, g := range t.lists[kk] {
				if off := atomic.LoadInt64(&t.offs[g]); off < limit {
					t.tell(g, off)
				}
			}
		}
		if t.prefix >= 2 {
			t.lists[t.prefix-2] = nil
		}
	}
	t.flush()
}

// rest tells every group the source found that was not told yet; the source is fully scanned.
func (t *tracker) rest() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.finals.out = t.s.finals.out[:0]
	for g, off := range t.offs {
		if off != noOff {
			t.tell(int32(g), off)
		}
	}
	t.flush()
}

// tell queues the blocks of group g, found at off, unless the group was told or an earlier source
// holds it. Blocks verified in place keep their InPlace Loc and are not told.
func (t *tracker) tell(g int32, off int64) {
	s, f := t.s, t.s.finals
	if f.told[g] || s.groupSrc[g] >= 0 {
		return
	}
	f.told[g] = true
	for _, i := range f.blocks[f.start[g]:f.start[g+1]] {
		if s.inPlace != nil && s.inPlace[i] {
			continue
		}
		f.out = append(f.out, Final{Block: int(i), Loc: Loc{Src: t.si, Off: off}})
	}
}

func (t *tracker) flush() {
	f := t.s.finals
	if len(f.out) == 0 {
		return
	}
	slices.SortFunc(f.out, func(a, b Final) int { return a.Block - b.Block })
	t.s.opt.OnFinal(f.out)
}
