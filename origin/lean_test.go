package origin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseLeanHead(t *testing.T) {
	const h = "Host: tracker:6969\r\n"
	for _, tt := range []struct {
		name, head string
		ok         bool
		query      string
		close      bool
	}{
		{"announce", "GET /announce?info_hash=%01&port=1 HTTP/1.1\r\n" + h + "User-Agent: x\r\n\r\n", true, "info_hash=%01&port=1", false},
		{"no query", "GET /announce HTTP/1.1\r\n" + h + "\r\n", true, "", false},
		{"empty query", "GET /announce? HTTP/1.1\r\n" + h + "\r\n", true, "", false},
		{"close", "GET /announce?a HTTP/1.1\r\n" + h + "connection: Keep-Alive, CLOSE\r\n\r\n", true, "a", true},
		{"keep-alive", "GET /announce?a HTTP/1.1\r\n" + h + "Connection:keep-alive\r\n\r\n", true, "a", false},
		{"zero length", "GET /announce?a HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n", true, "a", false},
		{"host in any case, value trimmed", "GET /announce?a HTTP/1.1\r\nhOsT: \t[::1]:80 \r\n\r\n", true, "a", false},

		{"HEAD", "HEAD /announce?a HTTP/1.1\r\n" + h + "\r\n", false, "", false},
		{"POST", "POST /announce?a HTTP/1.1\r\n" + h + "Content-Length: 1\r\n\r\n", false, "", false},
		{"HTTP/1.0", "GET /announce?a HTTP/1.0\r\n" + h + "\r\n", false, "", false},
		{"other path", "GET /scrape?a HTTP/1.1\r\n" + h + "\r\n", false, "", false},
		{"longer path", "GET /announce/x?a HTTP/1.1\r\n" + h + "\r\n", false, "", false},
		{"escaped path", "GET /%61nnounce?a HTTP/1.1\r\n" + h + "\r\n", false, "", false},
		{"absolute form", "GET http://tracker/announce?a HTTP/1.1\r\n" + h + "\r\n", false, "", false},
		{"space in target", "GET /announce?a b HTTP/1.1\r\n" + h + "\r\n", false, "", false},
		{"fragment", "GET /announce?a#b HTTP/1.1\r\n" + h + "\r\n", false, "", false},
		{"control byte in target", "GET /announce?a\x7f HTTP/1.1\r\n" + h + "\r\n", false, "", false},
		{"no host", "GET /announce?a HTTP/1.1\r\n\r\n", false, "", false},
		{"two hosts", "GET /announce?a HTTP/1.1\r\n" + h + h + "\r\n", false, "", false},
		{"empty host", "GET /announce?a HTTP/1.1\r\nHost:\r\n\r\n", false, "", false},
		{"odd host", "GET /announce?a HTTP/1.1\r\nHost: a/b\r\n\r\n", false, "", false},
		{"body", "GET /announce?a HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\n", false, "", false},
		{"chunked", "GET /announce?a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n", false, "", false},
		{"expect", "GET /announce?a HTTP/1.1\r\n" + h + "Expect: 100-continue\r\n\r\n", false, "", false},
		{"upgrade", "GET /announce?a HTTP/1.1\r\n" + h + "Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n", false, "", false},
		{"other connection token", "GET /announce?a HTTP/1.1\r\n" + h + "Connection: TE\r\n\r\n", false, "", false},
		{"folded line", "GET /announce?a HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n", false, "", false},
		{"space before colon", "GET /announce?a HTTP/1.1\r\nHost : t\r\n\r\n", false, "", false},
		{"no colon", "GET /announce?a HTTP/1.1\r\n" + h + "garbage\r\n\r\n", false, "", false},
		{"bare LF", "GET /announce?a HTTP/1.1\r\n" + h + "X: a\nHost: b\r\n\r\n", false, "", false},
		{"bare LF after request line", "GET /announce?a HTTP/1.1\n" + h + "\r\n", false, "", false},
		{"NUL in value", "GET /announce?a HTTP/1.1\r\n" + h + "X: a\x00\r\n\r\n", false, "", false},
		{"non-ASCII value", "GET /announce?a HTTP/1.1\r\n" + h + "X: \xc3\xa9\r\n\r\n", false, "", false},
		{"TLS hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", false, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q, c, ok := parseLeanHead([]byte(tt.head), "/announce")
			if ok != tt.ok || q != tt.query || c != tt.close {
				t.Errorf("parseLeanHead(%q) = %q, close %v, ok %v; want %q, %v, %v", tt.head, q, c, ok, tt.query, tt.close, tt.ok)
			}
		})
	}
}

