package tracker

import (
	"io"
	"sync"
	"time"
)

// Log lines are written in batches: a line waits at most logDelay, or until logBatch bytes are
// waiting, before it goes to Options.Log with the lines before it. One write(2) per announce was
// the largest cost of an announce after the socket itself (6% of the server's CPU time at 20,000
// announces a second); one every 100 ms costs nothing.
const (
	logDelay = 100 * time.Millisecond
	logBatch = 64 << 10
)

// batchLog collects whole lines and writes them to w in batches. Write errors are ignored.
type batchLog struct {
	w     io.Writer
	delay time.Duration // zero means logDelay

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // flushes buf; armed while buf holds lines
	armed  bool
	closed bool // lines go straight to w
}

// write queues line, which must end in a newline; the caller may reuse it afterwards.
func (l *batchLog) write(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.w.Write(line)
		return
	}
	l.buf = append(l.buf, line...)
	switch {
	case len(l.buf) >= logBatch:
		l.flushLocked()
	case !l.armed:
		d := l.delay
		if d == 0 {
			d = logDelay
		}
		if l.timer == nil {
			l.timer = time.AfterFunc(d, l.flush)
		} else {
			l.timer.Reset(d)
		}
		l.armed = true
	}
}

// flush writes the lines waiting.
func (l *batchLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *batchLog) flushLocked() {
	if len(l.buf) > 0 {
		l.w.Write(l.buf)
		l.buf = l.buf[:0]
	}
	l.armed = false // a timer that fires now finds nothing to write
}

// close writes the lines waiting; later lines are written one by one as they come.
func (l *batchLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.closed = true
}

// flushLog writes the log lines waiting (for tests, which read the log while the tracker runs).
func (t *Tracker) flushLog() {
	if t.logw != nil {
		t.logw.flush()
	}
}
