// Package loadgen replays BitTorrent announces against an HTTP tracker, the way a fleet of nodes
// updating packages from cron would: Peers peers, each in one of Packages torrents, announce once
// with event=started (Register), then re-announce in a spread order (Replay) while the latency of
// every announce is recorded. tracker's BenchmarkLoad and cmd/trackerload both drive it.
//
// Each peer claims its own address with ip= (10.x.y.z, so that the tracker ranks by common address
// prefix as it does in a data center), so that one loopback client stands for the whole fleet.
// Requests go over Conns keep-alive connections, each with one request in flight, written and read
// by a minimal HTTP/1.1 client: net/http's client costs more CPU per request than the tracker
// itself, and the load generator shares the machine with the server it measures.
//
// # Closed and open loop
//
// Register, and Replay with Config.Rate zero, are a closed loop: each connection sends its next
// announce as soon as the answer to the last one is read, so at most Conns announces wait at the
// server, and a latency is the time from the request's first byte written to the answer's last
// byte read. A closed loop finds the most a server answers, but it hides queueing: when the server
// stalls, the generator stalls with it and sends nothing, so the announces a fleet would have sent
// meanwhile are never measured (coordinated omission), and by Little's law its latencies are
// Conns over the rate whatever the server does.
//
// Replay with Config.Rate set is an open loop, as a fleet is: announce k is due at Rate × k after
// the start whether or not earlier ones were answered, and its latency runs from when it was due,
// not from when a free connection could send it, so a stall counts against every announce it
// delayed. Result.LagP99 says how late announces were sent against that schedule: the server's
// queueing shows there when every connection waits for an answer, and so does the generator's
// own lateness (Go's timers sleep in whole milliseconds when nothing else wakes the process).
//
// Every loop is bounded: Register sends Peers announces, Replay at most Announces, each phase for
// at most Duration, and both stop when the context ends.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes a load.
type Config struct {
	// URL is the announce URL, http://host:port/announce, with any query it must carry (a secret).
	URL string
	// Peers is the number of peers, spread evenly over Packages torrents.
	Peers, Packages int
	// Conns is the number of keep-alive connections, each with one announce in flight.
	Conns int
	// Announces bounds the re-announces of Replay. Duration bounds the time of each phase, zero
	// meaning a minute: Replay stops when it runs out, Register fails.
	Announces int
	Duration  time.Duration
	// Rate, if positive, makes Replay an open loop (see the package doc): announce k is due at
	// k/Rate seconds after the start, and its latency counts from then. Zero: a closed loop.
	Rate float64
	// Dial, if not nil, opens the connections (tests bind a local address with it).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is what one phase measured.
type Result struct {
	Announces int           // announces answered
	Elapsed   time.Duration // wall time of the phase
	// Latency percentiles: from the request written (closed loop) or due (open loop) to the
	// answer read.
	P50, P99 time.Duration
	Max      time.Duration
	Peers    int // peers listed in all answers, summed
	// Offered is the open loop's rate (Config.Rate), zero for a closed loop. LagP99 is the 99th
	// percentile of how late announces were sent against its schedule.
	Offered float64
	LagP99  time.Duration
}

// Rate is announces per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Announces) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	avg := 0.0
	if r.Announces > 0 {
		avg = float64(r.Peers) / float64(r.Announces)
	}
	s := fmt.Sprintf("%d announces in %v: %.0f/s, p50 %v, p99 %v, max %v, %.1f peers per answer",
		r.Announces, r.Elapsed.Round(time.Millisecond), r.Rate(), r.P50, r.P99, r.Max, avg)
	if r.Offered > 0 {
		s += fmt.Sprintf(" (open loop at %.0f/s, sent late by p99 %v)", r.Offered, r.LagP99)
	} else {
		s += " (closed loop)"
	}
	return s
}

// Load is a prepared load: the query of every peer, built once.
type Load struct {
	cfg    Config
	host   string // Host header
	addr   string // host:port to dial
	target string // request target before the peer's own query: /announce?[given query&]
	peers  []string
}

