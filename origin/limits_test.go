package origin

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// serveLimited serves dir on a real socket on 127.0.0.1 under lim. Accepted connections get an
// 8 KiB send buffer, so that a client that stops reading blocks the server's writes after a few
// KiB rather than after the megabytes loopback buffers take.
func serveLimited(t *testing.T, dir string, lim Limits) string {
	t.Helper()
	srv, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs, l := NewHTTPServer(smallSendBuffers{ln}, srv, lim)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(l) }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		srv.Close()
	})
	return ln.Addr().String()
}

type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// dialSmall connects with an 8 KiB receive buffer (see serveLimited).
func dialSmall(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	// The buffer is set before connecting, so that the window scale fits it: shrinking it on an
	// open connection makes the kernel fall back on zero-window probes, which stall for longer
	// than the test's send timeout.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
		})
		return cmp.Or(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	t.Cleanup(func() { tc.Close() })
	return tc
}

// rawGet sends one request with the request-target exactly as given and reads the reply.
func rawGet(t *testing.T, addr, method, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n", method, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, target, err)
	}
	return resp.StatusCode, string(b)
}

// TestPathConfinement asks for files outside DIR every way a request-target can spell it, on a
// raw socket so that no client cleans the path first: the reply is a 4xx and never the file.
func TestPathConfinement(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "pkgs")
	outside := filepath.Join(top, "outside")
	for _, d := range []string{dir, outside, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const secret = "TOP SECRET, outside the served folder"
	for name, content := range map[string]string{
		filepath.Join(dir, "pkg.tar"):      "the package",
		filepath.Join(dir, "sub", "x"):     "x",
		filepath.Join(dir, ".hidden"):      secret,
		filepath.Join(outside, "secret"):   secret,
		filepath.Join(outside, "pkg.tar"):  secret,
		filepath.Join(outside, ".zsecret"): secret,
	} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"inlink":     "pkg.tar",                              // inside: served
		"sub/uplink": "../pkg.tar",                           // inside, through ..: served
		"escape":     filepath.Join(outside, "secret"),       // absolute, outside
		"relescape":  "../outside/secret",                    // relative, outside
		"escdir":     outside,                                // a folder outside
		"loop":       "loop",                                 // a link to itself
		"dangling":   filepath.Join(outside, "no such file"), // outside and missing
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	addr := serveLimited(t, dir, Limits{})

	served := []struct{ target, body string }{
		{"/pkg.tar", "the package"},
		{"/inlink", "the package"},
		{"/sub/uplink", "the package"},
		{"/sub/../pkg.tar", "the package"},
		{"/sub/%2e%2e/pkg.tar", "the package"},
		{"http://origin/pkg.tar", "the package"},
	}
	for _, tt := range served {
		t.Run("served "+tt.target, func(t *testing.T) {
			if status, body := rawGet(t, addr, "GET", tt.target); status != 200 || body != tt.body {
				t.Fatalf("status %d body %q, want 200 %q", status, body, tt.body)
			}
		})
	}
	abs := filepath.ToSlash(outside)
	refused := []string{
		"/../outside/secret",
		"/../../../../../../../../etc/passwd",
		"/%2e%2e/outside/secret",
		"/%2E%2E/outside/secret",
		"/%2e%2e%2foutside%2fsecret",
		"/..%2foutside%2fsecret",
		"/.%2e/outside/secret",
		"/sub/../../outside/secret",
		"/sub/%2e%2e/%2e%2e/outside/secret",
		"/%252e%252e/outside/secret", // double encoding stays a literal name
		abs + "/secret",              // an absolute path as the target
		"/" + abs + "/secret",
		"/%2f" + strings.TrimPrefix(abs, "/") + "/secret",
		"http://origin" + abs + "/secret", // absolute-form
		"http://origin/../outside/secret",
		"/..\\outside\\secret",
		"\\..\\outside\\secret",
		"/escape",
		"/relescape",
		"/escdir/secret",
		"/escdir/pkg.tar",
		"/escdir/.zsecret",
		"/loop",
		"/dangling",
		"/.hidden",
		"/sub/%00",
		"/sub",
		"/",
		"*",
	}
	for _, target := range refused {
		for _, method := range []string{"GET", "HEAD"} {
			t.Run(method+" "+target, func(t *testing.T) {
				status, body := rawGet(t, addr, method, target)
				if status != 400 && status != 403 && status != 404 {
					t.Fatalf("status %d (body %.60q), want 400, 403 or 404", status, body)
				}
				if strings.Contains(body, "SECRET") {
					t.Fatalf("status %d with the file outside: %q", status, body)
				}
			})
		}
	}
}

