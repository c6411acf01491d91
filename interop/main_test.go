package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vgen "github.com/pkgsync/pkgsync/internal/versions"
)

// pkgsyncBin is the pkgsync binary that TestMain builds once for the whole test binary.
var pkgsyncBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pkgsync-interop-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "interop: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	pkgsyncBin = filepath.Join(dir, "pkgsync")
	build := exec.Command("go", "build", "-o", pkgsyncBin, "github.com/pkgsync/pkgsync/cmd/pkgsync")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "interop: building pkgsync into %s: %v\n", pkgsyncBin, err)
		return 1
	}
	return m.Run()
}

// testTimeout bounds every test: each waits for its processes under one context.
const testTimeout = 50 * time.Second

// lab is one test's working folder and deadline.
type lab struct {
	t   *testing.T
	dir string
	ctx context.Context
}

// newLab makes the test's folder before any process starts, so that the folder is removed only
// after every process of the test is gone (cleanups run last-registered first).
func newLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return &lab{t: t, dir: dir, ctx: ctx}
}

// path returns a path in the lab folder, making its parent folders.
func (l *lab) path(elem ...string) string {
	l.t.Helper()
	p := filepath.Join(append([]string{l.dir}, elem...)...)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// mkdir makes the lab folder name and returns its path.
func (l *lab) mkdir(name string) string {
	l.t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// write writes data to the lab path elem and returns the path.
func (l *lab) write(data []byte, elem ...string) string {
	l.t.Helper()
	p := l.path(elem...)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a subprocess of a test, killed with its process group in the test's cleanup.
type proc struct {
	name           string
	argv           []string
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	exited         chan struct{}
	err            error // set before exited closes
}

// start runs argv in its own process group. The cleanup kills the group (so aria2c hooks and
// anything else the process started go too) and, if the test failed, logs the output.
func (l *lab) start(name string, argv ...string) *proc {
	l.t.Helper()
	p := &proc{name: name, argv: argv, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = l.dir
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		l.t.Fatalf("starting %s (%s): %v", name, argv[0], err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t := l.t
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s: %s (%v)\nstdout:\n%s\nstderr:\n%s", name, strings.Join(argv, " "), p.err,
				tail(p.stdout.String()), tail(p.stderr.String()))
		}
	})
	return p
}

// pkgsync starts the pkgsync binary with args.
func (l *lab) pkgsync(name string, args ...string) *proc {
	l.t.Helper()
	return l.start(name, append([]string{pkgsyncBin}, args...)...)
}

// tail returns the last 40 lines of s.
func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-40)}, lines[len(lines)-40:]...)
	}
	return strings.Join(lines, "\n")
}

// kill ends the process group with SIGKILL and waits for the process.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// wait waits for the process to exit and returns an error unless it exited with status 0.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.exited:
	case <-ctx.Done():
		return fmt.Errorf("%s: still running: %w", p.name, ctx.Err())
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w\nstderr:\n%s", p.name, p.err, tail(p.stderr.String()))
	}
	return nil
}

// waitOutput polls the process's stderr and stdout until re matches and returns the submatches.
func (p *proc) waitOutput(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(p.stderr.String() + p.stdout.String()); m != nil {
			return m, nil
		}
		select {
		case <-p.exited:
			if m := re.FindStringSubmatch(p.stderr.String() + p.stdout.String()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("%s exited (%v) before printing %q\nstderr:\n%s", p.name, p.err, re, tail(p.stderr.String()))
		case <-ctx.Done():
			return nil, fmt.Errorf("%s printed no %q: %w", p.name, re, ctx.Err())
		case <-tick.C:
		}
	}
}

// runPkgsync runs a short pkgsync command (make) and returns its stdout.
func (l *lab) runPkgsync(args ...string) string {
	l.t.Helper()
	p := l.pkgsync("pkgsync "+args[0], args...)
	if err := p.wait(l.ctx); err != nil {
		l.t.Fatal(err)
	}
	return p.stdout.String()
}

// makeResult is the part of `pkgsync make --json` the tests use.
type makeResult struct {
	Torrent   string `json:"torrent"`
	Zsync     string `json:"zsync"`
	InfoHash  string `json:"info_hash"`
	ZsyncHash string `json:"zsync_info_hash"`
	Length    int64  `json:"length"`
	PieceSize int64  `json:"piece_size"`
	Pieces    int    `json:"pieces"`
	BlockSize int    `json:"block_size"`
}

