package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/pkgsync/pkgsync/internal/md4"
	"github.com/pkgsync/pkgsync/rollsum"
)

// checkEvery is how many bytes a worker scans between two looks at ctx.
const checkEvery = 64 << 10

// batch is how many positions roll handles per pass of weakRun: large enough to make the pass's
// setup (one block sum) cheap, small enough that its weak sums stay in the L2 cache.
const batch = 32 << 10

// worker scans chunks of one source with its own read buffer.
type worker struct {
	ix       *index
	src      Source
	offs     []int64 // per group: lowest offset found in src, shared, lowered atomically
	inPlace  []bool  // per block: found at its own offset (InPlace source only)
	ctx      context.Context
	progress *progress

	// buf[0:end-base] holds the source from offset base, zero-extended past src.Size as zsync
	// pads its input, so that windows near the end see the padded last block.
	buf       []byte
	weak      []uint32 // weak sums of the positions of one batch, and one block more
	base, end int64
	start     int64 // the chunk never needs bytes before start
	dataEnd   int64 // nor at or past dataEnd
	chunkEnd  int64 // end of the chunk's own positions, for progress
	reported  int64 // positions up to here were reported to progress
	unchecked int   // bytes scanned since the last look at ctx
	pad       []byte

	// After a run of matches ends, positions before skipUntil whose weak sum is skipWeak (the
	// run's last block's) are not looked up.
	skipUntil int64
	skipWeak  uint32

	// [runLo, runHi) is known to hold only runByte, and runSum is the strong sum of a block
	// of it; runLo > runHi when no run is known.
	runLo, runHi int64
	runByte      byte
	runSum       [16]byte

	hashed int64 // bytes hashed with MD4, for tests

	speculate  bool // Options.Speculate
	speculated int  // blocks accepted on their weak sum alone
	// weakAt and weakSum are the block whose weak sum weakOf computed last; weakAt is -1 when
	// none is kept.
	weakAt  int64
	weakSum uint32

	// While following a run of matches, blocks are hashed two at a time (md4.AppendBlockSums
	// interleaves two MD4s, about 1.5x the speed of one): the second sum waits here for the
	// next step. pairAt is -1 when nothing waits.
	pairAt  int64
	pairSum [16]byte
	pairBuf [][16]byte

	// runs lists the runs of matches this worker followed, skipping the positions inside them;
	// cur is the run being followed (n == 0 for none). The second pass (reroll.go) rolls those
	// positions again where a run followed blocks that were found elsewhere too.
	runs []followed
	cur  followed

	// For the second pass: per group, whether the first pass found it; and the matches being
	// followed, in order of offset.
	had    []bool
	chains []chain

	// cut lists where runs crossing the end of a chunk were left.
	cut []chain
}

// followed is a stretch of a source that matched consecutive target blocks: n blocks from target
// block blk at offset off.
type followed struct {
	off int64
	blk int32
	n   int32
}

// scanChunk finds target blocks starting at offsets [s, e) of the source, zsync's way. A run of
// matched blocks that crosses e is followed up to one block past e, so that its last block (which
// has no successor to pair with in the next chunk) is not lost.
func (w *worker) scanChunk(s, e int64) error {
	ix := w.ix
	bs := int64(ix.bs)
	span := int64(ix.seq) * bs
	w.start, w.base, w.end = s, s, s
	w.skipUntil = s
	w.dataEnd = min(e+2*bs, w.src.Size+span)
	w.chunkEnd, w.reported = e, s
	w.unchecked = checkEvery
	contEnd := min(e+bs, w.src.Size)
	w.pairAt, w.weakAt = -1, -1
	x := s
	next := -1 // target block expected at x after a match, or -1
	for {
		if next >= 0 && x < contEnd {
			if err := w.ensure(x, bs); err != nil {
				return err
			}
			if err := w.tick(x, ix.bs); err != nil {
				return err
			}
			if w.follows(x, next) {
				w.record(ix.group[next], x)
				w.cur.n++
				if next++; next == ix.n {
					next = -1
				}
				x += bs
				continue
			}
			// The run has ended. Resume rolling just after the start of its last block, not at
			// x: where the old data repeats itself (a run of zeros) the run may have followed
			// a wrong alignment, and the true start of the next block lies inside that block.
			// zsync resumes at x and loses such a block. Up to x, windows with the weak sum of
			// that last block are passed over: in a run of zeros they are all the same block
			// again, and matching them would cost two MD4s per byte.
			w.skipUntil, w.skipWeak = x, ix.weak[next-1]
			x = x - bs + 1
			next = -1
		}
		if next >= 0 {
			// The run goes on past the chunk's end. The next chunk may have locked onto another
			// alignment of the same content there; the second pass follows this run on.
			w.cut = append(w.cut, chain{x, next})
		}
		next = -1
		w.endRun()
		if x >= e {
			break
		}
		var err error
		if x, next, err = w.roll(x, e); err != nil {
			return err
		}
	}
	w.report(e)
	return nil
}