// TestConditional checks HEAD and the conditional requests (If-None-Match, If-Modified-Since,
// If-Match, If-Unmodified-Since, If-Range) against a real socket.
func TestConditional(t *testing.T) {
	dir := t.TempDir()
	content := strings.Repeat("0123456789", 100)
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	name := filepath.Join(dir, "pkg.tar")
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(name, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	srv, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs, l := NewHTTPServer(ln, srv, Limits{})
	go hs.Serve(l)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + "/pkg.tar"

	resp, err := http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if etag == "" || strings.HasPrefix(etag, "W/") || lastMod != mtime.Format(http.TimeFormat) {
		t.Fatalf("HEAD: ETag %q, Last-Modified %q: want a strong ETag and %s", etag, lastMod, mtime.Format(http.TimeFormat))
	}
	before, after := mtime.Add(-time.Hour).Format(http.TimeFormat), mtime.Add(time.Hour).Format(http.TimeFormat)
	h := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		method string
		hdr    map[string]string
		status int
		body   string // the whole body expected ("" with a 304 or HEAD)
		length string // Content-Length expected, "" = absent
		crange string // Content-Range expected
	}{
		{"HEAD", "HEAD", nil, 200, "", "1000", ""},
		{"HEAD range", "HEAD", h("Range", "bytes=10-19"), 206, "", "10", "bytes 10-19/1000"},
		{"HEAD unsatisfiable", "HEAD", h("Range", "bytes=5000-"), 416, "", "", "bytes */1000"},
		{"HEAD if-none-match", "HEAD", h("If-None-Match", etag), 304, "", "", ""},
		{"GET", "GET", nil, 200, content, "1000", ""},
		{"if-none-match same", "GET", h("If-None-Match", etag), 304, "", "", ""},
		{"if-none-match weak form", "GET", h("If-None-Match", "W/"+etag), 304, "", "", ""},
		{"if-none-match in a list", "GET", h("If-None-Match", `"a", `+etag), 304, "", "", ""},
		{"if-none-match star", "GET", h("If-None-Match", "*"), 304, "", "", ""},
		{"if-none-match other", "GET", h("If-None-Match", `"other"`), 200, content, "1000", ""},
		{"if-modified-since same", "GET", h("If-Modified-Since", lastMod), 304, "", "", ""},
		{"if-modified-since later", "GET", h("If-Modified-Since", after), 304, "", "", ""},
		{"if-modified-since earlier", "GET", h("If-Modified-Since", before), 200, content, "1000", ""},
		{"if-none-match wins over if-modified-since", "GET", h("If-None-Match", `"other"`, "If-Modified-Since", lastMod), 200, content, "1000", ""},
		{"if-match same", "GET", h("If-Match", etag), 200, content, "1000", ""},
		{"if-match other", "GET", h("If-Match", `"other"`), 412, "", "", ""},
		{"if-unmodified-since earlier", "GET", h("If-Unmodified-Since", before), 412, "", "", ""},
		{"if-unmodified-since same", "GET", h("Range", "bytes=0-3", "If-Unmodified-Since", lastMod), 206, "0123", "4", "bytes 0-3/1000"},
		{"if-range etag", "GET", h("Range", "bytes=10-19", "If-Range", etag), 206, "0123456789", "10", "bytes 10-19/1000"},
		{"if-range stale etag", "GET", h("Range", "bytes=10-19", "If-Range", `"old"`), 200, content, "1000", ""},
		{"if-range weak etag", "GET", h("Range", "bytes=10-19", "If-Range", "W/"+etag), 200, content, "1000", ""},
		{"if-range date", "GET", h("Range", "bytes=10-19", "If-Range", lastMod), 206, "0123456789", "10", "bytes 10-19/1000"},
		{"if-range old date", "GET", h("Range", "bytes=10-19", "If-Range", before), 200, content, "1000", ""},
		{"if-range without range", "GET", h("If-Range", etag), 200, content, "1000", ""},
		{"unknown range unit ignored", "GET", h("Range", "items=0-3"), 200, content, "1000", ""},
		{"range unit in capitals", "GET", h("Range", "Bytes=0-3"), 206, "0123", "4", "bytes 0-3/1000"},
		{"malformed range", "GET", h("Range", "bytes=3-1"), 416, "", "", ""},
		{"empty suffix range", "GET", h("Range", "bytes=-0"), 416, "", "", "bytes */1000"},
		{"empty suffix range in a set", "GET", h("Range", "bytes=-00, 2-3"), 206, "23", "2", "bytes 2-3/1000"},
		{"empty suffix range with spaces", "GET", h("Range", "BYtes=- 0 "), 416, "", "", "bytes */1000"},
	}
	var bodyBytes int64 // what the GETs received
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, url, nil)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			bodyBytes += int64(len(b))
			if tt.method == "HEAD" && len(b) > 0 {
				t.Fatalf("HEAD reply with a %d-byte body", len(b))
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 412 && tt.status != 416 && string(b) != tt.body {
				t.Fatalf("body %.40q (%d bytes), want %.40q", b, len(b), tt.body)
			}
			if got := resp.Header.Get("Content-Length"); got != tt.length && !(tt.length == "" && tt.status >= 400) {
				t.Fatalf("Content-Length %q, want %q", got, tt.length)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.crange {
				t.Fatalf("Content-Range %q, want %q", got, tt.crange)
			}
			if tt.status == 304 && resp.Header.Get("ETag") != etag {
				t.Fatalf("304 with ETag %q, want %q", resp.Header.Get("ETag"), etag)
			}
		})
	}
	// The stats count the body bytes sent, none for HEAD and 304.
	if got := srv.Stats().Files["/pkg.tar"].BodyBytes; got != bodyBytes {
		t.Fatalf("stats count %d body bytes, the replies had %d", got, bodyBytes)
	}
}

