package interop

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/pkgsync/pkgsync/internal/proclab"
	"github.com/pkgsync/pkgsync/internal/testtool"
)

// maxOriginRatio is the bound of issue 4: with N nodes updating one package at once, the origin
// sends less than 1.5x the missing bytes in total, not N times.
const maxOriginRatio = 1.5

// TestOpentrackerSwarm runs a swarm on Debian's opentracker instead of pkgsync's tracker: three
// nodes update at once (one holding v1, two empty), the origin is a plain web seed (pkgsync serve
// --no-make, no tracker), and the origin must send less than 1.5x the package in all, where
// HTTP alone would send it twice (once per empty node).
func TestOpentrackerSwarm(t *testing.T) {
	ot := testtool.Need(t, "opentracker")[0]
	l := newLab(t)
	v1, v2 := versions()
	pkg := l.Write(v2, "origin", "pkg.bin")
	base, _ := l.serve("origin", filepath.Dir(pkg), "--no-make")
	port := freePort(t, "127.0.0.1")
	m := l.makeTorrent(pkg, "--url", base+"pkg.bin", "--tracker", fmt.Sprintf("http://127.0.0.1:%d/announce", port))
	l.opentracker(ot, port, m.InfoHash, m.ZsyncHash)

	old := l.Write(v1, "v1.bin")
	src := base + "pkg.bin.torrent"
	nodes := []*node{
		l.update("holds-v1", nodeIP(0), src, old),
		l.update("empty-1", nodeIP(1), src, ""),
		l.update("empty-2", nodeIP(2), src, ""),
	}
	sums := l.results(nodes, v2)
	for _, s := range sums[1:] {
		if s.BytesReused != 0 || s.missing() != int64(len(v2)) {
			t.Errorf("an empty node reused %d bytes and missed %d, want 0 and %d", s.BytesReused, s.missing(), len(v2))
		}
	}
	sent := l.originPackageBytes(base, m, sums)
	// The empty nodes miss every piece: the most the origin need send is the package once.
	ratio := float64(sent) / float64(len(v2))
	t.Logf("opentracker swarm of %d nodes: the origin sent %d bytes of the %d-byte package (%.3fx the package)",
		len(nodes), sent, len(v2), ratio)
	if ratio >= maxOriginRatio {
		t.Errorf("the origin sent %.2fx the package to %d nodes, want < %.1fx", ratio, len(nodes), maxOriginRatio)
	}
}

// TestEmbeddedTrackerDelta has four nodes holding v1 update to v2 at once through one origin
// with the embedded tracker (pkgsync serve --tracker, manifests made on first request). Each
// misses the same bytes; the origin must send them about once in all.
func TestEmbeddedTrackerDelta(t *testing.T) {
	l := newLab(t)
	v1, v2 := versions()
	pkg := l.Write(v2, "origin", "pkg.bin")
	base, _ := l.serve("origin", filepath.Dir(pkg), "--tracker", "--quiet-announces")
	old := l.Write(v1, "v1.bin")
	var nodes []*node
	for i := range 4 {
		nodes = append(nodes, l.update(fmt.Sprintf("node%d", i), nodeIP(i), base+"pkg.bin.torrent", old))
	}
	sums := l.results(nodes, v2)
	missing := sums[0].missing()
	for i, s := range sums {
		if s.missing() != missing {
			t.Errorf("node%d missed %d bytes, node0 %d: the same v1 must leave the same gaps", i, s.missing(), missing)
		}
	}
	if missing <= 0 || missing >= int64(len(v2)) {
		t.Fatalf("v1 covers %d of %d bytes of v2: the test needs a real delta", int64(len(v2))-missing, len(v2))
	}
	m := makeResult{Torrent: pkg + ".torrent", Zsync: pkg + ".zsync"}
	sent := l.originPackageBytes(base, m, sums)
	ratio := float64(sent) / float64(missing)
	t.Logf("embedded tracker, %d nodes holding v1: each missed %d of %d bytes; the origin sent %d bytes of the package (%.3fx the missing bytes)",
		len(nodes), missing, len(v2), sent, ratio)
	if ratio >= maxOriginRatio {
		t.Errorf("the origin sent %.2fx the missing bytes to %d nodes, want < %.1fx", ratio, len(nodes), maxOriginRatio)
	}
}

