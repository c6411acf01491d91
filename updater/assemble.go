package updater

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"unsafe"

	"github.com/pkgsync/pkgsync/delta"
	"github.com/pkgsync/pkgsync/internal/directio"
	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/manifest"
)

// assemble builds OUT.part over HTTP in one ordered pass and verifies it on the way: the missing
// ranges are fetched from the origin in the background, while the reused blocks are copied in
// target order and every byte, copied or fetched, goes through the piece and whole-file hashes
// as it passes. It returns the torrent pieces that fail their SHA-1 and whether the whole file
// matches, as check does.
func (j *job) assemble(ctx context.Context, part *os.File, plan *delta.Plan, srcs []delta.Source) (bad []int, wholeOK bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	missing := plan.Missing()
	cov := newCoverage()
	wb := newWriteback(part)
	defer func() {
		if werr := wb.close(); werr != nil && err == nil {
			bad, wholeOK, err = nil, false, fmt.Errorf("%s: %w", j.part, werr)
		}
	}()
	fetchErr := make(chan error, 1)
	if len(missing) > 0 {
		go func() {
			err := j.fetch(ctx, part, missing, func(off, n int64) { cov.add(off, n); wb.wrote(n) })
			cov.finish(err)
			fetchErr <- err
		}()
	} else {
		fetchErr <- nil
	}
	bar := progress.New(j.opt.Progress, "build", j.length)
	defer bar.Done()
	dst := notifyWriter{File: part, fn: func(_, n int64) { wb.wrote(n) }}
	a := plan.Assemble(dst, srcs, cov.wait)
	hopt := manifest.HashOptions{Name: j.part, Length: j.length, PieceSize: j.pieceSize(), Whole: true, OnProgress: bar.Set}
	dw := newDirectWriter(j.part, part)
	if dw != nil {
		defer dw.close()
		a.SetWriter(dw.queue)
		hopt.Tee, hopt.NewBuffer = dw.sink, directio.AlignedBuf
	}
	h, herr := manifest.Hash(ctx, a, hopt)
	if herr == nil && dw != nil {
		if err := dw.close(); err != nil {
			herr = fmt.Errorf("%s: %w", j.part, err)
		}
	}
	if herr != nil {
		cancel()
	}
	ferr := <-fetchErr
	if ferr != nil {
		return nil, false, ferr
	}
	if herr != nil {
		return nil, false, herr
	}
	return j.compare(h)
}

// compare reports the torrent pieces whose hash is not the torrent's and whether the whole
// file's SHA-1 is the .zsync's (true when there is no .zsync: the pieces then say it all).
func (j *job) compare(h *manifest.Hashes) (bad []int, wholeOK bool, err error) {
	if j.torrent != nil {
		bad = j.torrent.BadPieces(h.Pieces)
	}
	return bad, j.wholeMatches(h.Whole), nil
}

// notifyWriter is the part file, telling fn about every range written through it.
type notifyWriter struct {
	*os.File
	fn func(off, n int64)
}

func (w notifyWriter) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.File.WriteAt(p, off)
	if n > 0 {
		w.fn(off, int64(n))
	}
	return n, err
}

// coverage tracks which of the missing ranges the fetch has written, so that the ordered pass
// can wait for exactly the bytes it needs next while the rest of the fetch goes on.
type coverage struct {
	mu   sync.Mutex
	cond *sync.Cond
	done []span // written ranges, sorted by offset, merged when they touch
	err  error  // set when the fetch has ended; nil after a complete fetch
	over bool
}

type span struct{ off, end int64 }

func newCoverage() *coverage {
	c := &coverage{}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// add records that [off, off+n) was written.
func (c *coverage) add(off, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := span{off, off + n}
	i := sort.Search(len(c.done), func(i int) bool { return c.done[i].end >= s.off })
	k := i
	for k < len(c.done) && c.done[k].off <= s.end {
		s.off = min(s.off, c.done[k].off)
		s.end = max(s.end, c.done[k].end)
		k++
	}
	c.done = append(c.done[:i], append([]span{s}, c.done[k:]...)...)
	c.cond.Broadcast()
}

// finish marks the end of the fetch; err is its error, if any.
func (c *coverage) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.over, c.err = true, err
	c.cond.Broadcast()
}