// roll slides the window from x one byte at a time until a confirmed match or e. After a match
// it returns the offset just past the matched blocks and the target block expected there (-1 for
// none); otherwise e and -1. It works in batches: weakRun computes the weak sums of up to batch
// positions, then findPair or findOne looks for filter hits among them.
func (w *worker) roll(x, e int64) (int64, int, error) {
	ix := w.ix
	bs := ix.bs
	span := int64(ix.seq * bs)
	for x < e {
		if x < w.base || x >= w.end-span {
			if err := w.refill(x); err != nil {
				return x, -1, err
			}
			if x < w.base || x >= w.end-span {
				return x, -1, fmt.Errorf("delta: scanning %s at offset %d: buffer holds too little data", w.src.Name, x)
			}
		}
		// Positions [x, lim) have their windows, [p, p+span), in the buffer.
		lim := min(e, w.end-span, x+batch)
		if err := w.tick(x, int(lim-x)); err != nil {
			return x, -1, err
		}
		i, count := int(x-w.base), int(lim-x)
		weak := w.weak[:count+(ix.seq-1)*bs]
		weakRun(w.buf[i:w.end-w.base], bs, ix.mask, weak)
		for p := 0; p < count; p++ {
			var key uint64
			if ix.seq == 2 {
				if p = ix.findPair(weak, p, count, bs); p == count {
					break
				}
				key = uint64(weak[p])<<32 | uint64(weak[p+bs])
			} else {
				if p = ix.findOne(weak, p, count); p == count {
					break
				}
				key = uint64(weak[p])
			}
			if x+int64(p) < w.skipUntil && weak[p] == w.skipWeak {
				continue
			}
			if rep, ok := w.probe(x+int64(p), key); ok {
				next := rep + ix.seq
				if next >= ix.n {
					next = -1
				}
				return x + int64(p) + span, next, nil
			}
		}
		x = lim
	}
	return x, -1, nil
}

// probe looks key, the key of position x, up and confirms candidates with their strong sums. On
// a match it records the matched blocks' groups and returns the first block of the match. A lone
// match of the last block is recorded but not returned: it does not move the scan.
func (w *worker) probe(x int64, key uint64) (int, bool) {
	ix := w.ix
	bs := int64(ix.bs)
	var s0, s1 [16]byte
	have0, have1 := false, false
	for _, rep := range ix.lookup(key) {
		if !have0 {
			s0, have0 = w.strongAt(x), true
		}
		if s0 != ix.strong[rep] {
			continue
		}
		if ix.seq == 2 {
			if !have1 {
				s1, have1 = w.strongAt(x+bs), true
			}
			if s1 != ix.strong[rep+1] {
				continue
			}
			w.record(ix.group[rep+1], x+bs)
		}
		w.record(ix.group[rep], x)
		w.endRun()
		w.cur = followed{off: x, blk: rep, n: int32(ix.seq)}
		return int(rep), true
	}
	if key>>32 == ix.lastW {
		last := ix.n - 1
		g := ix.group[last]
		if atomic.LoadInt64(&w.offs[g]) > x {
			if !have0 {
				s0 = w.strongAt(x)
			}
			if s0 == ix.strong[last] {
				w.record(g, x)
			}
		}
	}
	return 0, false
}