// TestSlowClients holds connections the ways a slow or hostile client does, against a server
// with timeouts of a fraction of a second: each is dropped within its timeout (plus slack),
// while a download that is slow but keeps moving completes though it lasts many times the
// send timeout.
func TestSlowClients(t *testing.T) {
	const timeout = 300 * time.Millisecond
	lim := Limits{HeaderTimeout: timeout, IdleTimeout: timeout, SendTimeout: timeout, MaxConns: 16}
	dir := t.TempDir()
	const big = 4 << 20
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(big); err != nil {
		t.Fatal(err)
	}
	f.Close()
	const small = 256 << 10
	if err := os.WriteFile(filepath.Join(dir, "small"), make([]byte, small), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := serveLimited(t, dir, lim)

	// drip writes s one byte every 50 ms until the server closes the connection.
	drip := func(c net.Conn, s string) {
		for i := range len(s) {
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	tests := []struct {
		name string
		// client acts on the connection and returns when it has done what it holds the
		// connection with; the server must then close it within maxHold.
		client  func(t *testing.T, c *net.TCPConn)
		maxHold time.Duration
	}{
		{"header sent byte by byte", func(t *testing.T, c *net.TCPConn) {
			go drip(c, "GET /small HTTP/1.1\r\nHost: origin\r\nX-Slow: "+strings.Repeat("a", 1000)+"\r\n\r\n")
		}, timeout},
		{"nothing sent", func(t *testing.T, c *net.TCPConn) {}, timeout},
		{"body sent byte by byte", func(t *testing.T, c *net.TCPConn) {
			fmt.Fprintf(c, "POST /small HTTP/1.1\r\nHost: origin\r\nContent-Length: 100000\r\n\r\n")
			go drip(c, strings.Repeat("b", 100000))
		}, timeout},
		{"chunked body sent byte by byte", func(t *testing.T, c *net.TCPConn) {
			fmt.Fprintf(c, "POST /announce HTTP/1.1\r\nHost: origin\r\nTransfer-Encoding: chunked\r\n\r\n")
			go drip(c, "186a0\r\n"+strings.Repeat("c", 100000))
		}, timeout},
		{"idle after a request", func(t *testing.T, c *net.TCPConn) {
			fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: origin\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != small {
				t.Fatalf("first request: %d bytes, %v", n, err)
			}
		}, timeout},
		{"reply not read", func(t *testing.T, c *net.TCPConn) {
			fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: origin\r\n\r\n")
		}, timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialSmall(t, addr)
			start := time.Now()
			tt.client(t, c)
			// Wait out the hold time the server allows, then read for at most a second: the
			// server must have closed the connection by then, and what arrives must end
			// before a whole reply could have been sent.
			time.Sleep(tt.maxHold + 500*time.Millisecond)
			c.SetReadDeadline(time.Now().Add(time.Second))
			b, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the connection was still open %v after the client began (%d bytes read)", time.Since(start), len(b))
			}
			if len(b) >= big {
				t.Fatalf("read %d bytes: the whole reply was sent to a client that took none of it for %v", len(b), tt.maxHold)
			}
			t.Logf("closed; read %d bytes (%.40q...) and %v", len(b), b, err)
		})
	}

	t.Run("slow download that moves", func(t *testing.T) {
		c := dialSmall(t, addr)
		fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n")
		start := time.Now()
		var got int
		buf := make([]byte, 8<<10)
		for {
			time.Sleep(30 * time.Millisecond)
			n, err := c.Read(buf)
			got += n
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d bytes in %v: %v", got, time.Since(start), err)
			}
		}
		if got < small {
			t.Fatalf("got %d bytes, want the %d-byte body and its header", got, small)
		}
		if d := time.Since(start); d < 3*timeout {
			t.Fatalf("the download took %v, not the several send timeouts the test needs: the buffers absorbed it", d)
		} else {
			t.Logf("%d bytes in %v, %.1f send timeouts", got, d.Round(time.Millisecond), float64(d)/float64(timeout))
		}
	})
}

