package store

import (
	"context"
	"fmt"
	"io"
)

// ReaderAt reads one version of an object: every ReadAt is a ReadRange pinned to the identity
// the ReaderAt was made with, so bytes of two versions never mix. io.ReaderAt has no context;
// the one given to NewReaderAt bounds every read.
type ReaderAt struct {
	ctx  context.Context
	s    Store
	info Info
}

// NewReaderAt returns a ReaderAt for the object info describes (from Stat).
func NewReaderAt(ctx context.Context, s Store, info Info) *ReaderAt {
	return &ReaderAt{ctx: ctx, s: s, info: info}
}

// Size returns the object's size.
func (r *ReaderAt) Size() int64 { return r.info.Size }

// ReadAt reads len(p) bytes at off; fewer only at the end of the object, with io.EOF.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s/%s: negative offset %d", r.s, r.info.Key, off)
	}
	if off >= r.info.Size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.info.Size-off)
	rc, err := r.s.ReadRange(r.ctx, r.info.Key, off, n, r.info.ETag)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	k, err := io.ReadFull(rc, p[:n])
	if err != nil {
		return k, fmt.Errorf("%s/%s at %d: %w", r.s, r.info.Key, off, err)
	}
	if n < int64(len(p)) {
		return k, io.EOF
	}
	return k, nil
}

// ReadAhead reads an io.ReaderAt from start to size in order, with up to ahead reads of chunk
// bytes in flight ahead of the reader: a store's latency is paid once per ahead chunks rather
// than once per chunk. Memory is (ahead+1)*chunk bytes. Close stops the reads.
type ReadAhead struct {
	queue  chan chan chunkResult
	free   chan []byte // buffers the reader is done with, for the next reads
	cancel context.CancelFunc
	cur    []byte
	curBuf []byte // the whole buffer cur is the rest of
	err    error
	done   chan struct{}
}

type chunkResult struct {
	buf []byte
	err error
}

// NewReadAhead starts reading r.
func NewReadAhead(r io.ReaderAt, size, chunk int64, ahead int) *ReadAhead {
	ctx, cancel := context.WithCancel(context.Background())
	ra := &ReadAhead{queue: make(chan chan chunkResult, max(ahead, 1)), free: make(chan []byte, max(ahead, 1)+2),
		cancel: cancel, done: make(chan struct{})}
	go ra.produce(ctx, r, size, chunk)
	return ra
}

// produce starts one read per chunk, in order, as fast as the queue has room: the queue's
// capacity is the number of reads in flight.
func (ra *ReadAhead) produce(ctx context.Context, r io.ReaderAt, size, chunk int64) {
	defer close(ra.queue)
	defer close(ra.done)
	for off := int64(0); off < size; off += chunk {
		ch := make(chan chunkResult, 1)
		select {
		case ra.queue <- ch:
		case <-ctx.Done():
			return
		}
		var buf []byte
		select {
		case buf = <-ra.free:
		default:
			buf = make([]byte, chunk)
		}
		go func(off int64) {
			buf := buf[:min(chunk, size-off)]
			n, err := r.ReadAt(buf, off)
			if err == io.EOF && n == len(buf) {
				err = nil
			}
			ch <- chunkResult{buf[:n], err}
		}(off)
	}
}

// Read returns the object's bytes in order.
func (ra *ReadAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.curBuf != nil {
			select {
			case ra.free <- ra.curBuf[:cap(ra.curBuf)]:
			default:
			}
			ra.curBuf = nil
		}
		ch, ok := <-ra.queue
		if !ok {
			ra.err = io.EOF
			return 0, io.EOF
		}
		res := <-ch
		ra.cur, ra.curBuf = res.buf, res.buf
		if res.err != nil {
			ra.err = res.err
			if res.err == io.EOF {
				ra.err = io.ErrUnexpectedEOF
			}
		}
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the reads in flight (their results are dropped).
func (ra *ReadAhead) Close() error {
	ra.cancel()
	<-ra.done
	return nil
}

// sizedBody is the body of a ranged read of any store: it yields exactly left bytes of r, or an
// error naming what was read (a body that ends early is io.ErrUnexpectedEOF).
type sizedBody struct {
	r    io.ReadCloser
	left int64
	what string
}

func (e *sizedBody) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("%s: %w: the body ended %d bytes early", e.what, io.ErrUnexpectedEOF, e.left)
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("%s: %w", e.what, err)
	}
	if e.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (e *sizedBody) Close() error { return e.r.Close() }