// endRun files the run being followed, if any, in w.runs.
func (w *worker) endRun() {
	if w.cur.n > 0 {
		w.runs = append(w.runs, w.cur)
		w.cur = followed{}
	}
}

// strongAt returns the truncated MD4 of the block at x, which must be in the buffer.
//
// Runs of one byte value (zeros, mostly) get special care: every window inside such a run has
// the same content, so its MD4 is computed once and reused while the run lasts. Without this a
// weak-sum collision with the run's windows, which zsync's short sums make likely enough, would
// cost one MD4 per byte of the run.
func (w *worker) strongAt(x int64) [16]byte {
	bs := int64(w.ix.bs)
	if x >= w.runLo && x <= w.runHi {
		// Extend the known run up to the window's end, if the bytes agree.
		for w.runHi < x+bs && w.buf[w.runHi-w.base] == w.runByte {
			w.runHi++
		}
		if w.runHi >= x+bs {
			return w.runSum
		}
	}
	i := int(x - w.base)
	blk := w.buf[i : i+int(bs)]
	w.hashed += bs
	sum := md4.Sum(blk)
	clear(sum[w.ix.csum:])
	if blk[0] == blk[bs-1] && bytes.Equal(blk[1:], blk[:bs-1]) {
		w.runLo, w.runHi, w.runByte, w.runSum = x, x+bs, blk[0], sum
	}
	return sum
}

// follows reports whether the block at x is target block next, which a run of matches expects
// there: by its strong sum, or with Options.Speculate by its weak sum alone.
func (w *worker) follows(x int64, next int) bool {
	ix := w.ix
	if w.speculate {
		bs := int64(ix.bs)
		if w.weakOf(x) != ix.weak[next] {
			return false
		}
		// Weak sums are as short as 16 bits: one alone lets a changed block through once in
		// 65,536 run ends, and a package with thousands of small edits has that many. The next
		// block's must agree too (a shifted or changed stretch breaks both); where it does not
		// (the run's last block) or is not in the buffer, the strong sum decides.
		if next+1 < ix.n && x+2*bs <= w.end && w.weakOf(x+bs) == ix.weak[next+1] {
			w.speculated++
			return true
		}
	}
	return w.followSum(x) == ix.strong[next]
}

// weakOf returns the masked weak sum of the block at x, which must be in the buffer. The last
// one computed is kept: following a run, the block looked ahead at is the next one followed.
func (w *worker) weakOf(x int64) uint32 {
	if x == w.weakAt {
		return w.weakSum
	}
	i := int(x - w.base)
	w.weakAt, w.weakSum = x, rollsum.Sum32(w.buf[i:i+w.ix.bs])&w.ix.mask
	return w.weakSum
}

// followSum is strongAt for the block expected next in a run of matches: it hashes this block
// and the one after it together when both are in the buffer, and keeps the second sum for the
// next step, which in an unchanged file is the next block checked.
func (w *worker) followSum(x int64) [16]byte {
	if x == w.pairAt {
		w.pairAt = -1
		return w.pairSum
	}
	bs := int64(w.ix.bs)
	if x+2*bs > w.end || x < w.base || (x >= w.runLo && x <= w.runHi) {
		return w.strongAt(x)
	}
	i := int(x - w.base)
	w.pairBuf = md4.AppendBlockSums(w.pairBuf[:0], w.buf[i:i+2*int(bs)], int(bs))
	w.hashed += 2 * bs
	s0, s1 := w.pairBuf[0], w.pairBuf[1]
	clear(s0[w.ix.csum:])
	clear(s1[w.ix.csum:])
	w.pairAt, w.pairSum = x+bs, s1
	return s0
}