// originPackageBytes returns the package bytes the origin at base sent, from its per-path
// counts. It cross-checks them with what the nodes report having read from the origin, checks
// that every node asked for the .torrent once (pkgsync's origin sends its stub) and only the
// nodes that took its info from the origin a second time, that those were fewer than the nodes,
// and that the .zsync (which the nodes with old data
// need, and trade as a torrent of its own) left the origin at most twice in all, not once per
// node.
func (l *lab) originPackageBytes(base string, m makeResult, sums []summary) int64 {
	l.T.Helper()
	st := l.originStats(base)
	name := "/" + strings.TrimSuffix(filepath.Base(m.Torrent), ".torrent")
	pkg, tor, zs := st.Files[name], st.Files[name+".torrent"], st.Files[name+".zsync"]
	var read, reqs, zsyncs, zfromPeers, zfromOrigin, whole int64
	for _, s := range sums {
		if s.InfoFrom == "origin" {
			whole++
		}
		read += s.BytesFromOrigin
		reqs += s.RequestsToOrigin
		zfromPeers += s.ZsyncFromPeers
		zfromOrigin += s.ZsyncFromOrigin
		if s.ScanSeconds > 0 {
			zsyncs++
		}
	}
	n := int64(len(sums))
	zsize := fileSize(l.T, m.Zsync)
	l.T.Logf("origin: %d requests, %d body bytes; package %d bytes in %d requests (the nodes report %d in %d); .torrent %d requests; .zsync %d bytes in %d requests for %d node(s) that needed it (%d bytes; the nodes report %d from peers, %d from the origin)",
		st.Requests, st.BodyBytes, pkg.BodyBytes, pkg.Requests, read, reqs, tor.Requests, zs.BodyBytes, zs.Requests, zsyncs, zsize, zfromPeers, zfromOrigin)
	if tor.Requests != n+whole || whole == 0 || (n > 1 && whole >= n) {
		l.T.Errorf("the origin served the .torrent (or its stub) %d times to %d nodes, %d of which took the info dictionary from it; want each node once, the first twice",
			tor.Requests, n, whole)
	}
	if tsize := fileSize(l.T, m.Torrent); tor.BodyBytes > whole*tsize+n*1024 {
		l.T.Errorf("the origin sent %d bytes of .torrent and stubs to %d nodes, over %d whole .torrents of %d bytes and 1 KiB a node", tor.BodyBytes, n, whole, tsize)
	}
	if pkg.Requests != reqs {
		l.T.Errorf("the origin served %d package requests; the nodes report %d", pkg.Requests, reqs)
	}
	if pkg.BodyBytes < read {
		l.T.Errorf("the nodes report %d bytes from the origin, more than the %d package bytes it sent", read, pkg.BodyBytes)
	}
	// A .zsync of a test package has two or three pieces; two nodes that claim the same one at
	// the same moment both fetch it. At most twice, against once per node over HTTP alone.
	if zsyncs > 2 && zs.BodyBytes > 2*zsize {
		l.T.Errorf("the origin sent %d bytes of the %d-byte .zsync to %d nodes (%.2fx), want at most 2x",
			zs.BodyBytes, zsize, zsyncs, float64(zs.BodyBytes)/float64(zsize))
	}
	return pkg.BodyBytes
}

// opentracker starts Debian's opentracker on 127.0.0.1:port (HTTP and UDP), serving only the
// given info hashes. Started by root, it chroots to its folder and drops to nobody, so the
// folder and the whitelist must be readable by others and the whitelist is named inside the
// chroot; started by anyone else it cannot chroot and reads the whitelist where it is.
func (l *lab) opentracker(bin string, port int, infoHashes ...string) *proclab.Proc {
	l.T.Helper()
	wl := l.Path("opentracker", "whitelist")
	var list []byte
	for _, ih := range infoHashes {
		list = append(list, ih+"\n"...)
	}
	if err := os.WriteFile(wl, list, 0o644); err != nil {
		l.T.Fatal(err)
	}
	dir := filepath.Dir(wl)
	if err := os.Chmod(dir, 0o755); err != nil {
		l.T.Fatal(err)
	}
	if os.Geteuid() == 0 {
		wl = "/whitelist"
	}
	ps := strconv.Itoa(port)
	p := l.Start("opentracker", bin, "-i", "127.0.0.1", "-p", ps, "-P", ps, "-d", dir, "-w", wl)
	l.waitTCP(net.JoinHostPort("127.0.0.1", ps), p)
	return p
}

