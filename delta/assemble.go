package delta

import (
	"fmt"
	"io"
)

// File is the target being built: the assembler writes found blocks into it and reads the
// missing ranges (which the caller's fetch writes) and the blocks an InPlace source holds back
// from it.
type File interface {
	io.ReaderAt
	io.WriterAt
}

// Assembler is an io.Reader of the target, in order, that builds the target as it is read: a
// found block is read from its source and written into dst on the way; a missing range is read
// from dst once wait says it is there; a block an InPlace source (dst itself) holds at its own
// offset is read from dst as it is.
//
// It exists so that one ordered pass both copies the reused data and feeds the verification hash:
// the whole-file SHA-1 is sequential, so reading the copy back afterwards would cost a second
// pass over the file, and the copy and the hash run in parallel when the hash reads through a
// pipeline (manifest.Hash does).
type Assembler struct {
	p    *Plan
	dst  File
	srcs []Source
	wait func(off, n int64) error
	pos  int64
	err  error

	write func(p []byte, off int64) error // see SetWriter
}

// SetWriter makes Read hand the copied ranges it returns to write, in order, each stretch of
// consecutive copied bytes in one call, instead of writing the found blocks into dst one by one:
// the caller can then write the target in large pieces, with O_DIRECT for instance. Ranges Read
// took from dst itself (the missing ranges the caller wrote there, the blocks an InPlace source
// holds in place) are not written again.
func (a *Assembler) SetWriter(write func(p []byte, off int64) error) {
	a.write = write
}

// Assemble returns an Assembler of the target from srcs (the sources given to Scan, in the same
// order) into dst. wait(off, n) must block until the caller has written the missing target
// range [off, off+n) into dst, or return an error that ends the read; nil means the missing
// ranges are already there. Bytes past a source's Size read as zeros, as Scan saw them.
func (p *Plan) Assemble(dst File, srcs []Source, wait func(off, n int64) error) *Assembler {
	return &Assembler{p: p, dst: dst, srcs: srcs, wait: wait}
}

// Read fills b with the next target bytes. It returns io.EOF at the end of the target; a failed
// read or write, or an error from wait, is returned as it is and again on every later call.
func (a *Assembler) Read(b []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	if a.pos >= a.p.Length {
		return 0, io.EOF
	}
	if a.p.Blocksize <= 0 {
		a.err = fmt.Errorf("delta: assemble: plan with block size %d", a.p.Blocksize)
		return 0, a.err
	}
	b = b[:min(int64(len(b)), a.p.Length-a.pos)]
	start := a.pos
	done := 0
	copied := -1 // start in b of the copied stretch not yet written, or -1
	flush := func(end int) error {
		if a.write == nil || copied < 0 {
			return nil
		}
		off := start + int64(copied)
		if err := a.write(b[copied:end], off); err != nil {
			return fmt.Errorf("delta: assemble: write target at offset %d (%d bytes): %w", off, end-copied, err)
		}
		copied = -1
		return nil
	}
	for done < len(b) {
		n, fromDst, err := a.segment(b[done:])
		if err == nil && fromDst {
			err = flush(done)
		} else if err == nil && copied < 0 {
			copied = done
		}
		done += n
		if err != nil {
			a.err = err
			return done, err
		}
	}
	if err := flush(done); err != nil {
		a.err = err
		return 0, err
	}
	return done, nil
}

// segment handles the longest stretch at a.pos, up to len(b) bytes, that comes from one place in
// one piece: a run of blocks contiguous in one source, a missing range, or an InPlace run.
// fromDst reports that the bytes were read from dst, where they are already.
func (a *Assembler) segment(b []byte) (n int, fromDst bool, err error) {
	p := a.p
	bs := int64(p.Blocksize)
	i := int(a.pos / bs)
	loc := Loc{Src: -1}
	if i < p.numBlocks() {
		loc = p.Blocks[i]
	}
	if loc.Src >= len(a.srcs) {
		return 0, false, fmt.Errorf("delta: assemble: block %d comes from source %d, but only %d sources were given", i, loc.Src, len(a.srcs))
	}
	inPlace := loc.Src >= 0 && a.srcs[loc.Src].InPlace && loc.Off == int64(i)*bs
	// srcOff is where a.pos is in the source: the block may be entered part way, after a short Read.
	srcOff := loc.Off + a.pos - int64(i)*bs
	end := a.pos + int64(len(b))
	next := (int64(i) + 1) * bs
	for j := i + 1; next < end; j++ {
		nl := Loc{Src: -1}
		if j < p.numBlocks() {
			nl = p.Blocks[j]
		}
		same := false
		switch {
		case loc.Src < 0:
			same = nl.Src < 0
		case inPlace:
			same = nl.Src == loc.Src && nl.Off == int64(j)*bs
		default:
			same = nl.Src == loc.Src && nl.Off == loc.Off+int64(j-i)*bs
		}
		if !same {
			break
		}
		next += bs
	}
	m := min(next, end) - a.pos
	seg := b[:m]
	switch {
	case loc.Src < 0:
		if a.wait != nil {
			if err := a.wait(a.pos, m); err != nil {
				return 0, false, err
			}
		}
		if err := readFull(a.dst, seg, a.pos); err != nil {
			return 0, false, fmt.Errorf("delta: assemble: reading the fetched range at offset %d (%d bytes) back: %w", a.pos, m, err)
		}
	case inPlace:
		if err := readFull(a.dst, seg, a.pos); err != nil {
			return 0, false, fmt.Errorf("delta: assemble: reading %s at offset %d (%d bytes): %w", a.srcs[loc.Src].Name, a.pos, m, err)
		}
	default:
		src := a.srcs[loc.Src]
		have := min(max(src.Size-srcOff, 0), m)
		if have > 0 {
			if err := readAt(src, seg[:have], srcOff); err != nil {
				return 0, false, fmt.Errorf("delta: assemble: %w", err)
			}
		}
		clear(seg[have:])
		if a.write != nil {
			break // Read hands the copied stretch to a.write
		}
		if _, err := a.dst.WriteAt(seg, a.pos); err != nil {
			return 0, false, fmt.Errorf("delta: assemble: write target at offset %d (%d bytes from %s at %d): %w", a.pos, m, src.Name, srcOff, err)
		}
	}
	a.pos += m
	return int(m), loc.Src < 0 || inPlace, nil
}

// readFull reads len(p) bytes of r at off; a short read is an error.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