// makeTorrent runs `pkgsync make FILE --json ARGS...`.
func (l *lab) makeTorrent(file string, args ...string) makeResult {
	l.t.Helper()
	out := l.runPkgsync(append([]string{"make", file, "--json"}, args...)...)
	var r makeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		l.t.Fatalf("pkgsync make --json printed %q: %v", out, err)
	}
	if !filepath.IsAbs(r.Torrent) {
		r.Torrent = filepath.Join(l.dir, r.Torrent)
		r.Zsync = filepath.Join(l.dir, r.Zsync)
	}
	return r
}

var listeningRE = regexp.MustCompile(`listening on http://(\S+?)/`)

// serve starts `pkgsync serve DIR --listen 127.0.0.1:0 ARGS...` and returns its base URL.
func (l *lab) serve(name, dir string, args ...string) (string, *proc) {
	l.t.Helper()
	p := l.pkgsync(name, append([]string{"serve", dir, "--listen", "127.0.0.1:0"}, args...)...)
	m, err := p.waitOutput(l.ctx, listeningRE)
	if err != nil {
		l.t.Fatal(err)
	}
	return "http://" + m[1] + "/", p
}

// tracker starts `pkgsync tracker` on 127.0.0.1 and returns its announce URL; its announce log
// is the process's stderr.
func (l *lab) tracker() (string, *proc) {
	l.t.Helper()
	p := l.pkgsync("pkgsync tracker", "tracker", "--listen", "127.0.0.1:0")
	m, err := p.waitOutput(l.ctx, listeningRE)
	if err != nil {
		l.t.Fatal(err)
	}
	return "http://" + m[1] + "/announce", p
}

// announce is one line of pkgsync's announce log.
type announce struct {
	InfoHash string `json:"info_hash"`
	Peer     string `json:"peer"`
	Event    string `json:"event"`
	Left     int64  `json:"left"`
}

// waitSeeder waits until the announce log of tr shows a peer at ip that has the whole torrent,
// and returns that peer's address.
func (l *lab) waitSeeder(tr *proc, infoHash, ip string) string {
	l.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, line := range strings.Split(tr.stderr.String(), "\n") {
			var a announce
			if json.Unmarshal([]byte(line), &a) != nil || a.InfoHash != infoHash || a.Left != 0 || a.Event == "stopped" {
				continue
			}
			if host, _, err := net.SplitHostPort(a.Peer); err == nil && host == ip {
				return a.Peer
			}
		}
		select {
		case <-l.ctx.Done():
			l.t.Fatalf("no announce of a complete %s from %s in the tracker log", infoHash, ip)
		case <-tick.C:
		}
	}
}

// seed starts `pkgsync seed` on ip for a torrent and its data, and returns once the seeder
// listens.
func (l *lab) seed(name, ip, torrent, data string) *proc {
	l.t.Helper()
	p := l.pkgsync(name, "seed", torrent, "--data", data, "--listen", ip+":0")
	if _, err := p.waitOutput(l.ctx, regexp.MustCompile(`listening on (\S+);`)); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// peerStat is one entry of the per-peer bytes in update's summary.
type peerStat struct {
	Addr       string `json:"addr"`
	ClientName string `json:"client"`
	Downloaded int64  `json:"downloaded"`
	Uploaded   int64  `json:"uploaded"`
}

// summary is `pkgsync update --json`.
type summary struct {
	Output           string     `json:"output"`
	UpToDate         bool       `json:"up_to_date"`
	BytesTotal       int64      `json:"bytes_total"`
	BytesReused      int64      `json:"bytes_reused"`
	BytesFromPeers   int64      `json:"bytes_from_peers"`
	BytesFromOrigin  int64      `json:"bytes_from_origin"`
	RequestsToOrigin int64      `json:"requests_to_origin"`
	BytesUploaded    int64      `json:"bytes_uploaded"`
	Seconds          float64    `json:"seconds"`
	ScanSeconds      float64    `json:"scan_seconds"` // > 0 when the node scanned old data, so fetched the .zsync
	ZsyncFromPeers   int64      `json:"zsync_bytes_from_peers"`
	ZsyncFromOrigin  int64      `json:"zsync_bytes_from_origin"`
	Peers            []peerStat `json:"peers"`
}

// missing is what the node could not rebuild from its old version.
func (s summary) missing() int64 { return s.BytesTotal - s.BytesReused }

// node is one pkgsync update run.
type node struct {
	name string
	out  string
	p    *proc
}

// update starts `pkgsync update` as a node on ip, writing to the lab path name/pkg.bin. old is
// the node's old version ("" for an empty node).
func (l *lab) update(name, ip, source, old string, extra ...string) *node {
	l.t.Helper()
	out := l.path(name, "pkg.bin")
	// -v: the steps show in the failure report.
	args := []string{"update", "-v", "-o", out, "--json", "--seed-time", "0", "--listen", ip + ":0"}
	if old != "" {
		args = append(args, "--old", old)
	}
	args = append(args, extra...)
	return &node{name: name, out: out, p: l.pkgsync(name, append(args, source)...)}
}

// result waits for the node and returns its summary.
func (n *node) result(ctx context.Context) (summary, error) {
	var s summary
	if err := n.p.wait(ctx); err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(n.p.stdout.String()), &s); err != nil {
		return s, fmt.Errorf("%s: update --json printed %q: %w", n.name, n.p.stdout.String(), err)
	}
	return s, nil
}

