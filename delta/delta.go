// Package delta finds which blocks of a target file are already present in old files, the way the
// zsync 0.6.2 client does, and turns the answer into a Plan: for each target block, where a copy of
// it lies, or that it is missing and must be fetched.
//
// This is the step that makes `pkgsync update` cheap: a node holding v1 of a package rebuilds v2
// from the blocks the two share and downloads only the rest. It does no network I/O; the caller
// fetches Plan.Missing (or Plan.MissingIn for one BitTorrent piece) and writes the found blocks with
// Plan.Apply, or reads the whole target in order through Plan.Assemble, which writes the found
// blocks as it goes, so that one pass both builds the file and feeds its hash.
//
// # Algorithm
//
// The target is described by a zsync control file: per block of Blocksize bytes a weak rolling
// checksum (package rollsum, truncated to RsumBytes) and the first ChecksumBytes of its MD4, the
// last block zero-padded to a full block. Scan slides a window over every byte offset of each old
// file, treated as followed by zero bytes as zsync does so that a short tail still matches the
// padded last block, and keeps the rolling checksum of the window up to date in O(1) per byte.
//
// With SeqMatches == 2 (zsyncmake's choice for any file longer than one block, because its
// truncated sums are too short to trust alone) a block only counts when it and the next target
// block match at consecutive positions. The per-byte hot path therefore rolls two windows, [x,
// x+bs) and [x+bs, x+2bs), and probes a bit filter keyed by both weak sums; only a filter hit
// costs a lookup in an open-addressing table of target block pairs, and every weak hit is
// confirmed by the MD4 of both blocks before use. After a match the scan jumps past the matched
// blocks and first tests the block the target expects next, so an unchanged stretch costs one MD4
// per block and no rolling at all. When the run ends, the scan resumes one byte after the start
// of the run's last block rather than after its end (zsync's choice): in data that repeats itself,
// such as a run of zeros, the run may have followed the wrong alignment. The target's last block
// has no successor: like zsync, it is found as the end of a run whose previous block matched just
// before it, and in addition on its own (weak and strong sum), since the whole-file SHA-1 check
// catches the rare false match.
//
// Target blocks with the same weak and strong sums (runs of zeros, repeated records) form one
// group: a match of the content fills every target position of the group. Candidates per weak
// key are capped (Options.MaxCandidates) by distinct group, never by position, so a block that
// repeats a thousand times in the target still fills all thousand positions.
//
// Each old file is cut into chunks scanned in parallel; a chunk reads a little past its end so
// that a match or run crossing the boundary is not lost. Results are merged deterministically:
// the InPlace source, if any, comes first (its blocks at their own offsets need no copy, and when
// it holds every block the old files are not read at all), then the other sources by index, and
// within a source the lowest offset wins. The chunk layout does not depend on Options.Workers,
// so the Plan does not either.
package delta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/pkgsync/pkgsync/internal/byterange"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// Source is one old file that may hold blocks of the target.
type Source struct {
	Name string      // for errors and statistics, e.g. the old file's path
	R    io.ReaderAt // the data; read with large ReadAt calls, possibly from several goroutines at once
	Size int64       // bytes of R to use

	// InPlace marks the file being built (an OUT.part left by an interrupted run): each target
	// block is only checked at its own offset, and blocks found there need no copy, so Apply skips
	// them. At most one source may be InPlace, and Apply's dst must be that same file.
	InPlace bool
}

// Options tunes Scan. The zero value is ready to use.
type Options struct {
	// Workers is the number of goroutines scanning in parallel; 0 means runtime.NumCPU().
	Workers int

	// MaxCandidates caps the distinct target blocks (identical blocks count once) kept per
	// weak-sum key; 0 means DefaultMaxCandidates. zsync keeps them all; dropping the rest bounds
	// the strong sums computed per weak hit on a pathological target.
	MaxCandidates int

	// Speculate accepts a block that follows a run of matches on its weak sum alone, without
	// the strong sum (MD4), which is most of the cost of scanning an old file that is mostly
	// the new one. Only the first blocks of a run are confirmed zsync's way. A wrong block
	// then passes with the odds of a weak-sum collision (1 in 2^16 to 2^32 per run that ends
	// on an edit), so the caller must verify what it builds (the whole-file SHA-1 does) and,
	// when that fails and Plan.Speculated is not 0, scan again without Speculate.
	Speculate bool

	// OnProgress, if not nil, is called with the number of old-file bytes scanned since the
	// previous call. Calls never overlap, but come from the scanning goroutines, so keep it short.
	OnProgress func(n int64)

	// chunk is the size of the pieces a source is split into for parallel scanning; tests shrink
	// it to put boundaries everywhere. 0 means defaultChunk.
	chunk int64
}

// DefaultMaxCandidates is the default of Options.MaxCandidates.
const DefaultMaxCandidates = 32

