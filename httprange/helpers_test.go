package httprange

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// randomData returns n reproducible pseudo-random bytes.
func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// recWriter is an io.WriterAt over a buffer that records which bytes were written.
type recWriter struct {
	mu      sync.Mutex
	buf     []byte
	written []Range
}

func newRecWriter(size int) *recWriter { return &recWriter{buf: make([]byte, size)} }

func (w *recWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(w.buf)) {
		return 0, fmt.Errorf("recWriter: write of %d bytes at %d outside [0,%d)", len(p), off, len(w.buf))
	}
	copy(w.buf[off:], p)
	w.written = append(w.written, Range{Off: off, Len: int64(len(p))})
	return len(p), nil
}

// coverage returns the coalesced set of bytes written so far.
func (w *recWriter) coverage() []Range {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Coalesce(w.written)
}

// check fails t unless exactly the bytes of want were written and they equal data's.
func (w *recWriter) check(t *testing.T, data []byte, want []Range) {
	t.Helper()
	if got, exp := w.coverage(), Coalesce(want); !slices.Equal(got, exp) {
		t.Fatalf("wrote %v, want exactly %v", got, exp)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range want {
		if !bytes.Equal(w.buf[r.Off:r.End()], data[r.Off:r.End()]) {
			t.Fatalf("bytes of %v differ from the file", r)
		}
	}
}

// reqLog records the Range and If-Range headers of the requests a test server saw.
type reqLog struct {
	mu   sync.Mutex
	reqs []http.Header
}

func (l *reqLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r.Header.Clone())
}

func (l *reqLog) get(name string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, h := range l.reqs {
		out = append(out, h.Get(name))
	}
	return out
}

func (l *reqLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// file describes what contentServer serves: the bytes, and the validators it announces.
type file struct {
	data    []byte
	etag    string    // "" for none
	modtime time.Time // zero for no Last-Modified
}

var testModTime = time.Date(2026, 11, 24, 23, 49, 2, 0, time.UTC)

// contentHandler serves f with http.ServeContent and logs each request.
func contentHandler(log *reqLog, f func() file) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if log != nil {
			log.add(r)
		}
		cur := f()
		if cur.etag != "" {
			w.Header().Set("Etag", cur.etag)
		}
		http.ServeContent(w, r, "file.bin", cur.modtime, bytes.NewReader(cur.data))
	}
}

// newContentServer serves data with an ETag and Last-Modified.
func newContentServer(t testing.TB, data []byte) (*httptest.Server, *reqLog) {
	log := &reqLog{}
	srv := httptest.NewServer(contentHandler(log, func() file { return file{data, `"v1"`, testModTime} }))
	t.Cleanup(srv.Close)
	return srv, log
}

// fast are Options for tests: quick retries.
func fast(o Options) Options {
	if o.RetryDelay == 0 {
		o.RetryDelay = time.Millisecond
	}
	return o
}

// scattered returns n ranges of random offsets and lengths up to maxLen inside size bytes.
func scattered(n int, size, maxLen int64, seed uint64) []Range {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]Range, n)
	for i := range out {
		l := 1 + r.Int64N(maxLen)
		out[i] = Range{Off: r.Int64N(size - l + 1), Len: l}
	}
	return out
}
