package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what one client can cost a server: a connection that sends its request slowly,
// sits idle, or stops taking its reply holds a goroutine and a socket for seconds, not forever,
// and no more than MaxConns connections are served at once. Zero fields take DefaultLimits'.
type Limits struct {
	// HeaderTimeout is how long a client has to send a request's header, and the body of a
	// request that has one, from the request's first byte (a slowloris client is dropped then).
	HeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection waits for its next request.
	IdleTimeout time.Duration
	// SendTimeout drops a connection whose client takes no byte of the reply for this long.
	// Every write that moves bytes starts it again, so a slow download of any size goes on as
	// long as it moves (nginx's send_timeout); there is no limit on a whole reply's time.
	SendTimeout time.Duration
	// MaxConns is how many connections are served at once. When all are taken, an idle
	// keep-alive connection is closed to make room for a new one; with none idle, the new one is
	// answered 503 with Retry-After and closed. Up to MaxConns/4+4 such refusals are under way at
	// once; connections beyond those are closed without a reply.
	MaxConns int
}

// DefaultLimits are the limits of `pkgsync serve` and `pkgsync tracker` unless flags say
// otherwise.
func DefaultLimits() Limits {
	return Limits{HeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, SendTimeout: 60 * time.Second, MaxConns: 1024}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.HeaderTimeout <= 0 {
		l.HeaderTimeout = d.HeaderTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.SendTimeout <= 0 {
		l.SendTimeout = d.SendTimeout
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	return l
}

// NewHTTPServer returns a server for h that enforces lim, and ln wrapped to count and pace its
// connections. Serve with hs.Serve(l), or hs.ServeTLS(l, cert, key): TLS must wrap the returned
// listener, not the other way round.
func NewHTTPServer(ln net.Listener, h http.Handler, lim Limits) (*http.Server, net.Listener) {
	hs, l := newHTTPServer(ln, h, lim)
	return hs, l
}

// NewLeanHTTPServer is NewHTTPServer with route's requests answered by a lean loop instead of
// net/http (see LeanRoute). The lean loop reads the connections before net/http does, so the
// listener must be served as plain HTTP (hs.Serve), never under TLS.
func NewLeanHTTPServer(ln net.Listener, h http.Handler, lim Limits, route LeanRoute) (*http.Server, net.Listener) {
	hs, l := newHTTPServer(ln, h, lim)
	return hs, newLeanListener(l, route)
}

func newHTTPServer(ln net.Listener, h http.Handler, lim Limits) (*http.Server, *limitListener) {
	lim = lim.withDefaults()
	l := &limitListener{
		Listener: ln,
		lim:      lim,
		slots:    make(chan struct{}, lim.MaxConns),
		refusals: make(chan struct{}, lim.MaxConns/4+4),
		conns:    map[*limitConn]struct{}{},
	}
	hs := &http.Server{
		Handler:           &limitHandler{h: h, lim: lim},
		ReadHeaderTimeout: lim.HeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		// No ReadTimeout or WriteTimeout: both are deadlines for a whole request or reply,
		// which would cut long downloads. limitConn paces the writes instead, and
		// limitHandler bounds request bodies.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, unwrapConn(c))
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if lc := unwrapConn(c); lc != nil {
				lc.idle.Store(st == http.StateIdle)
			}
		},
	}
	return hs, l
}

type connKey struct{}

// unwrapConn returns the limitConn under c (under TLS, or handed on by the lean loop), or nil.
func unwrapConn(c net.Conn) *limitConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*leanConn); ok {
		return lc.limitConn
	}
	lc, _ := c.(*limitConn)
	return lc
}

// limitListener hands out at most lim.MaxConns connections to serve, and up to cap(refusals)
// more marked to be answered 503.
type limitListener struct {
	net.Listener
	lim      Limits
	slots    chan struct{}
	refusals chan struct{}

	mu    sync.Mutex
	conns map[*limitConn]struct{} // the ones holding slots
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitConn{Conn: c, send: l.lim.SendTimeout}
		// Full: an idle keep-alive connection makes room (its client opens another when it
		// needs one, as after any keep-alive close); with none, this one is answered 503.
		if l.take(lc) || (l.closeIdle() && l.take(lc)) {
			return lc, nil
		}
		select {
		case l.refusals <- struct{}{}:
			lc.refused = l.lim.MaxConns
			lc.release = func() { <-l.refusals }
			return lc, nil
		default:
			c.Close() // too many even to refuse politely
		}
	}
}

// take gives lc a slot if one is free.
func (l *limitListener) take(lc *limitConn) bool {
	select {
	case l.slots <- struct{}{}:
	default:
		return false
	}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	lc.release = func() {
		l.mu.Lock()
		delete(l.conns, lc)
		l.mu.Unlock()
		<-l.slots
	}
	return true
}

// closeIdle closes one connection that waits between requests, if there is one.
func (l *limitListener) closeIdle() bool {
	l.mu.Lock()
	var idle *limitConn
	for c := range l.conns {
		if c.idle.Load() {
			idle = c
			break
		}
	}
	l.mu.Unlock()
	if idle == nil {
		return false
	}
	idle.Close()
	return true
}

// limitConn is a served connection: it gives its slot back when closed, and gives every write
// SendTimeout to make progress.
type limitConn struct {
	net.Conn
	send    time.Duration
	refused int // > 0: answer every request 503 (the cap it ran into)
	idle    atomic.Bool
	release func()
	once    sync.Once
	lean    atomic.Bool // served by the lean loop (see LeanRoute), not net/http
	remote  string      // RemoteAddr().String(), once the lean loop needed it
	// wdl is the write deadline last set, read and moved only by Write (net/http and the lean
	// path each write from one goroutine at a time).
	wdl time.Time
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Write writes p with a deadline of at least SendTimeout from now, moved on each time the
// deadline passes with some of p written: only a client that takes nothing for SendTimeout is
// dropped. The deadline is moved only when less than SendTimeout of it is left, to SendTimeout
// and a 64th from now, so that the many small writes of a busy keep-alive connection (a
// tracker's answers) do not each reset the runtime's timer: a stalled client is dropped after
// SendTimeout to 65/64 of it.
func (c *limitConn) Write(p []byte) (int, error) {
	written := 0
	for {
		if err := c.extendWriteDeadline(); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(p[written:])
		written += n
		if err != nil && n > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("client took no data for %v: %w", c.send, err)
		}
		return written, err
	}
}

// extendWriteDeadline makes sure the write deadline is at least SendTimeout away.
func (c *limitConn) extendWriteDeadline() error {
	now := time.Now()
	if c.wdl.Sub(now) >= c.send {
		return nil
	}
	c.wdl = now.Add(c.send + c.send/64)
	return c.Conn.SetWriteDeadline(c.wdl)
}

// limitHandler answers the connections over the cap, and bounds the time a request body may
// take to arrive.
type limitHandler struct {
	h   http.Handler
	lim Limits
}

func (h *limitHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if lc, _ := r.Context().Value(connKey{}).(*limitConn); lc != nil && lc.refused > 0 {
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server busy: it serves at most "+strconv.Itoa(lc.refused)+" connections at once (pkgsync serve --max-conns); try again shortly", http.StatusServiceUnavailable)
		return
	}
	if r.ContentLength != 0 {
		// A body (none of pkgsync's requests has one) must arrive within HeaderTimeout too, or
		// a client that drips one holds the connection: net/http reads up to 256 KiB of an
		// unread body after the handler, without a deadline of its own.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.lim.HeaderTimeout))
	}
	h.h.ServeHTTP(w, r)
}