const (
	// defaultChunk is how much of a source one worker scans at a time. It is independent of
	// Workers so that the Plan is too, and small enough to balance 2..16 workers on a package of
	// tens of MiB.
	defaultChunk = 4 << 20

	// window is how much of a source a worker reads per ReadAt call (plus two blocks of context).
	window = 1 << 20

	// maxBlocksize bounds the memory Scan takes per worker (a few block sizes); zsyncmake uses
	// 2048 or 4096.
	maxBlocksize = 16 << 20

	// noOff marks a group not found in the current source.
	noOff = math.MaxInt64
)

// Loc says where a copy of one target block is: in sources[Src] at byte offset Off. Src is -1
// when the block was not found.
type Loc struct {
	Src int
	Off int64
}

// Range is a byte range [Off, Off+Len) of the target file: the type httprange and bt use too.
type Range = byterange.Range

// Plan is the result of Scan: for each block of the target, where to copy it from.
type Plan struct {
	Blocksize int   // target block size
	Length    int64 // target length in bytes
	NumBlocks int   // number of target blocks, ceil(Length/Blocksize)
	Blocks    []Loc // per target block, its copy; Src == -1 when missing

	// Speculated counts the blocks accepted on their weak sum alone (Options.Speculate).
	Speculated int

	hashed int64 // bytes Scan hashed with MD4, for tests
}

// Scan looks for the blocks of the target described by f in srcs and returns the Plan. It reads
// the sources with ReadAt from several goroutines and does not change them. The error names the
// source and offset of a failed read, and wraps ctx.Err() when ctx ends first.
func Scan(ctx context.Context, f *zsyncfile.File, srcs []Source, opt Options) (*Plan, error) {
	if err := checkFile(f); err != nil {
		return nil, err
	}
	inPlace := -1
	for i, s := range srcs {
		if s.Size < 0 {
			return nil, fmt.Errorf("delta: source %d (%s): negative size %d", i, s.Name, s.Size)
		}
		if s.R == nil && s.Size > 0 {
			return nil, fmt.Errorf("delta: source %d (%s): no reader", i, s.Name)
		}
		if s.InPlace {
			if inPlace >= 0 {
				return nil, fmt.Errorf("delta: sources %d (%s) and %d (%s) are both InPlace; at most one may be",
					inPlace, srcs[inPlace].Name, i, s.Name)
			}
			inPlace = i
		}
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if opt.MaxCandidates <= 0 {
		opt.MaxCandidates = DefaultMaxCandidates
	}
	if opt.chunk <= 0 {
		opt.chunk = defaultChunk
	}

	n := len(f.Blocks)
	p := &Plan{Blocksize: f.Blocksize, Length: f.Length, NumBlocks: n, Blocks: make([]Loc, n)}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("delta: scan: %w", err)
	}
	if n == 0 {
		return p, nil
	}
	ix := newIndex(f, opt.MaxCandidates)
	s := &scan{
		ix:       ix,
		opt:      opt,
		groupSrc: make([]int32, ix.ngroups),
		groupOff: make([]int64, ix.ngroups),
		left:     ix.ngroups,
	}
	if opt.OnProgress != nil {
		s.progress = &progress{fn: opt.OnProgress}
	}
	for g := range s.groupSrc {
		s.groupSrc[g] = -1
	}

	// The InPlace source goes first: it is cheap (one MD4 per block), its blocks need no copy,
	// and when it already holds everything the old files need not be read at all.
	order := make([]int, 0, len(srcs))
	if inPlace >= 0 {
		order = append(order, inPlace)
		s.inPlace = make([]bool, n)
	}
	for i := range srcs {
		if i != inPlace {
			order = append(order, i)
		}
	}
	for _, si := range order {
		if s.left == 0 && si != inPlace {
			break
		}
		if err := s.source(ctx, si, srcs[si]); err != nil {
			return nil, err
		}
	}

	p.hashed = s.hashed
	p.Speculated = s.speculated
	for i := range p.Blocks {
		g := ix.group[i]
		switch {
		case s.inPlace != nil && s.inPlace[i]:
			p.Blocks[i] = Loc{Src: inPlace, Off: int64(i) * int64(f.Blocksize)}
		case s.groupSrc[g] >= 0:
			p.Blocks[i] = Loc{Src: int(s.groupSrc[g]), Off: s.groupOff[g]}
		default:
			p.Blocks[i] = Loc{Src: -1}
		}
	}
	return p, nil
}

// checkFile rejects control files Scan cannot work with, before anything is allocated from them.
func checkFile(f *zsyncfile.File) error {
	if f == nil {
		return errors.New("delta: nil control file")
	}
	name := cmp.Or(f.Filename, "control file")
	switch {
	case f.Blocksize <= 0 || f.Blocksize > maxBlocksize:
		return fmt.Errorf("delta: %s: block size %d out of range 1..%d", name, f.Blocksize, maxBlocksize)
	case f.Length < 0:
		return fmt.Errorf("delta: %s: negative length %d", name, f.Length)
	case f.SeqMatches != 1 && f.SeqMatches != 2:
		return fmt.Errorf("delta: %s: seq_matches %d, want 1 or 2", name, f.SeqMatches)
	case f.RsumBytes < 1 || f.RsumBytes > 4:
		return fmt.Errorf("delta: %s: rsum_bytes %d out of range 1..4", name, f.RsumBytes)
	case f.ChecksumBytes < 1 || f.ChecksumBytes > 16:
		return fmt.Errorf("delta: %s: checksum_bytes %d out of range 1..16", name, f.ChecksumBytes)
	}
	if want := zsyncfile.NumBlocks(f.Length, f.Blocksize); len(f.Blocks) != want {
		return fmt.Errorf("delta: %s: %d blocks in the table, want %d for %d bytes at block size %d",
			name, len(f.Blocks), want, f.Length, f.Blocksize)
	}
	return nil
}