// FuzzLeanHead holds parseLeanHead to net/http: a head the lean path answers must be one that
// http.ReadRequest reads as a GET of the path with the same raw query, no body and the same
// wish to close. (The other way round is not required: the lean path may leave to net/http
// requests net/http would take.)
func FuzzLeanHead(f *testing.F) {
	for _, s := range []string{
		"GET /announce?info_hash=%01&port=1 HTTP/1.1\r\nHost: t:1\r\n\r\n",
		"GET /announce HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"GET /announce?a HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
		"GET /announce?a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST /announce HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, head string) {
		// The lean loop hands parseLeanHead what it read up to the first blank line.
		i := strings.Index(head, "\r\n\r\n")
		if i < 0 {
			return
		}
		head = head[:i+4]
		q, closeAfter, ok := parseLeanHead([]byte(head), "/announce")
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("lean path answers %q, which net/http refuses: %v", head, err)
		}
		if r.Method != "GET" || r.URL.Path != "/announce" || r.URL.RawQuery != q || r.ProtoMinor != 1 {
			t.Fatalf("lean path reads %q as GET /announce?%s, net/http as %s %s ? %s (HTTP/1.%d)", head, q, r.Method, r.URL.Path, r.URL.RawQuery, r.ProtoMinor)
		}
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 || r.Host == "" {
			t.Fatalf("lean path answers %q, which net/http reads with a body (%d, %q) or no host %q", head, r.ContentLength, r.TransferEncoding, r.Host)
		}
		if r.Close != closeAfter {
			t.Fatalf("lean path reads %q with close %v, net/http with %v", head, closeAfter, r.Close)
		}
	})
}

// leanAnswer is the route of the tests: it answers with the query and the client's address.
func leanAnswer(dst []byte, remote, query string) []byte {
	return fmt.Appendf(dst, "query=%s remote=%s", query, remote)
}

// serveLean serves, under lim, /announce with leanAnswer on the lean path and everything with a
// net/http handler that answers /announce the same way, other paths with "net/http METHOD PATH".
func serveLean(t *testing.T, lim Limits) (addr string, hs *http.Server) {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/announce" {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(leanAnswer(nil, r.RemoteAddr, r.URL.RawQuery))
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "net/http %s %s %s", r.Method, r.URL.Path, body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs, l := NewLeanHTTPServer(ln, h, lim, LeanRoute{Path: "/announce", Answer: leanAnswer})
	done := make(chan error, 1)
	go func() { done <- hs.Serve(l) }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), hs
}

type reply struct {
	status int
	header http.Header
	body   string
	close  bool // the reply said Connection: close
}

func readReply(t *testing.T, br *bufio.Reader, method string) reply {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the reply to a %s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the reply to a %s: %v", method, err)
	}
	return reply{resp.StatusCode, resp.Header, string(b), resp.Close}
}

// TestLeanConnection sends, on one connection, announces the lean path answers, then requests it
// leaves to net/http, some of them pipelined behind each other: every reply comes back in order,
// a lean answer has the header net/http gives the same answer (Date aside), and the connection
// keeps working after net/http took it over.
func TestLeanConnection(t *testing.T) {
	addr, _ := serveLean(t, Limits{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	remote := c.LocalAddr().String()
	const get = "GET /announce?%s HTTP/1.1\r\nHost: t\r\n\r\n"

	fmt.Fprintf(c, get, "n=1")
	lean := readReply(t, br, "GET")
	want := "query=n=1 remote=" + remote
	if lean.status != 200 || lean.body != want || lean.header.Get("Content-Type") != "text/plain" || lean.header.Get("Date") == "" {
		t.Fatalf("lean answer: %d %v %q, want 200 text/plain with a Date and %q", lean.status, lean.header, lean.body, want)
	}
	// Pipelined: two lean requests, a POST with a body that goes to net/http, and a request
	// the lean path would answer, which net/http now answers on this connection.
	fmt.Fprintf(c, get+get+"POST /other HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"+get, "n=2", "n=3", "n=4")
	for i, w := range []reply{
		{status: 200, body: "query=n=2 remote=" + remote}, {status: 200, body: "query=n=3 remote=" + remote},
		{status: 200, body: "net/http POST /other body"}, {status: 200, body: "query=n=4 remote=" + remote},
	} {
		method := "GET"
		if i == 2 {
			method = "POST"
		}
		if got := readReply(t, br, method); got.status != w.status || got.body != w.body {
			t.Errorf("reply %d: %d %q, want %d %q", i+2, got.status, got.body, w.status, w.body)
		} else if i == 3 {
			// net/http's answer to the same request: the lean answer's header but for Date.
			lean.header.Del("Date")
			got.header.Del("Date")
			if fmt.Sprint(lean.header) != fmt.Sprint(got.header) {
				t.Errorf("lean header %v, net/http's %v", lean.header, got.header)
			}
		}
	}

	// Connection: close is answered, then the connection closed.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprint(c2, "GET /announce?x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	br2 := bufio.NewReader(c2)
	if got := readReply(t, br2, "GET"); got.body != "query=x remote="+c2.LocalAddr().String() || !got.close {
		t.Errorf("answer to Connection: close: %v %q", got.header, got.body)
	}
	if n, err := br2.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the answer to Connection: close, read %d bytes, %v; want EOF", n, err)
	}
}

// TestLeanTimeouts: a lean connection is closed after the idle timeout between requests, and
// after the header timeout in the middle of a request's head, without an answer.
func TestLeanTimeouts(t *testing.T) {
	lim := Limits{HeaderTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}
	addr, _ := serveLean(t, lim)
	for _, tt := range []struct{ name, send string }{
		{"idle", "GET /announce?a HTTP/1.1\r\nHost: t\r\n\r\n"},
		{"slow head", "GET /announce?a HTTP/1.1\r\nHo"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprint(c, tt.send)
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("the server did not close the connection: %v", err)
			}
			answered := bytes.HasPrefix(got, []byte("HTTP/1.1 200 OK\r\n"))
			if answered != (tt.name == "idle") {
				t.Errorf("read %q before the close", got)
			}
		})
	}
}

