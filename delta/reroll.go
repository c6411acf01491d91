package delta

import (
	"cmp"
	"slices"
	"sync/atomic"
)

// The second pass.
//
// The first pass follows a run of matches a block at a time and never looks at the positions
// inside it. That is zsync's shortcut too, with one difference that costs blocks on real
// packages: zsync takes a block out of its hash table once found, so where the same content
// comes back (a file bundled twice in a tar, the same code in two bundles) it does not lock onto
// the blocks it already has and keeps rolling, finding the blocks that the new version holds at
// another alignment. The first pass cannot know, in parallel and independent of timing, what
// other chunks found. So after it, every stretch where it followed blocks that were found at a
// lower offset of the source, or in an earlier source, is rolled again here, one byte at a
// time, looking only for pairs with a block that the first pass did not find. What the second
// pass finds depends only on the first pass's result, so the Plan stays independent of the
// number of workers.

// stretch is a range of source offsets [lo, hi) whose windows the second pass looks at.
type stretch struct{ lo, hi int64 }

// repeats returns the stretches of the runs the first pass followed (in order of offset) whose
// blocks had been found elsewhere before: at a lower offset of this source, or in an earlier
// source (known). They come merged and in order.
func repeats(runs []followed, offs []int64, known func(g int32) bool, ix *index) []stretch {
	bs := int64(ix.bs)
	var out []stretch
	for _, r := range runs {
		for i := range int64(r.n) {
			at := r.off + i*bs
			g := ix.group[int64(r.blk)+i]
			if offs[g] >= at && !known(g) {
				continue // this block's copy is here: the first pass was right to follow it
			}
			if n := len(out); n > 0 && out[n-1].hi == at {
				out[n-1].hi = at + bs
			} else {
				out = append(out, stretch{at, at + bs})
			}
		}
	}
	// Runs of neighbouring chunks may overlap by a block: sort and merge.
	slices.SortFunc(out, func(a, b stretch) int { return cmp.Compare(a.lo, b.lo) })
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && merged[n-1].hi >= s.lo {
			merged[n-1].hi = max(merged[n-1].hi, s.hi)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// followOn follows a run that the first pass left at a chunk's end, block by block, until the
// target's next block no longer comes next or the run meets one that the first pass followed at
// the same alignment (from there on it is that run).
func (w *worker) followOn(c chain, runs []followed) error {
	ix := w.ix
	bs := int64(ix.bs)
	w.start, w.base, w.end = c.at, c.at, c.at
	w.dataEnd = w.src.Size + int64(ix.seq)*bs
	w.chunkEnd, w.reported = 0, 0
	w.pairAt, w.weakAt = -1, -1
	for ; c.blk < ix.n && c.at < w.src.Size; c.at, c.blk = c.at+bs, c.blk+1 {
		if followedAt(runs, c, bs) {
			return nil
		}
		if err := w.ensure(c.at, bs); err != nil {
			return err
		}
		if err := w.tick(c.at, ix.bs); err != nil {
			return err
		}
		if !w.chainStep(c.at, c.blk, w.weakOf(c.at)) {
			return nil
		}
	}
	return nil
}

// followedAt reports whether one of runs (in order of offset) matched target block c.blk at
// offset c.at.
func followedAt(runs []followed, c chain, bs int64) bool {
	// Runs start in order; the ones that can hold c.at start at most at c.at.
	i, _ := slices.BinarySearchFunc(runs, c.at+1, func(r followed, at int64) int { return cmp.Compare(r.off, at) })
	for j := i - 1; j >= 0 && j >= i-4; j-- {
		r := runs[j]
		d := c.at - r.off
		if d%bs == 0 && d/bs < int64(r.n) && int64(r.blk)+d/bs == int64(c.blk) {
			return true
		}
	}
	return false
}

// chain is a match the second pass follows: target block blk is expected at offset at.
type chain struct {
	at  int64
	blk int
}

// rerollStretch looks at every window starting in [s.lo, s.hi): a pair (or, with SeqMatches 1,
// a block) with a block the first pass did not find is confirmed by its strong sums, and every
// match is followed block by block for as long as the target's next block comes next, past
// s.hi if need be. A window of one byte value repeated, like its predecessor, is passed over:
// it holds the same content.
func (w *worker) rerollStretch(s stretch) error {
	ix := w.ix
	bs := int64(ix.bs)
	span := int64(ix.seq) * bs
	w.start, w.base, w.end = s.lo, s.lo, s.lo
	w.dataEnd = w.src.Size + span
	w.chunkEnd, w.reported = 0, 0 // the first pass reported these bytes
	w.pairAt, w.weakAt = -1, -1
	w.chains = w.chains[:0]
	var uniLo, uniHi int64 // [uniLo, uniHi) is known to hold one byte value
	hi := min(s.hi, w.src.Size)
	for x := s.lo; x < hi; {
		if err := w.ensure(x, span+1); err != nil {
			return err
		}
		lim := min(hi, w.end-span, x+batch)
		if err := w.tick(x, int(lim-x)); err != nil {
			return err
		}
		i, count := int(x-w.base), int(lim-x)
		weak := w.weak[:count+(ix.seq-1)*int(bs)]
		weakRun(w.buf[i:w.end-w.base], int(bs), ix.mask, weak)
		for p := 0; p < count; {
			// Chains are checked in order of offset, so the search for hits stops at the next.
			stop := count
			if len(w.chains) > 0 {
				stop = int(min(int64(count), w.chains[0].at-x))
			}
			var hit int
			if ix.seq == 2 {
				hit = ix.findPair(weak, p, stop, int(bs))
			} else {
				hit = ix.findOne(weak, p, stop)
			}
			if hit < stop {
				at := x + int64(hit)
				if w.uniform(at, &uniLo, &uniHi, span) {
					// So are the windows after it up to uniHi-span: go past them at once, up
					// to the next chain's position at most.
					p = max(hit+1, int(min(uniHi-span+1-x, int64(stop))))
					continue
				}
				key := uint64(weak[hit])
				if ix.seq == 2 {
					key = key<<32 | uint64(weak[hit+int(bs)])
				}
				w.probeAgain(at, key)
				p = hit + 1
				continue
			}
			if stop == count {
				break
			}
			at := x + int64(stop)
			for len(w.chains) > 0 && w.chains[0].at == at {
				c := w.chains[0]
				w.chains = w.chains[1:]
				if w.chainStep(at, c.blk, weak[stop]) {
					w.addChain(at+bs, c.blk+1)
				}
			}
			p = stop // the window at stop is still to be looked up
		}
		x = lim
	}
	// Follow what is still matching past the stretch.
	for len(w.chains) > 0 {
		c := w.chains[0]
		w.chains = w.chains[1:]
		if err := w.ensure(c.at, bs); err != nil {
			return err
		}
		if err := w.tick(c.at, ix.bs); err != nil {
			return err
		}
		if w.chainStep(c.at, c.blk, w.weakOf(c.at)) {
			w.addChain(c.at+bs, c.blk+1)
		}
	}
	return nil
}

// chainStep reports whether target block blk is at offset at, where the window's weak sum is
// weak, for a chain: a block found already, by the first pass or at a lower offset by this
// one, is taken on its weak sum (the chain only has to get past it to reach blocks not found
// yet, and recording it here would change nothing); any other is confirmed by its strong sum
// and recorded. In content that repeats (a record written many times) the same few blocks
// come back at every repetition, and would cost an MD4 each time.
func (w *worker) chainStep(at int64, blk int, weak uint32) bool {
	ix := w.ix
	if weak != ix.weak[blk] {
		return false
	}
	g := ix.group[blk]
	if w.had[g] || atomic.LoadInt64(&w.offs[g]) <= at {
		return true
	}
	if w.strongAt(at) != ix.strong[blk] {
		return false
	}
	w.record(g, at)
	return true
}

// uniform reports whether the windows at x-1 and x hold one byte value only: then x's content
// is x-1's, looked at already. [*lo, *hi) is the stretch of one byte value that holds x-1, as
// far as the buffer shows it.
func (w *worker) uniform(x int64, lo, hi *int64, span int64) bool {
	if x <= w.start || x-1 < w.base {
		return false
	}
	c := w.buf[x-1-w.base]
	if x-1 < *lo || x-1 >= *hi {
		*lo, *hi = x-1, x-1
	}
	for *hi < w.end && w.buf[*hi-w.base] == c {
		*hi++
	}
	return *hi >= x+span
}

// probeAgain is probe for the second pass: it confirms only candidates with a block the first
// pass did not find, records every confirmed match (not only the first), and follows each as a
// chain instead of jumping past it.
func (w *worker) probeAgain(x int64, key uint64) {
	ix := w.ix
	bs := int64(ix.bs)
	for _, rep := range ix.lookup(key) {
		r := int(rep)
		if w.had[ix.group[r]] && (ix.seq == 1 || w.had[ix.group[r+1]]) {
			continue
		}
		if w.strongAt(x) != ix.strong[r] {
			continue
		}
		if ix.seq == 2 && w.strongAt(x+bs) != ix.strong[r+1] {
			continue
		}
		w.record(ix.group[r], x)
		if ix.seq == 2 {
			w.record(ix.group[r+1], x+bs)
		}
		w.addChain(x+int64(ix.seq)*bs, r+ix.seq)
	}
	if key>>32 == ix.lastW && !w.had[ix.group[ix.n-1]] && w.strongAt(x) == ix.strong[ix.n-1] {
		w.record(ix.group[ix.n-1], x)
	}
}

// addChain adds a chain expecting target block blk at offset at, keeping w.chains in order of
// offset and free of duplicates; a chain past the target's last block or the data ends.
func (w *worker) addChain(at int64, blk int) {
	if blk >= w.ix.n || at >= w.src.Size {
		return
	}
	c := chain{at, blk}
	i, found := slices.BinarySearchFunc(w.chains, c, func(a, b chain) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.blk - b.blk
	})
	if !found {
		w.chains = slices.Insert(w.chains, i, c)
	}
}