// New checks cfg and builds every peer's query.
func New(cfg Config) (*Load, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("announce URL %q: %w", cfg.URL, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("announce URL %q: want http://host:port/path", cfg.URL)
	}
	if cfg.Peers <= 0 || cfg.Packages <= 0 || cfg.Conns <= 0 {
		return nil, fmt.Errorf("peers (%d), packages (%d) and conns (%d) must be positive", cfg.Peers, cfg.Packages, cfg.Conns)
	}
	if cfg.Peers > 1<<24 {
		return nil, fmt.Errorf("%d peers: at most %d fit in 10.0.0.0/8", cfg.Peers, 1<<24)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = time.Minute
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return nil, fmt.Errorf("rate %v: want announces per second, or 0 for a closed loop", cfg.Rate)
	}
	l := &Load{cfg: cfg, host: u.Host, addr: u.Host, target: u.EscapedPath() + "?"}
	if u.Port() == "" {
		l.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if u.RawQuery != "" {
		l.target += u.RawQuery + "&"
	}
	l.peers = make([]string, cfg.Peers)
	for i := range l.peers {
		l.peers[i] = peerQuery(i, cfg.Packages)
	}
	return l, nil
}

// InfoHash is the info hash of package k.
func InfoHash(k int) (ih [20]byte) {
	copy(ih[:], fmt.Sprintf("loadgen-package-%04d", k))
	return ih
}

// peerQuery is peer i's announce query without event: in package i mod packages, at 10.x.y.z
// (i in the low 24 bits), one in ten a seeder.
func peerQuery(i, packages int) string {
	ih := InfoHash(i % packages)
	var id [20]byte
	copy(id[:], fmt.Sprintf("-LG0001-%012d", i))
	left := "1048576"
	if i%10 == 0 {
		left = "0"
	}
	return "info_hash=" + url.QueryEscape(string(ih[:])) +
		"&peer_id=" + url.QueryEscape(string(id[:])) +
		"&port=6881&uploaded=0&downloaded=0&left=" + left + "&compact=1" +
		fmt.Sprintf("&ip=10.%d.%d.%d", byte(i>>16), byte(i>>8), byte(i))
}

// Register announces every peer once with event=started, in order.
func (l *Load) Register(ctx context.Context) (Result, error) {
	r, err := l.run(ctx, len(l.peers), l.cfg.Duration, 0, func(k int) (int, string) { return k, "&event=started" })
	if err == nil && r.Announces < len(l.peers) {
		err = fmt.Errorf("registered %d of %d peers within %v", r.Announces, len(l.peers), l.cfg.Duration)
	}
	return r, err
}

// Replay re-announces peers in a spread order (a stride coprime with Peers, so that consecutive
// announces hit different torrents and every peer comes round once per pass) until Announces are
// answered or Duration has passed: as fast as the tracker answers, or at Config.Rate.
func (l *Load) Replay(ctx context.Context) (Result, error) {
	n := len(l.peers)
	stride := 7919 // prime
	for gcd(stride, n) != 1 {
		stride += 2
	}
	return l.run(ctx, l.cfg.Announces, l.cfg.Duration, l.cfg.Rate, func(k int) (int, string) {
		return int((int64(k) * int64(stride)) % int64(n)), ""
	})
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// run sends total announces (announce k from pick(k)) over the connections, for at most d: in a
// closed loop, or in an open one at rate announces per second when rate is positive.
func (l *Load) run(parent context.Context, total int, d time.Duration, rate float64, pick func(k int) (peer int, extra string)) (Result, error) {
	ctx, cancel := context.WithTimeout(parent, d)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat, lag = make([]time.Duration, 0, total), []time.Duration(nil)
		peers    int
		firstEr  error
	)
	s := schedule{start: time.Now(), rate: rate}
	for range min(l.cfg.Conns, total) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{l: l, s: s, next: &next, total: total, pick: pick}
			err := w.run(ctx)
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, w.lat...)
			lag = append(lag, w.lag...)
			peers += w.listed
			if err != nil && firstEr == nil {
				firstEr = err
				cancel() // the other workers stop too
			}
		}()
	}
	wg.Wait()
	r := Result{Announces: len(lat), Elapsed: time.Since(s.start), Peers: peers, Offered: rate}
	r.P50, r.P99, r.Max = percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
	r.LagP99 = percentile(lag, 99)
	// The deadline of a phase ends it; it is not a failure.
	if firstEr != nil && !errors.Is(firstEr, context.DeadlineExceeded) {
		return r, firstEr
	}
	if err := context.Cause(parent); err != nil {
		return r, err
	}
	return r, nil
}

// percentile sorts xs and returns its p-th percentile (the largest for 100), zero when empty.
func percentile(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[min(len(xs)-1, len(xs)*p/100)]
}

// schedule is when each announce of an open loop is due; a zero rate is a closed loop, where
// an announce is due when a connection is free to send it.
type schedule struct {
	start time.Time
	rate  float64
}

func (s schedule) due(k int) time.Time {
	return s.start.Add(time.Duration(float64(k) / s.rate * float64(time.Second)))
}

// worker sends announces on one connection and keeps what it measured.
type worker struct {
	l     *Load
	s     schedule
	next  *atomic.Int64
	total int
	pick  func(int) (int, string)

	lat, lag []time.Duration
	listed   int
	timer    *time.Timer
	bw       *bufio.Writer
	br       *bufio.Reader
	body     []byte
}

