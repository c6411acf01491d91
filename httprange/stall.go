package httprange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ErrStalled means a reply sent nothing for longer than the stall timeout (WithStallTimeout):
// no header after the request went out, or no byte of the body. Fetch and Get retry it like a
// body that broke off, keeping the bytes that arrived.
var ErrStalled = errors.New("reply stalled")

// DefaultStallTimeout is the stall timeout of pkgsync update: an origin that sends no byte for
// this long is asked again.
const DefaultStallTimeout = 30 * time.Second

// WithStallTimeout returns a client like c (nil: the shared client) whose replies fail with
// ErrStalled when d passes without a byte: before the header, or between two reads of the body.
// A slow reply of any length goes on as long as bytes move, unlike a whole-request timeout,
// which would cut a large transfer; without it a server that stops sending mid-body, or a
// connection that died without a reset, holds a request (and the update) forever. d <= 0
// returns c as it is.
func WithStallTimeout(c *http.Client, d time.Duration) *http.Client {
	if c == nil {
		c = sharedClient()
	}
	if d <= 0 {
		return c
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	out := *c
	out.Transport = &stallTransport{rt: rt, d: d}
	return &out
}

type stallTransport struct {
	rt http.RoundTripper
	d  time.Duration
}

// stallCause ends a request's context when its reply stalls.
type stallCause struct{ d time.Duration }

func (e *stallCause) Error() string { return fmt.Sprintf("%v: no byte for %s", ErrStalled, e.d) }
func (e *stallCause) Unwrap() error { return ErrStalled }

func (s *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &stallWatch{cancel: cancel, d: s.d}
	w.t = time.AfterFunc(s.d, func() { cancel(&stallCause{s.d}) })
	resp, err := s.rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		w.stop()
		if c := context.Cause(ctx); errors.Is(c, ErrStalled) {
			return nil, fmt.Errorf("no reply header: %w", c)
		}
		return nil, err
	}
	w.t.Reset(s.d)
	resp.Body = &stallBody{rc: resp.Body, w: w, ctx: ctx}
	return resp, nil
}

// CloseIdleConnections passes the call on, so that http.Client.CloseIdleConnections still works.
func (s *stallTransport) CloseIdleConnections() {
	if c, ok := s.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// stallWatch is the timer of one request.
type stallWatch struct {
	t      *time.Timer
	d      time.Duration
	cancel context.CancelCauseFunc
	once   sync.Once
}

func (w *stallWatch) stop() {
	w.once.Do(func() {
		w.t.Stop()
		w.cancel(nil)
	})
}

// stallBody restarts the timer on every byte that arrives and, when the timer fired, reports
// ErrStalled instead of the bare "context canceled" of the aborted read.
type stallBody struct {
	rc  io.ReadCloser
	w   *stallWatch
	ctx context.Context
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.w.t.Reset(b.w.d)
	}
	if err != nil && err != io.EOF {
		if c := context.Cause(b.ctx); errors.Is(c, ErrStalled) {
			err = c
		}
	}
	return n, err
}

func (b *stallBody) Close() error {
	err := b.rc.Close()
	b.w.stop()
	return err
}
