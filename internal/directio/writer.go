package directio

import (
	"errors"
	"io"
	"sync/atomic"
	"syscall"
)

// Writer sends writes through Direct, a descriptor opened with O_DIRECT (Open), until the file
// system refuses one with EINVAL (no O_DIRECT for that file); from then on WriteDirect writes
// nothing and the caller writes through the page cache, that write and every later one. The
// caller checks the alignment first: a misaligned write is refused with EINVAL too, and would
// turn direct writes off for good. Safe for concurrent use.
type Writer struct {
	Direct io.WriterAt
	off    atomic.Bool
	bytes  atomic.Int64
}

// WriteDirect writes b at off through Direct and reports whether it did (ok) and with what
// error. Not ok: there is no Direct, or O_DIRECT was refused, now or before; nothing was
// written.
func (w *Writer) WriteDirect(b []byte, off int64) (ok bool, err error) {
	if w.Off() {
		return false, nil
	}
	_, err = w.Direct.WriteAt(b, off)
	if errors.Is(err, syscall.EINVAL) {
		w.off.Store(true)
		return false, nil
	}
	if err == nil {
		w.bytes.Add(int64(len(b)))
	}
	return true, err
}

// Off reports whether writes go through the page cache only: no Direct, or O_DIRECT refused.
func (w *Writer) Off() bool { return w.Direct == nil || w.off.Load() }

// Bytes counts the bytes written through Direct.
func (w *Writer) Bytes() int64 { return w.bytes.Load() }