// scan is the state of one Scan call across its sources.
type scan struct {
	ix       *index
	opt      Options
	progress *progress

	// Per group: the source and offset of its chosen copy, groupSrc -1 until found. Sources are
	// processed in priority order, so the first source to find a group keeps it.
	groupSrc []int32
	groupOff []int64
	left     int // groups not found yet

	inPlace []bool // per block: verified at its own offset in the InPlace source; nil without one

	bufs [][]byte   // one read buffer per worker, reused across sources
	weak [][]uint32 // one weak-sum array per worker

	hashed     int64 // bytes hashed with MD4 by all workers, for tests
	speculated int   // blocks accepted on their weak sum alone by all workers
}

// source scans one source with all workers and merges what it found.
func (s *scan) source(ctx context.Context, si int, src Source) error {
	ix := s.ix
	bs := int64(ix.bs)
	size := src.Size
	chunk := s.opt.chunk
	if src.InPlace {
		// Blocks only count at their own offsets; a block is checked by the chunk holding its start.
		size = min(size, ix.length)
		chunk = (chunk + bs - 1) / bs * bs
	}
	if size == 0 {
		return nil
	}
	nchunks := int((size + chunk - 1) / chunk)
	workers := min(s.opt.Workers, nchunks)
	for len(s.bufs) < workers {
		s.bufs = append(s.bufs, make([]byte, max(window, 8*ix.bs)+2*ix.bs))
		s.weak = append(s.weak, make([]uint32, batch+ix.bs))
	}

	offs := make([]int64, ix.ngroups)
	for g := range offs {
		offs[g] = noOff
	}
	wks := make([]*worker, workers)
	for w := range workers {
		wks[w] = &worker{ix: ix, src: src, offs: offs, inPlace: s.inPlace, progress: s.progress,
			buf: s.bufs[w], weak: s.weak[w], runLo: 1, runHi: 0, speculate: s.opt.Speculate}
	}
	err := parallel(ctx, wks, nchunks, func(wk *worker, k int) error {
		start := int64(k) * chunk
		end := min(start+chunk, size)
		if src.InPlace {
			return wk.inPlaceChunk(start, end)
		}
		return wk.scanChunk(start, end)
	})
	if err == nil && !src.InPlace {
		err = s.secondPass(ctx, wks, offs)
	}
	for _, wk := range wks {
		s.hashed += wk.hashed
		s.speculated += wk.speculated
	}
	if err != nil {
		return err
	}
	for g, off := range offs {
		if off != noOff && s.groupSrc[g] < 0 {
			s.groupSrc[g] = int32(si)
			s.groupOff[g] = off
			s.left--
		}
	}
	return nil
}

// secondPass is the scan's second pass over a source (see reroll.go), run when any group is
// still missing: it follows on the runs that crossed a chunk's end, and rolls again the
// stretches where the first pass followed blocks that it found elsewhere too.
func (s *scan) secondPass(ctx context.Context, wks []*worker, offs []int64) error {
	had := make([]bool, s.ix.ngroups)
	missing := false
	for g, off := range offs {
		had[g] = off != noOff || s.groupSrc[g] >= 0
		missing = missing || !had[g]
	}
	if !missing {
		return nil
	}
	var runs []followed
	var cuts []chain
	for _, wk := range wks {
		runs = append(runs, wk.runs...)
		cuts = append(cuts, wk.cut...)
		wk.had = had
	}
	slices.SortFunc(runs, func(a, b followed) int { return cmp.Compare(a.off, b.off) })
	st := repeats(runs, offs, func(g int32) bool { return s.groupSrc[g] >= 0 }, s.ix)
	return parallel(ctx, wks, len(cuts)+len(st), func(wk *worker, k int) error {
		if k < len(cuts) {
			return wk.followOn(cuts[k], runs)
		}
		return wk.rerollStretch(st[k-len(cuts)])
	})
}

// parallel runs job(wk, k) for k in [0, n) on the workers, each taking the next k when done,
// and returns the first error; an error cancels the context the workers look at.
func parallel(ctx context.Context, wks []*worker, n int, job func(wk *worker, k int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for _, wk := range wks {
		wk.ctx = ctx
		g.Go(func() error {
			for {
				k := next.Add(1) - 1
				if k >= int64(n) {
					return nil
				}
				if err := job(wk, int(k)); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// progress serialises the OnProgress callback.
type progress struct {
	mu sync.Mutex
	fn func(int64)
}

func (p *progress) add(n int64) {
	if p == nil || n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn(n)
}