// wait blocks until [off, off+n) is written, or the fetch ends without writing it.
func (c *coverage) wait(off, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		i := sort.Search(len(c.done), func(i int) bool { return c.done[i].end > off })
		if i < len(c.done) && c.done[i].off <= off && c.done[i].end >= off+n {
			return nil
		}
		if c.over {
			if c.err != nil {
				return c.err
			}
			return fmt.Errorf("the fetch ended without bytes %d-%d", off, off+n-1)
		}
		c.cond.Wait()
	}
}

// writeback pushes the part file to disk while the pass or the swarm goes on, so that the
// fsync before the rename has little left to wait for: once per writebackEvery bytes written
// it starts the kernel writing them (sync_file_range), and once per flushEvery it waits for
// them to be durable (fdatasync). Starting the writes alone is not enough where the disk has
// a cache of its own (a virtual machine's disk, whose host buffers what it is given): the
// fsync then waits for the whole file to leave that cache. Both block, so they run on a
// goroutine of their own. A flush that fails is reported by close: the kernel reports a
// write error to one sync only, which would leave the fsync before the rename none to see.
type writeback struct {
	mu         sync.Mutex
	n          int64 // bytes written since the last writeback was due
	sinceFlush int64 // bytes written since the last flush was due
	flush      bool  // the next kick flushes
	err        error // the first flush that failed
	kick       chan struct{}
	done       chan struct{}
}

const (
	// writebackEvery is small enough that a package of a few tens of MiB fetched whole starts
	// its writeback before its end, so that the fsync does not wait for all of it.
	writebackEvery = 8 << 20
	// flushEvery is what the fsync before the rename may have left to flush, but for the
	// last stretch: at a disk's 1-2 GB/s, a few tens of milliseconds.
	flushEvery = 64 << 20
)