// record notes that group g's content is at offset off of the source, keeping the lowest offset.
func (w *worker) record(g int32, off int64) {
	p := &w.offs[g]
	for {
		cur := atomic.LoadInt64(p)
		if cur <= off || atomic.CompareAndSwapInt64(p, cur, off) {
			return
		}
	}
}

// ensure makes the buffer hold [x, x+need).
func (w *worker) ensure(x, need int64) error {
	if x >= w.base && x+need <= w.end {
		return nil
	}
	if err := w.refill(x); err != nil {
		return err
	}
	if x+need > w.end {
		return fmt.Errorf("delta: scanning %s at offset %d: buffer holds too little data", w.src.Name, x)
	}
	return nil
}

// refill moves the buffer to hold x and as much after it as fits, up to dataEnd, keeping what it
// already holds. It keeps one block before x too, for the step back after a run of matches.
func (w *worker) refill(x int64) error {
	w.report(x)
	base := max(x-int64(w.ix.bs), w.start)
	keep := 0
	if base >= w.base && base < w.end {
		keep = copy(w.buf, w.buf[base-w.base:w.end-w.base])
	}
	w.base = base
	to := base + min(int64(len(w.buf)), w.dataEnd-base)
	from := base + int64(keep)
	if stop := min(to, w.src.Size); stop > from {
		if err := readAt(w.src, w.buf[from-base:stop-base], from); err != nil {
			return err
		}
		from = stop
	}
	if to > from {
		clear(w.buf[from-base : to-base])
	}
	w.end = to
	return nil
}

// inPlaceChunk checks each target block starting in [s, e) at its own offset; s is a multiple of
// the block size and e is one too or the end of the usable data.
func (w *worker) inPlaceChunk(s, e int64) error {
	ix := w.ix
	bs := int64(ix.bs)
	w.chunkEnd, w.reported = e, s
	w.unchecked = checkEvery
	win := int64(len(w.buf)) / bs * bs
	for off := s; off < e; {
		if err := w.tick(off, int(checkEvery)); err != nil {
			return err
		}
		end := min(off+win, e)
		if err := readAt(w.src, w.buf[:end-off], off); err != nil {
			return err
		}
		for b := off; b < end; b += bs {
			l := min(bs, ix.length-b)
			if b+l > end {
				break // the block's tail is past the data: the source is shorter than the target
			}
			blk := w.buf[b-off : b-off+l]
			if l < bs {
				if w.pad == nil {
					w.pad = make([]byte, bs)
				}
				clear(w.pad[copy(w.pad, blk):])
				blk = w.pad
			}
			i := int(b / bs)
			if rollsum.Sum32(blk)&ix.mask != ix.weak[i] {
				continue
			}
			sum := md4.Sum(blk)
			w.hashed += bs
			clear(sum[ix.csum:])
			if sum == ix.strong[i] {
				w.inPlace[i] = true
				w.record(ix.group[i], b)
			}
		}
		w.report(end)
		off = end
	}
	return nil
}

// tick counts n scanned bytes and looks at ctx once per checkEvery bytes.
func (w *worker) tick(x int64, n int) error {
	w.unchecked += n
	if w.unchecked < checkEvery {
		return nil
	}
	w.unchecked = 0
	select {
	case <-w.ctx.Done():
		return fmt.Errorf("delta: scanning %s at offset %d: %w", w.src.Name, x, w.ctx.Err())
	default:
		return nil
	}
}

// report passes the positions scanned since the last report, up to pos, to the progress callback.
func (w *worker) report(pos int64) {
	pos = min(pos, w.chunkEnd)
	if pos > w.reported {
		w.progress.add(pos - w.reported)
		w.reported = pos
	}
}

// readAt fills p from src at off, naming the source and range in the error.
func readAt(src Source, p []byte, off int64) error {
	n, err := src.R.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("delta: read %s at offset %d (%d bytes, got %d): %w", src.Name, off, len(p), n, err)
}