// TestOriginGoesAway takes the origin away while nodes update: the nodes must finish from a
// pkgsync seeder and each other. The manifests and the tracker live on a second server that
// stays up; the torrent's web seed points at the origin through a pacing proxy, so that the
// origin can go away after it sent part of the package and before any node could be done.
func TestOriginGoesAway(t *testing.T) {
	tests := []struct {
		name string
		// seederFirst starts the seeder before the nodes; else it starts once the origin is gone.
		seederFirst bool
		// cutAfter is how many bytes the origin sends before it goes away (0: it is killed
		// right after the nodes start).
		cutAfter int64
		// withV1 gives the first node v1; the others start empty.
		withV1 bool
	}{
		{"killed at start, seeder present", true, 0, true},
		// Every node empty: the origin has to send the whole package, and 1 MiB of it cannot
		// complete anyone.
		{"killed mid-way, seeder joins after", false, 1 << 20, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			v1, v2 := versions()
			data := l.Write(v2, "origin", "pkg.bin")
			originBase, origin := l.serve("origin", filepath.Dir(data), "--no-make")
			// 2 MiB/s for all nodes together: the 1 MiB cut comes after about half a second,
			// long before the 6 MiB package could have come through.
			px := newPacer(l, originBase, 2<<20)
			mdir := l.Mkdir("manifests")
			mbase, mserve := l.serve("manifests", mdir, "--no-make", "--tracker")
			m := l.makeTorrent(data, "--url", px.url+"pkg.bin", "--tracker", mbase+"announce", "--out-dir", mdir)
			startSeeder := func() {
				l.seed("seeder", nodeIP(9), m.Torrent, data)
				l.waitSeeder(mserve, m.InfoHash, nodeIP(9))
			}
			if tc.seederFirst {
				startSeeder()
			}

			src := mbase + "pkg.bin.torrent"
			var nodes []*node
			if tc.withV1 {
				nodes = append(nodes, l.update("holds-v1", nodeIP(0), src, l.Write(v1, "v1.bin")))
			}
			for i := len(nodes); i < 3; i++ {
				nodes = append(nodes, l.update(fmt.Sprintf("empty-%d", i), nodeIP(i), src, ""))
			}
			if tc.cutAfter > 0 {
				if err := px.waitSent(l.Ctx, tc.cutAfter); err != nil {
					t.Fatal(err)
				}
			}
			origin.Kill()
			px.cut()
			cutAt := px.sent.Load()
			for _, n := range nodes {
				if tc.cutAfter > 0 && !n.p.Running() {
					t.Errorf("%s ended before the origin went away, after %d bytes from it: the test proves nothing", n.name, cutAt)
				}
			}
			if !tc.seederFirst {
				startSeeder()
			}
			sums := l.results(nodes, v2)
			var read int64
			for i, s := range sums {
				read += s.BytesFromOrigin
				if s.BytesReused+s.BytesFromPeers+s.BytesFromOrigin < s.BytesTotal {
					t.Errorf("%s: %d reused + %d from peers + %d from the origin do not make its %d bytes",
						nodes[i].name, s.BytesReused, s.BytesFromPeers, s.BytesFromOrigin, s.BytesTotal)
				}
			}
			if tc.withV1 {
				// The seeder serves the .zsync too (it found it beside the torrent). Whether the
				// node takes it from the seeder or from the manifests server depends on who
				// answers within the .zsync's short peer wait; every byte must be accounted for.
				z := fileSize(t, m.Zsync)
				t.Logf("holds-v1 got the %d-byte .zsync: %d bytes from peers, %d from the origin", z, sums[0].ZsyncFromPeers, sums[0].ZsyncFromOrigin)
				if sums[0].ZsyncFromPeers+sums[0].ZsyncFromOrigin < z {
					t.Errorf("holds-v1 got %d bytes of the %d-byte .zsync from peers and %d from the origin",
						sums[0].ZsyncFromPeers, z, sums[0].ZsyncFromOrigin)
				}
			}
			t.Logf("the origin sent %d bytes before it went away; the nodes read %d of them", cutAt, read)
			if read > cutAt {
				t.Errorf("the nodes report %d bytes from the origin, more than the %d it sent", read, cutAt)
			}
		})
	}
}

// pacer is a TCP proxy in front of an origin that passes what the origin sends at a fixed
// rate, shared by all connections, and counts it. cut closes it and every connection.
type pacer struct {
	url    string
	ln     net.Listener
	target string
	lim    *rate.Limiter
	sent   atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool
	done  bool
	wg    sync.WaitGroup
}

func newPacer(l *lab, originBase string, bytesPerSecond int) *pacer {
	l.T.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.T.Fatal(err)
	}
	host := originBase[len("http://") : len(originBase)-1]
	p := &pacer{
		url: "http://" + ln.Addr().String() + "/", ln: ln, target: host,
		lim: rate.NewLimiter(rate.Limit(bytesPerSecond), 16<<10), conns: map[net.Conn]bool{},
	}
	p.wg.Add(1)
	go p.accept()
	l.T.Cleanup(p.cut)
	return p
}

func (p *pacer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

// track records c for cut; it reports false once cut has begun.
func (p *pacer) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *pacer) relay(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer up.Close()
	go func() {
		io.Copy(up, c)
		up.Close()
	}()
	buf := make([]byte, 16<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if p.lim.WaitN(context.Background(), n) != nil {
				return
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			p.sent.Add(int64(n))
		}
		if err != nil {
			return
		}
	}
}

// waitSent waits until the origin has passed n bytes through the pacer.
func (p *pacer) waitSent(ctx context.Context, n int64) error {
	for p.sent.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the origin sent %d bytes, waiting for %d: %w", p.sent.Load(), n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// cut closes the listener and every connection, and waits for the relays to end.
func (p *pacer) cut() {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