// results waits for every node, checks that each wrote want, and returns their summaries.
func (l *lab) results(nodes []*node, want []byte) []summary {
	l.t.Helper()
	sums := make([]summary, len(nodes))
	for i, n := range nodes {
		s, err := n.result(l.ctx)
		if err != nil {
			l.t.Error(err)
			continue
		}
		sums[i] = s
		l.t.Logf("%s: %d total, %d reused, %d from peers, %d from the origin in %d requests, %d uploaded, %.2fs",
			n.name, s.BytesTotal, s.BytesReused, s.BytesFromPeers, s.BytesFromOrigin, s.RequestsToOrigin, s.BytesUploaded, s.Seconds)
		sameFile(l.t, n.out, want)
	}
	if l.t.Failed() {
		l.t.FailNow()
	}
	return sums
}

// sameFile checks that path holds want.
func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	if !bytes.Equal(got, want) {
		first := 0
		for first < min(len(got), len(want)) && got[first] == want[first] {
			first++
		}
		t.Errorf("%s: %d bytes, want %d; first difference at offset %d", path, len(got), len(want), first)
	}
}

// originStats is GET /.pkgsync/stats of a pkgsync origin.
type originStats struct {
	Requests  int64                `json:"requests"`
	BodyBytes int64                `json:"body_bytes"`
	Files     map[string]fileStats `json:"files"`
}

type fileStats struct {
	Requests  int64 `json:"requests"`
	BodyBytes int64 `json:"body_bytes"`
}

func (l *lab) originStats(base string) originStats {
	l.t.Helper()
	req, err := http.NewRequestWithContext(l.ctx, http.MethodGet, base+".pkgsync/stats", nil)
	if err != nil {
		l.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatalf("origin stats: %v", err)
	}
	defer resp.Body.Close()
	var s originStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		l.t.Fatalf("origin stats from %s: %v", base, err)
	}
	return s
}

// fileSize returns the size of path.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// freePort returns a TCP port on ip that is free for both TCP and UDP just now, for tools that
// cannot report the port they bound.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", ip, port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatalf("no port on %s free for both TCP and UDP", ip)
	return 0
}

// waitTCP waits until addr accepts connections.
func (l *lab) waitTCP(addr string, p *proc) {
	l.t.Helper()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if !p.running() {
			l.t.Fatalf("%s exited (%v) before listening on %s\nstderr:\n%s", p.name, p.err, addr, tail(p.stderr.String()))
		}
		select {
		case <-l.ctx.Done():
			l.t.Fatalf("%s is not listening on %s: %v", p.name, addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Package versions: pseudo-random data, so that nothing but the edits is shared, and v2 made
// from v1 by scattered insertions, deletions and overwrites, as a new release of a package is.
const pkgSize = 6 << 20

func randomBytes(seed uint64, n int) []byte { return vgen.Random(seed, n) }

// edited returns v1 with edits scattered evenly over it.
func edited(v1 []byte, seed uint64, edits int) []byte { return vgen.Edit(v1, seed, edits, 500, 3500) }

func versions() (v1, v2 []byte) {
	v1 = randomBytes(1, pkgSize)
	return v1, edited(v1, 2, 6)
}

// nodeIP is the loopback address of node k (servers and trackers stay on 127.0.0.1).
func nodeIP(k int) string { return fmt.Sprintf("127.0.0.%d", 10+k) }
