package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pkgsync/pkgsync/delta"
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
	missing := toHTTP(plan.Missing())
	cov := newCoverage()
	wb := newWriteback(part)
	defer wb.close()
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
	dw := newDirectWriter(j.part, part)
	if dw != nil {
		defer dw.close()
		a.SetWriter(dw.write)
	}
	h, herr := manifest.Hash(ctx, a, j.part, j.length, j.pieceSize(), nil, 0, bar.Set)
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

// writeback starts the kernel writing the part file to disk while the pass goes on, so that
// the fsync before the rename has little left to wait for. sync_file_range blocks while it
// queues the pages, so it runs on its own goroutine, once per writebackEvery bytes written.
type writeback struct {
	mu   sync.Mutex
	n    int64
	kick chan struct{}
	done chan struct{}
}

const writebackEvery = 32 << 20

func newWriteback(f *os.File) *writeback {
	w := &writeback{kick: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for range w.kick {
			// Where the file system cannot, nothing is lost: the fsync does it all.
			_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		}
	}()
	return w
}

// wrote counts n bytes written and starts a writeback every writebackEvery bytes.
func (w *writeback) wrote(n int64) {
	w.mu.Lock()
	w.n += n
	due := w.n >= writebackEvery
	if due {
		w.n = 0
	}
	w.mu.Unlock()
	if due {
		w.start()
	}
}

// start asks for a writeback of everything written so far, without waiting for it.
func (w *writeback) start() {
	select {
	case w.kick <- struct{}{}:
	default: // one is already queued
	}
}

// every starts a writeback every period until stop is called, for writes that do not pass
// through wrote: the swarm's, which the library makes.
func (w *writeback) every(period time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				w.start()
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

func (w *writeback) close() {
	close(w.kick)
	<-w.done
}

// directWriter writes the target through a second descriptor opened with O_DIRECT: the data
// goes from the pass's buffers to the disk without passing through the page cache. Writing a
// few hundred MB through the page cache first allocates and dirties that many pages, which
// cost from 0.1 to 1.3 s of system time for 256 MiB on the test machine (a VM), against a
// steady 0.06 s direct; and an update run from cron has no use for the new version in the
// page cache. Ranges that are not aligned (the file's tail, a stretch that starts or ends
// beside a fetched range) and file systems without O_DIRECT (tmpfs) go through the ordinary
// descriptor.
//
// The direct writes run on a goroutine of their own, from aligned buffers the aligned middle
// of each stretch is copied into (a copy costs about 15 ms per 256 MiB here): the ordered pass
// goes on reading and hashing while the disk writes, where a write in the pass stalled it for
// the whole device time (a 256 MiB pass took 0.32-0.37 s with the writes inline, the device
// alone 0.19-0.24 s). Errors come back on a later write, or from flush.
type directWriter struct {
	direct *os.File
	part   *os.File
	free   chan []byte    // aligned buffers of directBuf bytes
	jobs   chan directJob // writes for the goroutine
	done   chan struct{}  // closed when the goroutine ends
	mu     sync.Mutex     // guards err, off and bytes, shared with the goroutine
	err    error          // the first failed write
	off    bool           // O_DIRECT failed once: buffered from then on
	bytes  int64          // written with O_DIRECT
	closed bool
}

type directJob struct {
	buf []byte // a slice of a free buffer
	off int64
}

const (
	directAlign = 4096
	directBuf   = 1 << 20 // bytes per direct write at most
	directBufs  = 4       // writes queued or in flight at most
)

func newDirectWriter(path string, part *os.File) *directWriter {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	d := &directWriter{direct: f, part: part, free: make(chan []byte, directBufs),
		jobs: make(chan directJob, directBufs), done: make(chan struct{})}
	for i := 0; i < directBufs; i++ {
		d.free <- alignedBuf(directBuf)
	}
	go d.run()
	return d
}

// alignedBuf returns n bytes that start on a directAlign boundary.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := int((directAlign - uintptr(unsafe.Pointer(&b[0]))%directAlign) % directAlign)
	return b[skip : skip+n : skip+n]
}

// run writes the queued jobs in order. After the first error it only returns the buffers; a
// write that O_DIRECT refuses (EINVAL) is written through the page cache instead, and every
// later one too.
func (d *directWriter) run() {
	defer close(d.done)
	for j := range d.jobs {
		d.mu.Lock()
		failed, buffered := d.err != nil, d.off
		d.mu.Unlock()
		if !failed {
			var err error
			if !buffered {
				_, err = d.direct.WriteAt(j.buf, j.off)
				if errors.Is(err, syscall.EINVAL) {
					buffered, err = true, nil
				}
			}
			if buffered {
				_, err = d.part.WriteAt(j.buf, j.off)
			}
			d.mu.Lock()
			switch {
			case err != nil:
				d.err = fmt.Errorf("writing %d bytes at offset %d: %w", len(j.buf), j.off, err)
			case buffered:
				d.off = true
			default:
				d.bytes += int64(len(j.buf))
			}
			d.mu.Unlock()
		}
		d.free <- j.buf[:cap(j.buf)]
	}
}

// write writes p at off: the aligned middle, copied, by the goroutine with O_DIRECT; an
// unaligned head and tail through the page cache, at once. It returns the error of an earlier
// direct write, if any.
func (d *directWriter) write(p []byte, off int64) error {
	d.mu.Lock()
	err, buffered := d.err, d.off
	d.mu.Unlock()
	if err != nil {
		return err
	}
	head := int((directAlign - off%directAlign) % directAlign)
	lo, hi := 0, 0 // p[lo:hi] goes direct
	if !buffered && len(p) >= head+directAlign {
		lo, hi = head, head+(len(p)-head)&^(directAlign-1)
	}
	for k := lo; k < hi; {
		buf := <-d.free
		n := copy(buf, p[k:hi])
		d.jobs <- directJob{buf: buf[:n], off: off + int64(k)}
		k += n
	}
	if lo > 0 || hi == 0 {
		end := lo
		if hi == 0 {
			end = len(p)
		}
		if _, err := d.part.WriteAt(p[:end], off); err != nil {
			return err
		}
	}
	if hi > 0 && hi < len(p) {
		if _, err := d.part.WriteAt(p[hi:], off+int64(hi)); err != nil {
			return err
		}
	}
	return nil
}

// flush waits for the queued writes and returns the first error of any of them. The writer can
// take more writes after it.
func (d *directWriter) flush() error {
	for i := 0; i < directBufs; i++ { // every buffer back: nothing queued or in flight
		buf := <-d.free
		defer func() { d.free <- buf }()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// close flushes, ends the goroutine and closes the O_DIRECT descriptor; it returns flush's
// error. A second call does nothing.
func (d *directWriter) close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	err := d.flush()
	close(d.jobs)
	<-d.done
	d.direct.Close()
	return err
}