// run sends announces until total are taken or ctx ends.
func (w *worker) run(ctx context.Context) error {
	dial := w.l.cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", w.l.addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", w.l.addr, err)
	}
	defer conn.Close()
	// A closed context unblocks the read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	w.bw, w.br = bufio.NewWriterSize(conn, 1024), bufio.NewReaderSize(conn, 16<<10)
	for {
		k := int(w.next.Add(1) - 1)
		if k >= w.total || ctx.Err() != nil {
			return ctx.Err()
		}
		from := time.Now()
		if w.s.rate > 0 {
			due := w.s.due(k)
			if err := w.sleepUntil(ctx, due); err != nil {
				return err
			}
			sent := time.Now()
			w.lag = append(w.lag, max(0, sent.Sub(due)))
			from = due
		}
		if err := w.announce(ctx, k); err != nil {
			return err
		}
		w.lat = append(w.lat, time.Since(from))
	}
}

// sleepUntil waits for t or the end of ctx.
func (w *worker) sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-w.timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// announce sends announce k and reads its answer.
func (w *worker) announce(ctx context.Context, k int) error {
	l := w.l
	peer, extra := w.pick(k)
	w.bw.WriteString("GET ")
	w.bw.WriteString(l.target)
	w.bw.WriteString(l.peers[peer])
	w.bw.WriteString(extra)
	w.bw.WriteString(" HTTP/1.1\r\nHost: ")
	w.bw.WriteString(l.host)
	w.bw.WriteString("\r\nUser-Agent: pkgsync-loadgen\r\n\r\n")
	if err := w.bw.Flush(); err != nil {
		return l.connErr(ctx, "send announce", err)
	}
	status, n, err := readHead(w.br)
	if err != nil {
		return l.connErr(ctx, "read answer", err)
	}
	w.body = slices.Grow(w.body[:0], n)[:n]
	if _, err = io.ReadFull(w.br, w.body); err != nil {
		return l.connErr(ctx, "read answer body", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("announce answered %d: %q", status, w.body)
	}
	got, err := peersListed(w.body)
	if err != nil {
		return err
	}
	w.listed += got
	return nil
}

// readHead reads the status line and header of an HTTP/1.1 answer and returns the status and
// the Content-Length, which the answer must give (the tracker always does). It is all this client
// needs of net/http's ReadResponse, which costs more CPU time than the tracker's own work.
func readHead(br *bufio.Reader) (status, length int, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, fmt.Errorf("bad status line %q", line)
		}
		status = status*10 + int(c-'0')
	}
	length = -1
	for {
		if line, err = br.ReadSlice('\n'); err != nil {
			return 0, 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(k, []byte("Content-Length")) {
			continue
		}
		v = bytes.TrimSpace(v)
		length = 0
		for _, c := range v {
			if c < '0' || c > '9' || length > 1<<20 {
				return 0, 0, fmt.Errorf("bad Content-Length %q (want 0 to 1 MiB)", v)
			}
			length = length*10 + int(c-'0')
		}
		if len(v) == 0 || length > 1<<20 {
			return 0, 0, fmt.Errorf("bad Content-Length %q (want 0 to 1 MiB)", v)
		}
	}
	if length < 0 {
		return 0, 0, fmt.Errorf("answer with status %d has no Content-Length", status)
	}
	return status, length, nil
}

func (l *Load) connErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s to %s: %w", what, l.addr, err)
}

// peersListed returns how many compact IPv4 peers an announce answer lists, or the tracker's
// failure reason as an error. It reads just enough bencode for that: the answer is a dictionary
// whose "peers" value is a string of 6-byte entries.
func peersListed(body []byte) (int, error) {
	if i := bytes.Index(body, []byte("14:failure reason")); i >= 0 {
		return 0, fmt.Errorf("tracker refused the announce: %s", body[i+len("14:failure reason"):])
	}
	i := bytes.Index(body, []byte("5:peers"))
	if i < 0 {
		return 0, fmt.Errorf("announce answer %q has no peers", body)
	}
	rest := body[i+len("5:peers"):]
	colon := bytes.IndexByte(rest, ':')
	if colon < 0 {
		return 0, fmt.Errorf("announce answer %q: peers is not a compact string", body)
	}
	n, err := strconv.Atoi(string(rest[:colon]))
	if err != nil || n%6 != 0 || n > len(rest)-colon-1 {
		return 0, fmt.Errorf("announce answer %q: bad compact peers length", body)
	}
	return n / 6, nil
}