// TestMaxConns fills the server's connections: a connection beyond the cap gets a 503 that
// says so, an idle keep-alive connection makes room for a new one, a freed slot is served again,
// and beyond the refusals connections are closed without a reply.
func TestMaxConns(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pkg.tar"), []byte("the package"), 0o644); err != nil {
		t.Fatal(err)
	}
	const maxConns = 2
	lim := Limits{HeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, MaxConns: maxConns}
	addr := serveLimited(t, dir, lim)

	// request sends a GET on c and reads the reply.
	tryRequest := func(c net.Conn, close bool) (*http.Response, string, error) {
		hdr := ""
		if close {
			hdr = "Connection: close\r\n"
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /pkg.tar HTTP/1.1\r\nHost: origin\r\n%s\r\n", hdr)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, "", err
		}
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	request := func(t *testing.T, c net.Conn, close bool) (*http.Response, string) {
		t.Helper()
		resp, body, err := tryRequest(c, close)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin reports whether the server closes c without a byte within d.
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		n, err := c.Read(make([]byte, 1))
		return n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	closedAtOnce := func(c net.Conn) bool { return closedWithin(c, 2*time.Second) }
	// stillOpen returns those of cs that the server has not closed (100 ms each to show).
	stillOpen := func(cs []net.Conn) []net.Conn {
		return slices.DeleteFunc(cs, func(c net.Conn) bool { return closedWithin(c, 100*time.Millisecond) })
	}

	t.Run("busy connections", func(t *testing.T) {
		// Two connections that have not sent a request yet hold both slots.
		held := []net.Conn{dial(t), dial(t)}
		time.Sleep(100 * time.Millisecond)
		resp, body := request(t, dial(t), false)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "at most 2 connections") || !resp.Close {
			t.Fatalf("over the cap: %d, Retry-After %q, close %v, body %q; want 503, Retry-After, close and the cap named",
				resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close, body)
		}
		// Beyond the refusals (maxConns/4+4) the server closes without a word. The refused
		// connection above may still hold one for half a second (net/http lingers before it
		// closes), so of refusals+1 new connections one or two are closed at once.
		var extra []net.Conn
		for range maxConns/4 + 4 + 1 {
			extra = append(extra, dial(t))
		}
		var closed atomic.Int32
		var wg sync.WaitGroup
		for _, c := range extra {
			wg.Go(func() {
				if closedAtOnce(c) {
					closed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := closed.Load(); n != 1 && n != 2 {
			t.Fatalf("of %d connections beyond the cap, %d were closed at once; want 1 or 2", len(extra), n)
		}
		for _, c := range extra {
			c.Close()
		}
		// A freed slot serves again (the server notices the close on its next read; until
		// then a new connection is refused, or closed while the refusals are taken).
		held[0].Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, body, err := tryRequest(dial(t), true)
			if err == nil && resp.StatusCode == 200 && body == "the package" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a slot freed 5 s ago is still refused: %v %q %v", resp, body, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		held[1].Close()
	})

	t.Run("idle connections make room", func(t *testing.T) {
		// Wait for the previous subtest's connections to be gone. Until the server has seen
		// the last one close, it still holds a slot, and a new connection may close one of
		// ours to make room: those are dropped and replaced.
		deadline := time.Now().Add(5 * time.Second)
		var idle []net.Conn
		for {
			if idle = stillOpen(idle); len(idle) == maxConns {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("slots still taken 5 s after their connections closed")
			}
			c := dial(t)
			if resp, _, err := tryRequest(c, false); err == nil && resp.StatusCode == 200 {
				idle = append(idle, c)
				continue
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Both slots hold idle keep-alive connections: a new one is served, and one of the
		// idle ones is closed to make room. (The server marks a connection idle just after
		// its reply: until then a new one may still be refused.)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, body := request(t, dial(t), true)
			if resp.StatusCode == 200 && body == "the package" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("with both slots idle for 5 s: %d %q, want 200", resp.StatusCode, body)
			}
		}
		closed := 0
		for _, c := range idle {
			if closedAtOnce(c) {
				closed++
			}
		}
		if closed != 1 {
			t.Fatalf("%d idle connections closed, want 1", closed)
		}
	})
}
