package delta

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// maxRun caps the bytes Apply copies with one read and one write.
const maxRun = 4 << 20

// blockRange returns the target bytes of block i, the last block clipped to Length.
func (p *Plan) blockRange(i int) (off, n int64) {
	bs := int64(p.Blocksize)
	off = int64(i) * bs
	return off, min(bs, p.Length-off)
}

// numBlocks returns the blocks the Plan describes, guarding against a hand-made Plan whose
// Blocks and Length disagree.
func (p *Plan) numBlocks() int {
	return min(len(p.Blocks), zsyncfile.NumBlocks(p.Length, p.Blocksize))
}

// blocksIn returns the blocks overlapping [off, off+n) clipped to the target, as [first, last],
// with the clipped range [lo, hi); ok is false when nothing of the target is inside.
func (p *Plan) blocksIn(off, n int64) (first, last int, lo, hi int64, ok bool) {
	if n <= 0 || off >= p.Length || p.Blocksize <= 0 {
		return 0, 0, 0, 0, false
	}
	if off < 0 {
		end := off + n // no overflow: off < 0 < n
		if end <= 0 {
			return 0, 0, 0, 0, false
		}
		off, n = 0, end
	}
	lo, hi = off, p.Length
	if n < p.Length-off {
		hi = off + n
	}
	bs := int64(p.Blocksize)
	return int(lo / bs), int((hi - 1) / bs), lo, hi, true
}

// found reports whether block i has a copy; blocks a hand-made Plan lacks count as missing.
func (p *Plan) found(i int) bool { return i < len(p.Blocks) && p.Blocks[i].Src >= 0 }

// Found reports whether target block i has a copy.
func (p *Plan) Found(i int) bool { return i >= 0 && i < p.numBlocks() && p.Blocks[i].Src >= 0 }

// Missing returns the byte ranges of the target that were not found, in order, adjacent blocks
// merged, the last block clipped to Length.
func (p *Plan) Missing() []Range { return p.MissingIn(0, p.Length) }

// MissingIn returns the missing ranges clipped to [off, off+n): what to fetch to complete that
// part of the target, for example one BitTorrent piece.
func (p *Plan) MissingIn(off, n int64) []Range {
	first, last, lo, hi, ok := p.blocksIn(off, n)
	if !ok {
		return nil
	}
	var out []Range
	for i := first; i <= last; i++ {
		if p.found(i) {
			continue
		}
		b, l := p.blockRange(i)
		start, end := max(b, lo), min(b+l, hi)
		if k := len(out) - 1; k >= 0 && out[k].Off+out[k].Len == start {
			out[k].Len += end - start
		} else {
			out = append(out, Range{Off: start, Len: end - start})
		}
	}
	return out
}

// Have reports whether every target block overlapping [off, off+n) was found, so that the range
// can be filled by Apply alone. The part of the range outside the target is ignored.
func (p *Plan) Have(off, n int64) bool {
	first, last, _, _, ok := p.blocksIn(off, n)
	if !ok {
		return true
	}
	for i := first; i <= last; i++ {
		if !p.found(i) {
			return false
		}
	}
	return true
}

// ReusedBytes returns the bytes of the target that were found.
func (p *Plan) ReusedBytes() int64 {
	var n int64
	for i, l := range p.Blocks[:p.numBlocks()] {
		if l.Src >= 0 {
			_, b := p.blockRange(i)
			n += b
		}
	}
	return n
}

// ReusedFrom returns the bytes of the target whose copy is in sources[src], for statistics.
func (p *Plan) ReusedFrom(src int) int64 {
	var n int64
	for i, l := range p.Blocks[:p.numBlocks()] {
		if l.Src >= 0 && l.Src == src {
			_, b := p.blockRange(i)
			n += b
		}
	}
	return n
}

// MissingBytes returns the bytes of the target that were not found.
func (p *Plan) MissingBytes() int64 { return p.Length - p.ReusedBytes() }

// run is a stretch of target blocks whose copies are contiguous in one source.
type run struct {
	src    int
	off    int64 // in the source
	dstOff int64 // in the target
	n      int64
}

// runs groups the blocks Apply must copy into runs of at most maxRun bytes, skipping blocks that
// an InPlace source already holds at their own offset.
func (p *Plan) runs(srcs []Source) ([]run, error) {
	bs := int64(p.Blocksize)
	per := max(maxRun/bs, 1)
	var out []run
	var cur run
	var count int64
	flush := func() {
		if cur.n > 0 {
			out = append(out, cur)
		}
		cur, count = run{}, 0
	}
	for i, l := range p.Blocks[:p.numBlocks()] {
		if l.Src < 0 {
			flush()
			continue
		}
		if l.Src >= len(srcs) {
			return nil, fmt.Errorf("delta: apply: block %d comes from source %d, but only %d sources were given", i, l.Src, len(srcs))
		}
		dstOff, n := p.blockRange(i)
		if srcs[l.Src].InPlace && l.Off == dstOff {
			flush()
			continue
		}
		if cur.n > 0 && (l.Src != cur.src || l.Off != cur.off+count*bs || count == per) {
			flush()
		}
		if cur.n == 0 {
			cur = run{src: l.Src, off: l.Off, dstOff: dstOff}
		}
		cur.n += n
		count++
	}
	flush()
	return out, nil
}

// Apply copies every found block into dst at its target offset, reading runs of consecutive
// blocks from one source with one large ReadAt, several runs in parallel. Blocks that the InPlace
// source holds at their own offset are skipped: dst must be that file. Bytes past a source's Size
// read as zeros, as Scan saw them. srcs must be the sources given to Scan, in the same order.
func (p *Plan) Apply(ctx context.Context, dst io.WriterAt, srcs []Source) error {
	runs, err := p.runs(srcs)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return nil
	}
	var longest int64
	for _, r := range runs {
		longest = max(longest, r.n)
	}
	workers := min(max(runtime.NumCPU(), 2), 8, len(runs))

	g, ctx := errgroup.WithContext(ctx)
	jobs := make(chan run)
	for range workers {
		g.Go(func() error {
			buf := make([]byte, longest)
			for r := range jobs {
				if err := copyRun(srcs[r.src], dst, r, buf[:r.n]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var sendErr error
send:
	for _, r := range runs {
		select {
		case jobs <- r:
		case <-ctx.Done():
			sendErr = ctx.Err()
			break send
		}
	}
	close(jobs)
	if err := g.Wait(); err != nil {
		return err
	}
	if sendErr != nil {
		return fmt.Errorf("delta: apply: %w", sendErr)
	}
	return nil
}

// copyRun reads one run from its source (zeros past the source's end) and writes it to dst.
func copyRun(src Source, dst io.WriterAt, r run, buf []byte) error {
	have := min(max(src.Size-r.off, 0), r.n)
	if have == r.n && copyFileRange(src.R, dst, r.off, r.dstOff, r.n) {
		return nil
	}
	if have > 0 {
		if err := readAt(src, buf[:have], r.off); err != nil {
			return fmt.Errorf("delta: apply: %w", err)
		}
	}
	clear(buf[have:])
	if _, err := dst.WriteAt(buf, r.dstOff); err != nil {
		return fmt.Errorf("delta: apply: write target at offset %d (%d bytes from %s at %d): %w",
			r.dstOff, len(buf), src.Name, r.off, err)
	}
	return nil
}

// Empty returns the plan for a target of length bytes when there is nothing to scan: one block
// covering the whole target, not found, so every byte is missing.
func Empty(length int64) *Plan {
	return &Plan{Blocksize: int(max(length, 1)), Length: length, NumBlocks: 1, Blocks: []Loc{{Src: -1}}}
}
