package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// origin serves one package, pkg.bin, with its .torrent and .zsync, over real sockets: a
// net/http server in the test process, so that the test can throttle, count and break the
// package's replies byte by byte while the pkgsync process under test fetches from it.
type origin struct {
	l    *lab
	srv  *httptest.Server
	base string // http://127.0.0.1:port/

	mu     sync.Mutex
	ver    *published
	rate   int64     // package body bytes per second over all requests; 0: unthrottled
	next   time.Time // when the throttle lets the next chunk go
	fault  faultFunc
	onSent func(sent int64)
	frozen chan struct{} // when not nil, no body byte goes out until it is closed

	sent     atomic.Int64 // package body bytes written to the sockets
	requests atomic.Int64 // requests for the package
}

// faultFunc may answer the n-th request (from 0) for the package itself; it returns false to
// let the origin answer it normally.
type faultFunc func(n int, w http.ResponseWriter, r *http.Request, v *published) bool

// published is one version of the package as the origin serves it.
type published struct {
	data, torrent, zsync []byte
	etag                 string
}

// throttleChunk is how much of a body goes out at a time: the granularity of the throttle and
// of the kill points.
const throttleChunk = 8 << 10

func newOrigin(l *lab) *origin {
	o := &origin{l: l}
	o.srv = httptest.NewServer(o)
	l.T.Cleanup(o.srv.Close)
	o.base = o.srv.URL + "/"
	return o
}

// pkgURL is the package's URL; torrentURL and zsyncURL its metadata's.
func (o *origin) pkgURL() string     { return o.base + "pkg.bin" }
func (o *origin) torrentURL() string { return o.base + "pkg.bin.torrent" }

// publish makes data's .torrent and .zsync (prepare) and serves the three from now on.
func (o *origin) publish(data []byte, etag, announce string) *published {
	o.l.T.Helper()
	v := o.prepare(data, etag, announce)
	o.serve(v)
	return v
}

// serve publishes v: from now on the origin serves it.
func (o *origin) serve(v *published) {
	o.mu.Lock()
	o.ver = v
	o.mu.Unlock()
}

// prepare makes data's .torrent and .zsync with pkgsync make (the web seed this origin, the
// tracker announce, when not empty), for the origin to serve with data under ETag "etag".
func (o *origin) prepare(data []byte, etag, announce string) *published {
	l := o.l
	l.T.Helper()
	file := l.Write(data, "pub-"+etag, "pkg.bin")
	args := []string{"make", file, "--json", "--url", o.pkgURL()}
	if announce != "" {
		args = append(args, "--tracker", announce)
	}
	p := l.pkgsync("make "+etag, args...)
	if code, err := p.ExitCode(l.Ctx); err != nil || code != 0 {
		l.T.Fatalf("pkgsync make: %v, exit status %d\n%s", err, code, p.Stderr.String())
	}
	var r struct{ Torrent, Zsync string }
	if err := json.Unmarshal([]byte(p.Stdout.String()), &r); err != nil {
		l.T.Fatalf("pkgsync make --json printed %q: %v", p.Stdout.String(), err)
	}
	v := &published{data: data, etag: `"` + etag + `"`}
	for dst, name := range map[*[]byte]string{&v.torrent: r.Torrent, &v.zsync: r.Zsync} {
		if !filepath.IsAbs(name) {
			name = filepath.Join(l.Dir, name)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			l.T.Fatal(err)
		}
		*dst = b
	}
	return v
}

// set changes the origin's behaviour: the throttle (bytes per second, 0: none), the fault and
// the hook that hears of every chunk of the package's body sent.
func (o *origin) set(rate int64, fault faultFunc, onSent func(int64)) {
	o.mu.Lock()
	o.rate, o.fault, o.onSent = rate, fault, onSent
	o.mu.Unlock()
}

// reset zeroes the counters.
func (o *origin) reset() {
	o.sent.Store(0)
	o.requests.Store(0)
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	v, fault := o.ver, o.fault
	o.mu.Unlock()
	switch r.URL.Path {
	case "/pkg.bin.torrent":
		w.Write(v.torrent)
	case "/pkg.bin.zsync":
		w.Write(v.zsync)
	case "/pkg.bin":
		n := int(o.requests.Add(1)) - 1
		w.Header().Set("Etag", v.etag)
		if fault != nil && fault(n, w, r, v) {
			return
		}
		http.ServeContent(throttled{w, o}, r, "pkg.bin", time.Time{}, bytes.NewReader(v.data))
	default:
		http.NotFound(w, r)
	}
}

// throttled writes the package's body in chunks at the origin's rate, flushing each, and
// counts what it wrote.
type throttled struct {
	http.ResponseWriter
	o *origin
}