// TestLeanMaxConns: an idle lean connection makes room for a new one when all are taken, and
// Shutdown closes lean connections that wait for a request.
func TestLeanMaxConns(t *testing.T) {
	addr, hs := serveLean(t, Limits{MaxConns: 1})
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		return c, bufio.NewReader(c)
	}
	a, abr := dial()
	fmt.Fprint(a, "GET /announce?a HTTP/1.1\r\nHost: t\r\n\r\n")
	readReply(t, abr, "GET") // a is now idle between requests
	// The loop marks a connection idle just after writing its answer: until then a new one may
	// still be refused.
	var bbr *bufio.Reader
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var b net.Conn
		b, bbr = dial()
		fmt.Fprint(b, "GET /announce?b HTTP/1.1\r\nHost: t\r\n\r\n")
		got := readReply(t, bbr, "GET")
		if got.status == 200 && strings.HasPrefix(got.body, "query=b ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the one slot idle for 5 s, a second connection: %d %q", got.status, got.body)
		}
	}
	if n, err := abr.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the idle connection, after another took its place: read %d bytes, %v; want EOF", n, err)
	}
	if err := hs.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, err := bbr.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("an idle connection after Shutdown: read %d bytes, %v; want EOF", n, err)
	}
}

// flakyListener fails its first Accept with a passing error, as a listener out of file
// descriptors does.
type flakyListener struct {
	net.Listener
	failed bool
}

type passingError struct{}

func (passingError) Error() string   { return "accept: too many open files" }
func (passingError) Timeout() bool   { return false }
func (passingError) Temporary() bool { return true }

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, passingError{}
	}
	return l.Listener.Accept()
}

// TestLeanAcceptError: an accept error that passes goes to net/http, which backs off and goes on
// serving, lean path included.
func TestLeanAcceptError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs, l := NewLeanHTTPServer(&flakyListener{Listener: ln}, http.NotFoundHandler(), Limits{}, LeanRoute{Path: "/announce", Answer: leanAnswer})
	hs.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(l) }()
	defer func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprint(c, "GET /announce?a HTTP/1.1\r\nHost: t\r\n\r\n")
	if got := readReply(t, bufio.NewReader(c), "GET"); got.status != 200 || !strings.HasPrefix(got.body, "query=a ") {
		t.Errorf("after a passing accept error: %d %q", got.status, got.body)
	}
}

// TestLeanPanic: a panic in Answer closes its connection with a log line and leaves the server
// serving others.
func TestLeanPanic(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answer := func(dst []byte, remote, query string) []byte {
		if query == "panic" {
			panic("the answer's bug")
		}
		return leanAnswer(dst, remote, query)
	}
	hs, l := NewLeanHTTPServer(ln, http.NotFoundHandler(), Limits{}, LeanRoute{Path: "/announce", Answer: answer})
	go hs.Serve(l)
	defer hs.Close()
	var logged lockedBuffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	dial := func(query string) net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET /announce?%s HTTP/1.1\r\nHost: t\r\n\r\n", query)
		return c
	}
	if got, err := io.ReadAll(dial("panic")); len(got) > 0 || err != nil {
		t.Errorf("the connection whose answer panicked: read %q, %v; want it closed with nothing", got, err)
	}
	if !strings.Contains(logged.String(), "panic answering") || !strings.Contains(logged.String(), "the answer's bug") {
		t.Errorf("log after the panic: %q", logged.String())
	}
	if got := readReply(t, bufio.NewReader(dial("fine")), "GET"); got.status != 200 || !strings.HasPrefix(got.body, "query=fine ") {
		t.Errorf("after a panic, another connection: %d %q", got.status, got.body)
	}
}

// lockedBuffer is a bytes.Buffer that goroutines may write while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