func newWriteback(f *os.File) *writeback {
	w := &writeback{kick: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for range w.kick {
			w.mu.Lock()
			flush := w.flush
			w.flush = false
			w.mu.Unlock()
			if !flush {
				startWriteback(f)
				continue
			}
			if err := flushData(f); err != nil {
				w.mu.Lock()
				if w.err == nil {
					w.err = fmt.Errorf("writing to disk: %w", err)
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// wrote counts n bytes written, starts a writeback every writebackEvery bytes and a flush
// every flushEvery. It may be called from several goroutines at once.
func (w *writeback) wrote(n int64) {
	w.mu.Lock()
	w.n += n
	w.sinceFlush += n
	due := w.n >= writebackEvery
	if due {
		w.n = 0
	}
	if w.sinceFlush >= flushEvery {
		w.sinceFlush, w.flush, due = 0, true, true
	}
	w.mu.Unlock()
	if due {
		w.start()
	}
}

// start asks for a writeback (or the flush that is due) of everything written so far,
// without waiting for it.
func (w *writeback) start() {
	select {
	case w.kick <- struct{}{}:
	default: // one is already queued
	}
}

// close waits for the writeback or flush under way and returns the first flush's error.
func (w *writeback) close() error {
	close(w.kick)
	<-w.done
	return w.err
}

// directWriter writes the target through a second descriptor opened with O_DIRECT: the data
// goes from the pass's buffers to the disk without passing through the page cache. Writing a
// few hundred MB through the page cache first allocates and dirties that many pages, which
// costs many times the system time of writing them direct, and unsteadily so; and an update
// run from cron has no use for the new version in the page cache. Ranges that are not aligned (the file's tail, a stretch that starts or ends
// beside a fetched range) and file systems without O_DIRECT (tmpfs) go through the ordinary
// descriptor.
//
// The ordered pass does not write: the Assembler hands its copied stretches to queue, which
// notes where they are, and manifest.Hash's Tee (sink) writes them from the chunk they were
// read into, on the sink's goroutine, while the pass goes on reading and hashing (a write in
// the pass would stall it for the whole device time). The chunks are aligned, so the aligned
// middle of a stretch goes to the disk from where it is: copying it into buffers of the
// writer's own would cost a quarter of the CPU of an update's build.
type directWriter struct {
	file   *os.File        // the O_DIRECT descriptor
	direct directio.Writer // writes through file until O_DIRECT is refused
	part   *os.File
	bounce []byte // aligned, for stretches whose memory is not aligned as their offset is
	err    error  // the first failed write: every later call returns it
	closed bool
	min    int // stretches shorter than this go through the page cache (directMin)

	mu    sync.Mutex
	spans []span // copied stretches queued for the sink, in order
}

const (
	directAlign = directio.Align
	directBuf   = 1 << 20 // the bounce buffer's size

	// directMin is the shortest write that goes direct (directio.MinWrite): a plan of
	// thousands of short stretches (a version string that changed in every file of a tar)
	// would wait for the device thousands of times.
	directMin = directio.MinWrite
)

func newDirectWriter(path string, part *os.File) *directWriter {
	f, err := directio.Open(path)
	if err != nil {
		return nil
	}
	return &directWriter{file: f, direct: directio.Writer{Direct: f}, part: part, min: directMin}
}

// queue notes that p, a copied stretch of the target at off, is to be written from the chunk
// it was read into; it is the Assembler's writer (SetWriter).
func (d *directWriter) queue(p []byte, off int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := len(d.spans); n > 0 && d.spans[n-1].end == off {
		d.spans[n-1].end += int64(len(p))
	} else {
		d.spans = append(d.spans, span{off, off + int64(len(p))})
	}
	return nil
}

// sink writes the queued stretches that lie in the chunk buf at off (manifest.Hash's Tee).
func (d *directWriter) sink(off int64, buf []byte) error {
	end := off + int64(len(buf))
	for {
		d.mu.Lock()
		var s span
		have := len(d.spans) > 0 && d.spans[0].off < end
		if have {
			s = d.spans[0]
			if s.end > end { // merged across chunks: this chunk's part now, the rest later
				s.end = end
				d.spans[0].off = end
			} else {
				d.spans = d.spans[1:]
			}
		}
		d.mu.Unlock()
		if !have {
			return nil
		}
		if s.off < off {
			return fmt.Errorf("writing %s: the stretch at offset %d was not in its chunk (at %d)", d.part.Name(), s.off, off)
		}
		if err := d.write(buf[s.off-off:s.end-off], s.off); err != nil {
			return err
		}
	}
}

// write writes p at off: the aligned middle with O_DIRECT (through the bounce buffer where p's
// memory is not aligned as off is), an unaligned head and tail through the page cache. After a
// failed write it returns that write's error.
func (d *directWriter) write(p []byte, off int64) error {
	if d.err != nil {
		return d.err
	}
	head := int((directAlign - off%directAlign) % directAlign)
	lo, hi := 0, 0 // p[lo:hi] goes direct
	if !d.direct.Off() && len(p) >= head+directAlign && len(p) >= d.min {
		lo, hi = head, head+(len(p)-head)&^(directAlign-1)
	}
	for k := lo; k < hi; {
		n := hi - k
		b := p[k:hi]
		if uintptr(unsafe.Pointer(&b[0]))%directAlign != 0 {
			if d.bounce == nil {
				d.bounce = directio.AlignedBuf(directBuf)
			}
			n = copy(d.bounce, b)
			b = d.bounce[:n]
		}
		if err := d.writeDirect(b, off+int64(k)); err != nil {
			d.err = fmt.Errorf("writing %d bytes at offset %d: %w", n, off+int64(k), err)
			return d.err
		}
		k += n
	}
	if lo > 0 || hi == 0 {
		end := lo
		if hi == 0 {
			end = len(p)
		}
		if _, err := d.part.WriteAt(p[:end], off); err != nil {
			d.err = err
			return err
		}
	}
	if hi > 0 && hi < len(p) {
		if _, err := d.part.WriteAt(p[hi:], off+int64(hi)); err != nil {
			d.err = err
			return err
		}
	}
	return nil
}

// writeDirect writes the aligned b at off with O_DIRECT, or through the page cache once
// O_DIRECT has refused a write (EINVAL), that one and every later one.
func (d *directWriter) writeDirect(b []byte, off int64) error {
	if ok, err := d.direct.WriteDirect(b, off); ok {
		return err
	}
	_, err := d.part.WriteAt(b, off)
	return err
}

// close closes the O_DIRECT descriptor and returns the first failed write's error, if any; a
// stretch still queued (the pass ended early) is not written. A second call does nothing.
func (d *directWriter) close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	d.file.Close()
	d.mu.Lock()
	d.spans = nil
	d.mu.Unlock()
	return d.err
}
