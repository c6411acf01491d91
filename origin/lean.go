package origin

import (
	"bufio"
	"bytes"
	"errors"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LeanRoute is a request a server answers most of the time, answered without net/http: a tracker
// answers tens of thousands of small announces a second over keep-alive connections, and
// net/http's per-request work (a Request, its URL and header map, a goroutine that reads ahead
// while the handler runs and the read that goes with it, the header snapshot, the deadlines)
// costs about as much CPU as the answer itself.
//
// A connection is read by the lean loop first. A request it is sure of (GET of exactly Path, with
// an optional query, HTTP/1.1, one Host, no body, no Expect or Upgrade, a Connection header of at
// most keep-alive or close, a head of well-formed lines within 4 KiB) is answered 200 with the
// body Answer appends, Content-Type text/plain, Content-Length and Date, as the handler would be
// through net/http. At the first request it is not sure of, the connection with every byte read
// so far is handed to net/http for the rest of its life, so that net/http alone decides what to
// make of anything unusual (its 400s, redirects, other paths, HEAD, bodies). The Limits hold on
// both paths: the idle and header timeouts (from a request's first byte) on reads, the send
// timeout on writes, and MaxConns, whose refused connections go to net/http for their 503.
type LeanRoute struct {
	// Path is the request path answered, exactly (no escapes, no cleaning).
	Path string
	// Answer appends the answer's body to dst for a request to Path with the given raw query
	// (after '?', "" without one), from remoteAddr ("IP:port", as http.Request.RemoteAddr).
	// It is called from many goroutines at once.
	Answer func(dst []byte, remoteAddr, rawQuery string) []byte
}

// leanBufSize is the read buffer of a lean connection, and so the largest request head the lean
// path reads (net/http's own first read is of 4 KiB too); a longer one goes to net/http.
const leanBufSize = 4 << 10

// leanListener runs the lean loop on the connections of a limitListener and hands net/http (its
// Accept) those the loop gives up, and those refused for the 503.
type leanListener struct {
	*limitListener
	route LeanRoute

	start   sync.Once
	handed  chan net.Conn // to net/http
	errc    chan error
	done    chan struct{}
	closing atomic.Bool
	close   sync.Once
}

func newLeanListener(l *limitListener, route LeanRoute) *leanListener {
	return &leanListener{
		limitListener: l, route: route,
		handed: make(chan net.Conn), errc: make(chan error), done: make(chan struct{}),
	}
}

// Accept returns the next connection for net/http, or the listener's next error.
func (l *leanListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.handed:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// acceptLoop accepts connections for the lean loop. Each accept error goes to net/http's Accept,
// which backs off from a passing one (out of file descriptors) and stops at others; the loop waits
// for it to be taken, and so retries no faster than net/http does.
func (l *leanListener) acceptLoop() {
	for {
		c, err := l.limitListener.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		lc := c.(*limitConn)
		if lc.refused > 0 {
			l.handOff(lc)
			continue
		}
		go l.serveLean(lc)
	}
}

// handOff gives c to net/http, or closes it once the listener is closed.
func (l *leanListener) handOff(c net.Conn) {
	select {
	case l.handed <- c:
	case <-l.done:
		c.Close()
	}
}

// Close stops accepting, and closes the lean connections that wait for a request; those in the
// middle of one close once it is answered. (net/http's Shutdown, which calls it, closes the
// connections handed to net/http.)
func (l *leanListener) Close() error {
	err := l.limitListener.Close()
	l.close.Do(func() {
		l.closing.Store(true)
		close(l.done)
		var idle []*limitConn
		l.mu.Lock()
		for c := range l.conns {
			if c.lean.Load() && c.idle.Load() {
				idle = append(idle, c)
			}
		}
		l.mu.Unlock()
		for _, c := range idle { // after unlocking: Close gives the slot back under l.mu
			c.Close()
		}
	})
	return err
}

// leanConn is a connection handed from the lean loop to net/http: its reads start with what the
// loop had read and not answered.
type leanConn struct {
	*limitConn
	r *bufio.Reader
}

func (c *leanConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serveLean answers the requests of c it is sure of, until the client closes, a timeout passes, or
// a request goes to net/http with the connection.
func (l *leanListener) serveLean(c *limitConn) {
	// A panic in Answer costs its connection and a log line, as a handler's does under net/http,
	// not the process.
	defer func() {
		if v := recover(); v != nil {
			log.Printf("origin: panic answering %s on the lean path: %v\n%s", c.remoteAddr(), v, debug.Stack())
			c.Close()
		}
	}()
	c.lean.Store(true)
	br := bufio.NewReaderSize(c, leanBufSize)
	var out, body []byte
	var rdl time.Time // the read deadline last set
	for {
		c.idle.Store(true)
		if l.closing.Load() {
			c.Close()
			return
		}
		// The idle timeout, moved only when less than it is left (as limitConn's send timeout).
		if now := time.Now(); rdl.Sub(now) < l.lim.IdleTimeout {
			rdl = now.Add(l.lim.IdleTimeout + l.lim.IdleTimeout/64)
			c.SetReadDeadline(rdl)
		}
		if _, err := br.Peek(1); err != nil {
			c.Close()
			return
		}
		c.idle.Store(false)
		head, err := l.readHead(c, br, &rdl)
		if err != nil {
			c.Close()
			return
		}
		var query string
		var closeAfter, ok bool
		if head != nil {
			query, closeAfter, ok = parseLeanHead(head, l.route.Path)
		}
		if !ok {
			// net/http reads with deadlines of its own from here on.
			c.SetReadDeadline(time.Time{})
			c.lean.Store(false)
			l.handOff(&leanConn{limitConn: c, r: br})
			return
		}
		br.Discard(len(head))
		out, body = l.answer(out, body, c, query, closeAfter)
		if _, err := c.Write(out); err != nil || closeAfter {
			c.Close()
			return
		}
	}
}

// readHead returns the request head at the start of br, up to and with its blank line, reading
// more within the header timeout when it has not all arrived; nil when it does not fit in br.
func (l *leanListener) readHead(c *limitConn, br *bufio.Reader, rdl *time.Time) ([]byte, error) {
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return b[:i+4], nil
		}
		if len(b) == br.Size() {
			return nil, nil
		}
		if deadline := time.Now().Add(l.lim.HeaderTimeout); deadline.Before(*rdl) {
			*rdl = deadline
			c.SetReadDeadline(deadline)
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return nil, err
		}
	}
}

// answer appends the whole reply to a request for the route to out, the body made in body: the
// status line and header as net/http writes them for the handler's reply, then the body.
func (l *leanListener) answer(out, body []byte, c *limitConn, query string, closeAfter bool) ([]byte, []byte) {
	body = l.route.Answer(body[:0], c.remoteAddr(), query)
	out = append(out[:0], "HTTP/1.1 200 OK\r\n"...)
	if closeAfter {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\nContent-Type: text/plain\r\nDate: "...)
	out = appendDate(out)
	out = append(out, "\r\n\r\n"...)
	return append(out, body...), body
}

// remoteAddr is the client's address as net/http gives it in Request.RemoteAddr, formatted once.
func (c *limitConn) remoteAddr() string {
	if c.remote == "" {
		c.remote = c.RemoteAddr().String()
	}
	return c.remote
}

// dateCache holds the Date value of the current second, which every answer of that second shares.
var dateCache atomic.Pointer[dateStamp]

type dateStamp struct {
	sec int64
	val []byte
}

func appendDate(b []byte) []byte {
	now := time.Now()
	d := dateCache.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateStamp{sec: now.Unix(), val: now.UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return append(b, d.val...)
}

// parseLeanHead reads a request head (up to and with its blank line) and reports whether the lean
// path answers it (see LeanRoute), with its raw query and whether the client asked for the
// connection to be closed after the answer. It answers only what net/http reads the same way, and
// leaves anything else to it: FuzzLeanHead holds the two to that.
func parseLeanHead(head []byte, path string) (query string, closeAfter, ok bool) {
	line, rest, _ := bytes.Cut(head, crlf)
	target, found := bytes.CutPrefix(line, []byte("GET "))
	if !found {
		return "", false, false
	}
	if target, found = bytes.CutSuffix(target, []byte(" HTTP/1.1")); !found {
		return "", false, false
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return "", false, false
		}
	}
	p, q, _ := bytes.Cut(target, []byte("?"))
	if string(p) != path {
		return "", false, false
	}
	hosts := 0
	for {
		line, rest, _ = bytes.Cut(rest, crlf)
		if len(line) == 0 {
			break // the blank line, which ends head
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || !validFieldName(name) || !validFieldValue(value) {
			return "", false, false
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, "host"):
			hosts++
			if !validLeanHost(value) {
				return "", false, false
			}
		case asciiEqualFold(name, "content-length"):
			if string(value) != "0" {
				return "", false, false
			}
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "expect"), asciiEqualFold(name, "upgrade"):
			return "", false, false
		case asciiEqualFold(name, "connection"):
			for _, tok := range bytes.Split(value, []byte(",")) {
				switch tok = bytes.Trim(tok, " \t"); {
				case asciiEqualFold(tok, "close"):
					closeAfter = true
				case asciiEqualFold(tok, "keep-alive"):
				default:
					return "", false, false
				}
			}
		}
	}
	if hosts != 1 {
		return "", false, false
	}
	return string(q), closeAfter, true
}

var crlf = []byte("\r\n")

// validFieldName reports whether b is a non-empty token (RFC 9110 section 5.6.2).
func validFieldName(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0) {
			return false
		}
	}
	return len(b) > 0
}

// validFieldValue reports whether b holds no control bytes but tabs, and no bytes above 0x7e
// (which net/http takes, but which no announce needs).
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// validLeanHost reports whether b is a host and optional port made of the bytes of names, IPv4
// and bracketed IPv6 addresses only.
func validLeanHost(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return len(b) > 0
}

// asciiEqualFold reports whether b is s (lower case) in any case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
