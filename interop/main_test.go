package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/proclab"
	vgen "github.com/pkgsync/pkgsync/internal/versions"
)

// pkgsyncBin is the pkgsync binary that TestMain builds once for the whole test binary.
var pkgsyncBin string

func TestMain(m *testing.M) {
	os.Exit(proclab.RunWithPkgsync(m, "interop", &pkgsyncBin))
}

// testTimeout bounds every test: each waits for its processes under one context.
const testTimeout = 50 * time.Second

// lab is one test's working folder, deadline and processes.
type lab struct{ *proclab.Lab }

// newLab makes the test's folder before any process starts (see proclab.New).
func newLab(t *testing.T) *lab {
	t.Helper()
	return &lab{proclab.New(t, testTimeout)}
}

// pkgsync starts the pkgsync binary with args.
func (l *lab) pkgsync(name string, args ...string) *proclab.Proc {
	l.T.Helper()
	return l.Start(name, append([]string{pkgsyncBin}, args...)...)
}

// runPkgsync runs a short pkgsync command (make) and returns its stdout.
func (l *lab) runPkgsync(args ...string) string {
	l.T.Helper()
	p := l.pkgsync("pkgsync "+args[0], args...)
	if err := p.Wait(l.Ctx); err != nil {
		l.T.Fatal(err)
	}
	return p.Stdout.String()
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
	l.T.Helper()
	out := l.runPkgsync(append([]string{"make", file, "--json"}, args...)...)
	var r makeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		l.T.Fatalf("pkgsync make --json printed %q: %v", out, err)
	}
	if !filepath.IsAbs(r.Torrent) {
		r.Torrent = filepath.Join(l.Dir, r.Torrent)
		r.Zsync = filepath.Join(l.Dir, r.Zsync)
	}
	return r
}

var listeningRE = regexp.MustCompile(`listening on http://(\S+?)/`)

// serve starts `pkgsync serve DIR --listen 127.0.0.1:0 ARGS...` and returns its base URL.
func (l *lab) serve(name, dir string, args ...string) (string, *proclab.Proc) {
	l.T.Helper()
	p := l.pkgsync(name, append([]string{"serve", dir, "--listen", "127.0.0.1:0"}, args...)...)
	m, err := p.WaitOutput(l.Ctx, listeningRE, 20*time.Millisecond)
	if err != nil {
		l.T.Fatal(err)
	}
	return "http://" + m[1] + "/", p
}

// tracker starts `pkgsync tracker` on 127.0.0.1 and returns its announce URL; its announce log
// is the process's stderr.
func (l *lab) tracker() (string, *proclab.Proc) {
	l.T.Helper()
	p := l.pkgsync("pkgsync tracker", "tracker", "--listen", "127.0.0.1:0")
	m, err := p.WaitOutput(l.Ctx, listeningRE, 20*time.Millisecond)
	if err != nil {
		l.T.Fatal(err)
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
func (l *lab) waitSeeder(tr *proclab.Proc, infoHash, ip string) string {
	l.T.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, line := range strings.Split(tr.Stderr.String(), "\n") {
			var a announce
			if json.Unmarshal([]byte(line), &a) != nil || a.InfoHash != infoHash || a.Left != 0 || a.Event == "stopped" {
				continue
			}
			if host, _, err := net.SplitHostPort(a.Peer); err == nil && host == ip {
				return a.Peer
			}
		}
		select {
		case <-l.Ctx.Done():
			l.T.Fatalf("no announce of a complete %s from %s in the tracker log", infoHash, ip)
		case <-tick.C:
		}
	}
}

// seed starts `pkgsync seed` on ip for a torrent and its data, and returns once the seeder
// listens.
func (l *lab) seed(name, ip, torrent, data string) *proclab.Proc {
	l.T.Helper()
	p := l.pkgsync(name, "seed", torrent, "--data", data, "--listen", ip+":0")
	if _, err := p.WaitOutput(l.Ctx, regexp.MustCompile(`listening on (\S+);`), 20*time.Millisecond); err != nil {
		l.T.Fatal(err)
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
	InfoFrom         string     `json:"info_from"` // "origin": it fetched the .torrent after its stub
	Peers            []peerStat `json:"peers"`
}

// missing is what the node could not rebuild from its old version.
func (s summary) missing() int64 { return s.BytesTotal - s.BytesReused }

// node is one pkgsync update run.
type node struct {
	name string
	out  string
	p    *proclab.Proc
}

// update starts `pkgsync update` as a node on ip, writing to the lab path name/pkg.bin. old is
// the node's old version ("" for an empty node).
func (l *lab) update(name, ip, source, old string, extra ...string) *node {
	l.T.Helper()
	out := l.Path(name, "pkg.bin")
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
	if err := n.p.Wait(ctx); err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(n.p.Stdout.String()), &s); err != nil {
		return s, fmt.Errorf("%s: update --json printed %q: %w", n.name, n.p.Stdout.String(), err)
	}
	return s, nil
}

// results waits for every node, checks that each wrote want, and returns their summaries.
func (l *lab) results(nodes []*node, want []byte) []summary {
	l.T.Helper()
	sums := make([]summary, len(nodes))
	for i, n := range nodes {
		s, err := n.result(l.Ctx)
		if err != nil {
			l.T.Error(err)
			continue
		}
		sums[i] = s
		l.T.Logf("%s: %d total, %d reused, %d from peers, %d from the origin in %d requests, %d uploaded, %.2fs",
			n.name, s.BytesTotal, s.BytesReused, s.BytesFromPeers, s.BytesFromOrigin, s.RequestsToOrigin, s.BytesUploaded, s.Seconds)
		proclab.SameFile(l.T, n.out, want)
	}
	if l.T.Failed() {
		l.T.FailNow()
	}
	return sums
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
	l.T.Helper()
	req, err := http.NewRequestWithContext(l.Ctx, http.MethodGet, base+".pkgsync/stats", nil)
	if err != nil {
		l.T.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.T.Fatalf("origin stats: %v", err)
	}
	defer resp.Body.Close()
	var s originStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		l.T.Fatalf("origin stats from %s: %v", base, err)
	}
	return s
}

// fileSize returns the size of path.
func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// freePort returns a TCP port on ip that is free for both TCP and UDP just now, for tools that
// cannot report the port they bound.
func freePort(t testing.TB, ip string) int {
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
func (l *lab) waitTCP(addr string, p *proclab.Proc) {
	l.T.Helper()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if !p.Running() {
			l.T.Fatalf("%s exited (%v) before listening on %s\nstderr:\n%s", p.Name, p.Err(), addr, proclab.Tail(p.Stderr.String()))
		}
		select {
		case <-l.Ctx.Done():
			l.T.Fatalf("%s is not listening on %s: %v", p.Name, addr, err)
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