func (w throttled) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), throttleChunk)
		w.o.wait(k)
		m, err := w.ResponseWriter.Write(p[:k])
		if err == nil {
			err = http.NewResponseController(w.ResponseWriter).Flush()
		}
		n += m
		w.o.count(m)
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// freeze stops every body until the returned function is called.
func (o *origin) freeze() (thaw func()) {
	c := make(chan struct{})
	o.mu.Lock()
	o.frozen = c
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		o.frozen = nil
		o.mu.Unlock()
		close(c)
	}
}

// wait takes k bytes' worth of time from the throttle, shared by all requests.
func (o *origin) wait(k int) {
	o.mu.Lock()
	if c := o.frozen; c != nil {
		o.mu.Unlock()
		<-c
		o.mu.Lock()
	}
	if o.rate <= 0 {
		o.mu.Unlock()
		return
	}
	now := time.Now()
	start := o.next
	if start.Before(now) {
		start = now // after a pause, no burst of saved-up time
	}
	o.next = start.Add(time.Duration(int64(k) * int64(time.Second) / o.rate))
	until := o.next
	o.mu.Unlock()
	time.Sleep(time.Until(until))
}

func (o *origin) count(m int) {
	total := o.sent.Add(int64(m))
	o.mu.Lock()
	f := o.onSent
	o.mu.Unlock()
	if f != nil {
		f(total)
	}
}

// recorded is the reply the origin would send to r for v, held in memory so that a fault can
// change it before it goes out.
func recorded(r *http.Request, v *published) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	rec.Header().Set("Etag", v.etag)
	http.ServeContent(rec, r, "pkg.bin", time.Time{}, bytes.NewReader(v.data))
	return rec
}

// sendRaw writes rec's status and headers and the first cut bytes of its body (Content-Length
// says all of it) on w's connection, then ends it: "reset" with a TCP RST, "close" with a clean
// FIN, "stall" by sending nothing more until the client gives up (at most a minute).
func sendRaw(w http.ResponseWriter, rec *httptest.ResponseRecorder, cut int, end string) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	body := rec.Body.Bytes()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", rec.Code, http.StatusText(rec.Code))
	h := rec.Header().Clone()
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Write(buf)
	buf.WriteString("\r\n")
	buf.Write(body[:cut])
	buf.Flush()
	switch end {
	case "reset":
		conn.(*net.TCPConn).SetLinger(0)
	case "stall":
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		var b [512]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				break
			}
		}
	}
	conn.Close()
}

// sendRecorded sends rec as the reply.
func sendRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(rec.Body.Len()))
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

var contentRangeRE = regexp.MustCompile(`(?i)content-range: bytes (\d+)-(\d+)/(\d+)`)

// shiftContentRange moves the first Content-Range of rec (the header of a single-part reply,
// else the first part's) one byte on, keeping the body: the reply then labels its bytes wrong.
func shiftContentRange(rec *httptest.ResponseRecorder) {
	shift := func(first, last, total int64) string {
		if last+1 < total {
			first, last = first+1, last+1
		} else {
			first, last = first-1, last-1
		}
		return fmt.Sprintf("bytes %d-%d/%d", first, last, total)
	}
	if cr := rec.Header().Get("Content-Range"); cr != "" {
		m := contentRangeRE.FindStringSubmatch("Content-Range: " + cr)
		a, _ := strconv.ParseInt(m[1], 10, 64)
		b, _ := strconv.ParseInt(m[2], 10, 64)
		t, _ := strconv.ParseInt(m[3], 10, 64)
		rec.Header().Set("Content-Range", shift(a, b, t))
		return
	}
	body := rec.Body.Bytes()
	loc := contentRangeRE.FindSubmatchIndex(body)
	if loc == nil {
		return
	}
	a, _ := strconv.ParseInt(string(body[loc[2]:loc[3]]), 10, 64)
	b, _ := strconv.ParseInt(string(body[loc[4]:loc[5]]), 10, 64)
	t, _ := strconv.ParseInt(string(body[loc[6]:loc[7]]), 10, 64)
	out := append([]byte(nil), body[:loc[0]]...)
	out = append(out, "Content-Range: "+shift(a, b, t)...)
	out = append(out, body[loc[1]:]...)
	rec.Body = bytes.NewBuffer(out)
}

// corruptBody flips one byte of the file's data in rec's body (in the first part of a
// multipart reply), leaving every header right.
func corruptBody(rec *httptest.ResponseRecorder) {
	body := rec.Body.Bytes()
	at := len(body) / 2
	if rec.Header().Get("Content-Range") == "" {
		if loc := contentRangeRE.FindIndex(body); loc != nil {
			if k := bytes.Index(body[loc[1]:], []byte("\r\n\r\n")); k >= 0 {
				at = loc[1] + k + 4 + 100
			}
		}
	}
	body[at] ^= 0xff
}
