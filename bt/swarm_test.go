package bt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
)

const testPieceLen = 256 << 10

// fixture is a source file and its torrent.
type fixture struct {
	src     []byte
	srcPath string
	mi      *metainfo.MetaInfo
	num     int
}

func newFixture(t testing.TB, size int, seed uint64, trackers ...string) *fixture {
	t.Helper()
	fx := &fixture{src: make([]byte, size)}
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range fx.src {
		fx.src[i] = byte(r.Uint32())
	}
	fx.srcPath = filepath.Join(t.TempDir(), "pkg.bin")
	if err := os.WriteFile(fx.srcPath, fx.src, 0o644); err != nil {
		t.Fatal(err)
	}
	info := metainfo.Info{PieceLength: testPieceLen}
	if err := info.BuildFromFilePath(fx.srcPath); err != nil {
		t.Fatal(err)
	}
	fx.num = info.NumPieces()
	fx.mi = &metainfo.MetaInfo{}
	var err error
	if fx.mi.InfoBytes, err = bencode.Marshal(info); err != nil {
		t.Fatal(err)
	}
	if len(trackers) > 0 {
		fx.mi.Announce = trackers[0]
	}
	return fx
}

func (fx *fixture) pieceRange(i int) (off, n int64) {
	off = int64(i) * testPieceLen
	return off, min(testPieceLen, int64(len(fx.src))-off)
}

// partFile makes a read-write file of the right size holding the source's bytes for
// the pieces in have and garbage elsewhere.
func (fx *fixture) partFile(t testing.TB, have []bool) *os.File {
	t.Helper()
	data := make([]byte, len(fx.src))
	for i := range fx.num {
		off, n := fx.pieceRange(i)
		if have != nil && have[i] {
			copy(data[off:off+n], fx.src[off:off+n])
		} else {
			for j := off; j < off+n; j++ {
				data[j] = byte(j*7 + 1)
			}
		}
	}
	return writeTemp(t, "out.part", data, false)
}

// seedFile opens a read-only copy of the source: seeders never write.
func (fx *fixture) seedFile(t testing.TB) *os.File {
	t.Helper()
	return writeTemp(t, "seed.bin", fx.src, true)
}

// corruptFile is a copy of the source with one byte flipped in every piece.
func (fx *fixture) corruptFile(t testing.TB) *os.File {
	t.Helper()
	data := slices.Clone(fx.src)
	for i := range fx.num {
		off, n := fx.pieceRange(i)
		data[off+n/2] ^= 0xff
	}
	return writeTemp(t, "corrupt.bin", data, true)
}

func writeTemp(t testing.TB, name string, data []byte, readOnly bool) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func (fx *fixture) all() []bool {
	have := make([]bool, fx.num)
	for i := range have {
		have[i] = true
	}
	return have
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// origin counts what an origin server would send.
type origin struct {
	delay         time.Duration // latency of every fetch
	bytes, calls  atomic.Int64
	active, peak  atomic.Int64
	failFirst     bool // every piece's first call fails
	corrupt       bool // writes wrong bytes
	mu            sync.Mutex
	perPieceCalls map[int]int
}

// fetch returns an OriginFunc that copies piece i of fx's source into dst.
func (o *origin) fetch(fx *fixture, dst *os.File, corrupt bool) OriginFunc {
	return func(ctx context.Context, i int) (int64, error) {
		o.calls.Add(1)
		cur := o.active.Add(1)
		defer o.active.Add(-1)
		for {
			p := o.peak.Load()
			if cur <= p || o.peak.CompareAndSwap(p, cur) {
				break
			}
		}
		o.mu.Lock()
		if o.perPieceCalls == nil {
			o.perPieceCalls = map[int]int{}
		}
		o.perPieceCalls[i]++
		first := o.perPieceCalls[i] == 1
		o.mu.Unlock()
		if o.failFirst && first {
			return 0, fmt.Errorf("origin: piece %d: %w", i, io.ErrUnexpectedEOF)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(o.delay):
		}
		off, n := fx.pieceRange(i)
		buf := slices.Clone(fx.src[off : off+n])
		if corrupt {
			buf[0] ^= 0x55
		}
		if _, err := dst.WriteAt(buf, off); err != nil {
			return 0, err
		}
		o.bytes.Add(n)
		return n, nil
	}
}

// loopback returns a distinct 127.0.0.0/8 address for the i-th node of a test, so that
// banning one node's address does not ban the others; it skips where only 127.0.0.1 works.
func loopback(t testing.TB, i int) string {
	t.Helper()
	ip := fmt.Sprintf("127.0.0.%d", 2+i)
	needLoopbacks(t, ip)
	return ip
}

// needLoopbacks skips the test unless every one of ips can be listened on (the whole
// 127.0.0.0/8 on the loopback interface, as Linux has it); under CI, whose machines have it,
// it fails the test instead, so that a broken machine is not taken for a passing run.
func needLoopbacks(t testing.TB, ips ...string) {
	t.Helper()
	for _, ip := range ips {
		l, err := net.Listen("tcp4", ip+":0")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("needs the whole 127.0.0.0/8 on the loopback interface: %v", err)
			}
			t.Skipf("needs the whole 127.0.0.0/8 on the loopback interface: %v", err)
		}
		l.Close()
	}
}

// testLogWriter is where nodes log in tests: stderr with BT_TEST_LOG set, else nowhere.
func testLogWriter() io.Writer {
	if os.Getenv("BT_TEST_LOG") != "" {
		return os.Stderr
	}
	return nil
}

// testLogger is the logger of nodes in tests, nil (quiet) unless BT_TEST_LOG is set.
func testLogger() *slog.Logger {
	if w := testLogWriter(); w != nil {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return nil
}

func startNode(t testing.TB, ip string, mod func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ListenAddr = ip + ":0"
	cfg.Logger = testLogger()
	if mod != nil {
		mod(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	liveNodes.Lock()
	liveNodes.nodes = append(liveNodes.nodes, n)
	liveNodes.Unlock()
	t.Cleanup(func() {
		liveNodes.Lock()
		liveNodes.nodes = slices.DeleteFunc(liveNodes.nodes, func(m *Node) bool { return m == n })
		liveNodes.Unlock()
		if err := n.Close(); err != nil {
			t.Errorf("closing node: %v", err)
		}
	})
	return n
}

// liveNodes are the nodes of the running test, for dumpNodes.
var liveNodes struct {
	sync.Mutex
	nodes []*Node
}

// dumpNodes logs the library's view of every live node: for a failure that is a stall.
func dumpNodes(t testing.TB) {
	if path := os.Getenv("BT_TEST_STACKS"); path != "" {
		buf := make([]byte, 8<<20)
		os.WriteFile(path, buf[:runtime.Stack(buf, true)], 0o644)
	}
	liveNodes.Lock()
	defer liveNodes.Unlock()
	for _, n := range liveNodes.nodes {
		var b strings.Builder
		n.cl.WriteStatus(&b)
		t.Logf("node %s:\n%s", n.Addr(), b.String())
	}
}

func addPkg(t testing.TB, n *Node, p Package) *Torrent {
	t.Helper()
	tor, err := n.Add(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return tor
}

func download(t *testing.T, tor *Torrent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := tor.Download(ctx); err != nil {
		dumpNodes(t)
		t.Fatalf("Download: %v", err)
	}
}

func checkData(t testing.TB, f *os.File, want []byte) {
	t.Helper()
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s differs from the source at byte %d (piece %d)", f.Name(), i, i/testPieceLen)
	}
}

// (1) One seeder and one empty node that knows it: the data arrives intact from the peer,
// under each connection policy.
func TestSeederToLeecher(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(*Config)
		encrypted bool
	}{
		{"defaults", nil, false},
		{"encryption required", func(c *Config) { c.RequireEncryption = true }, true},
		{"tit for tat", func(c *Config) { c.TitForTat = true }, false},
		{"rate limited", func(c *Config) { c.MaxUploadRate, c.MaxDownloadRate = 32<<20, 32<<20 }, false},
		{"all addresses", func(c *Config) { c.ListenAddr = "" }, false},
	}
	fx := newFixture(t, 4<<20+12345, 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seed, part := fx.seedFile(t), fx.partFile(t, nil) // opened before the nodes: closed after them
			seeder := startNode(t, "127.0.0.1", tc.mod)
			addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
			leecher := startNode(t, "127.0.0.1", tc.mod)
			encBefore := encryptedHandshakes()
			peer := seeder.Addr()
			if peer.Addr().IsUnspecified() {
				peer = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), peer.Port())
			}
			tor := addPkg(t, leecher, Package{MetaInfo: fx.mi, Data: part, Peers: []netip.AddrPort{peer}})
			download(t, tor)
			checkData(t, part, fx.src)
			if enc := encryptedHandshakes() > encBefore; enc != tc.encrypted {
				t.Errorf("encrypted connections: %t, want %t", enc, tc.encrypted)
			}
			st := tor.Stats()
			if st.BytesFromPeers < int64(len(fx.src)) || st.OriginRequests != 0 {
				t.Errorf("stats %+v: want all %d bytes from peers and no origin request", st, len(fx.src))
			}
			if len(st.Peers) != 1 || st.Peers[0].Downloaded < int64(len(fx.src)) {
				t.Errorf("peer stats %+v", st.Peers)
			}
		})
	}
}

// encryptedHandshakes counts the library's completed handshakes with an obfuscated
// header, from its expvar counters (process-wide: the tests here do not run in parallel).
func encryptedHandshakes() int64 {
	m, ok := expvar.Get("completedHandshakeConnectionFlags").(*expvar.Map)
	if !ok {
		return 0
	}
	var n int64
	m.Do(func(kv expvar.KeyValue) {
		for _, f := range strings.Split(kv.Key, ",") {
			if f == "E" || f == "e" {
				if c, ok := kv.Value.(*expvar.Int); ok {
					n += c.Value()
				}
			}
		}
	})
	return n
}

// (2) Nodes without peers get everything from the origin, several pieces at a time.
func TestOriginOnly(t *testing.T) {
	tests := []struct {
		name string
		size int
		have func(num int) []bool
	}{
		{"short last piece", 4<<20 + 777, nil},
		{"exact pieces", 2 << 20, nil},
		{"single piece", 1000, nil},
		{"empty", 0, nil},
		{"half present", 2<<20 + 5, func(num int) []bool {
			h := make([]bool, num)
			for i := range h {
				h[i] = i%2 == 0
			}
			return h
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, tc.size, uint64(10+i))
			var have []bool
			if tc.have != nil {
				have = tc.have(fx.num)
			}
			part := fx.partFile(t, have)
			n := startNode(t, "127.0.0.1", nil)
			var o origin
			tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Have: have, Origin: o.fetch(fx, part, false)})
			download(t, tor)
			checkData(t, part, fx.src)
			missing := 0
			var missingBytes int64
			for p := range fx.num {
				if have == nil || !have[p] {
					missing++
					_, n := fx.pieceRange(p)
					missingBytes += n
				}
			}
			st := tor.Stats()
			if st.OriginRequests != int64(missing) || st.BytesFromOrigin != missingBytes || o.bytes.Load() != missingBytes {
				t.Errorf("origin: %d requests, %d bytes (callback saw %d); want %d and %d",
					st.OriginRequests, st.BytesFromOrigin, o.bytes.Load(), missing, missingBytes)
			}
			if p := o.peak.Load(); p > defaultOriginConcurrency {
				t.Errorf("%d origin fetches in flight, want at most %d", p, defaultOriginConcurrency)
			}
		})
	}
}

// (3) Several empty nodes that start together and know each other: they split the origin
// work and trade the rest, so the origin sends little more than the file once. The peers
// come from Package.Peers, or from a tracker.
func TestSwarmSharesOrigin(t *testing.T) {
	tests := []struct {
		name       string
		nodes      int
		viaTracker bool
		// have marks the pieces every node already rebuilt from its old version.
		have  func(i, num int) bool
		delay time.Duration // origin latency per piece
	}{
		{name: "direct peers", nodes: 4},
		{name: "tracker", nodes: 4, viaTracker: true},
		{name: "changed tail, slow origin", nodes: 6, viaTracker: true,
			have: func(i, num int) bool { return i < num*5/8 }, delay: 5 * time.Millisecond},
		{name: "scattered changes", nodes: 5,
			have: func(i, num int) bool { return i%3 == 0 }, delay: time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { testSwarm(t, tc.nodes, tc.viaTracker, tc.have, tc.delay) })
	}
}

func testSwarm(t *testing.T, nodes int, viaTracker bool, haveFn func(i, num int) bool, delay time.Duration) {
	var trackers []string
	if viaTracker {
		srv := httptest.NewServer(&fakeTracker{})
		defer srv.Close()
		trackers = append(trackers, srv.URL+"/announce")
	}
	fx := newFixture(t, 8<<20, 3, trackers...)
	have := make([]bool, fx.num)
	var missing int64
	for i := range have {
		have[i] = haveFn != nil && haveFn(i, fx.num)
		if !have[i] {
			_, n := fx.pieceRange(i)
			missing += n
		}
	}
	o := origin{delay: delay}
	var parts []*os.File
	for range nodes {
		parts = append(parts, fx.partFile(t, have))
	}
	var ns []*Node
	for i := range nodes {
		ns = append(ns, startNode(t, loopback(t, i), nil))
	}
	var tors []*Torrent
	for i, n := range ns {
		var peers []netip.AddrPort
		for j, m := range ns {
			if j != i && !viaTracker {
				peers = append(peers, m.Addr())
			}
		}
		tors = append(tors, addPkg(t, n, Package{MetaInfo: fx.mi, Data: parts[i], Have: have,
			Origin: o.fetch(fx, parts[i], false), Peers: peers}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i, tor := range tors {
		wg.Go(func() { errs[i] = tor.Download(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		checkData(t, parts[i], fx.src)
	}
	ratio := float64(o.bytes.Load()) / float64(missing)
	var fromPeers int64
	for i, tor := range tors {
		st := tor.Stats()
		fromPeers += st.BytesFromPeers
		t.Logf("node %d: %d origin requests, %d bytes from origin, %d from peers, %d uploaded",
			i, st.OriginRequests, st.BytesFromOrigin, st.BytesFromPeers, st.BytesUploaded)
	}
	t.Logf("origin sent %d bytes = %.3fx the %d missing (%d calls for %d pieces); peers moved %d bytes",
		o.bytes.Load(), ratio, missing, o.calls.Load(), fx.num-countTrue(have), fromPeers)
	// How little the origin sends depends on timing on a loaded machine, and swarmbench measures
	// it; what cannot depend on timing is that no node fetches a piece from the origin twice.
	if limit := int64(nodes) * missing; o.bytes.Load() > limit {
		t.Errorf("origin sent %d bytes, more than each of the %d nodes fetching every missing piece once (%d)", o.bytes.Load(), nodes, limit)
	}
}

// (4) A peer that claims every piece but serves corrupt data: the downloader bans the liar,
// and ends with the right bytes from an honest seeder. The honest seeder is named only once the
// liar is banned: with both from the start, the honest one's fast path can deliver every piece
// before the liar serves one, and the test would prove nothing.
func TestCorruptPeer(t *testing.T) {
	fx := newFixture(t, 4<<20, 4)
	seed, lies, part := fx.seedFile(t), fx.corruptFile(t), fx.partFile(t, nil)
	good := startNode(t, loopback(t, 0), nil)
	addPkg(t, good, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
	liar := startNode(t, loopback(t, 1), nil)
	addPkg(t, liar, Package{MetaInfo: fx.mi, Data: lies, Have: fx.all()})
	dl := startNode(t, loopback(t, 2), nil)
	tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Peers: []netip.AddrPort{liar.Addr()}})
	downloadPastLiar(t, dl, tor, liar, good)
	checkData(t, part, fx.src)
	if banned := bannedBy(dl); slices.Contains(banned, good.Addr().Addr().String()) {
		t.Errorf("banned the honest seeder %s", good.Addr().Addr())
	}
	t.Logf("stats: %+v", tor.Stats())
}

// (5) A node that already has half the pieces fetches only the other half.
func TestHalfPresent(t *testing.T) {
	fx := newFixture(t, 4<<20+3000, 5)
	have := make([]bool, fx.num)
	var missing int64
	for i := range have {
		have[i] = i%2 == 1
		if !have[i] {
			_, n := fx.pieceRange(i)
			missing += n
		}
	}
	seed, part := fx.seedFile(t), fx.partFile(t, have)
	seeder := startNode(t, "127.0.0.1", nil)
	addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
	n := startNode(t, "127.0.0.1", nil)
	tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Have: have, Peers: []netip.AddrPort{seeder.Addr()}})
	download(t, tor)
	checkData(t, part, fx.src)
	st := tor.Stats()
	t.Logf("missing %d bytes, got %d from peers", missing, st.BytesFromPeers)
	if st.BytesFromPeers < missing || st.BytesFromPeers > missing+testPieceLen {
		t.Errorf("%d bytes from peers, want about the %d missing", st.BytesFromPeers, missing)
	}
}

// A peer that has every piece but trickles them out does not hold the download: once
// peers complete nothing for StallTimeout, the origin takes their pieces too.
func TestStalledPeer(t *testing.T) {
	fx := newFixture(t, 2<<20, 13)
	seed, part := fx.seedFile(t), fx.partFile(t, nil)
	slow := startNode(t, "127.0.0.1", func(c *Config) { c.MaxUploadRate = 16 << 10 })
	addPkg(t, slow, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
	n := startNode(t, "127.0.0.1", func(c *Config) { c.StallTimeout = 200 * time.Millisecond })
	var o origin
	tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Origin: o.fetch(fx, part, false),
		Peers: []netip.AddrPort{slow.Addr()}})
	download(t, tor)
	checkData(t, part, fx.src)
	st := tor.Stats()
	t.Logf("%d origin requests, %d bytes from the slow peer", st.OriginRequests, st.BytesFromPeers)
	if st.OriginRequests == 0 {
		t.Error("the origin was never asked although the only peer trickles")
	}
}

// Origin errors are retried, and data that fails verification goes to Refetch.
func TestOriginRetries(t *testing.T) {
	fx := newFixture(t, 1<<20+99, 6)
	t.Run("errors then success", func(t *testing.T) {
		part := fx.partFile(t, nil)
		n := startNode(t, "127.0.0.1", nil)
		o := origin{failFirst: true}
		tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Origin: o.fetch(fx, part, false)})
		download(t, tor)
		checkData(t, part, fx.src)
		if got, want := o.calls.Load(), int64(2*fx.num); got != want {
			t.Errorf("%d origin calls, want %d", got, want)
		}
	})
	t.Run("bad data then refetch", func(t *testing.T) {
		part := fx.partFile(t, nil)
		n := startNode(t, "127.0.0.1", nil)
		var bad, whole origin
		tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part,
			Origin: bad.fetch(fx, part, true), Refetch: whole.fetch(fx, part, false)})
		download(t, tor)
		checkData(t, part, fx.src)
		if bad.calls.Load() != int64(fx.num) || whole.calls.Load() != int64(fx.num) {
			t.Errorf("Origin called %d times, Refetch %d; want %d each", bad.calls.Load(), whole.calls.Load(), fx.num)
		}
	})
	t.Run("bad data forever", func(t *testing.T) {
		part := fx.partFile(t, nil)
		n := startNode(t, "127.0.0.1", nil)
		var bad origin
		tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Origin: bad.fetch(fx, part, true)})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := tor.Download(ctx)
		if err == nil || !strings.Contains(err.Error(), "SHA-1") || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Download = %v, want a verification failure", err)
		}
	})
}

// A chunk that cannot be stored (here: Data opened read-only) ends Download with an error
// instead of a silent stall.
func TestStorageFailure(t *testing.T) {
	fx := newFixture(t, 1<<20, 12)
	seed, readOnly := fx.seedFile(t), writeTemp(t, "ro.part", make([]byte, 1<<20), true)
	seeder := startNode(t, "127.0.0.1", nil)
	addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
	n := startNode(t, "127.0.0.1", nil)
	tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: readOnly, Peers: []netip.AddrPort{seeder.Addr()}})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	err := tor.Download(ctx)
	// "storing a chunk from a peer" over BitTorrent, "storing piece N from a peer" over the fast path.
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "from a peer") {
		t.Fatalf("Download = %v, want a storage error", err)
	}
}

// Download ends with ctx, cancelling the origin fetches it started.
func TestDownloadCancel(t *testing.T) {
	fx := newFixture(t, 1<<20, 7)
	part := fx.partFile(t, nil)
	n := startNode(t, "127.0.0.1", nil)
	started := make(chan struct{}, 16)
	tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Origin: func(ctx context.Context, i int) (int64, error) {
		started <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	if err := tor.Download(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Download = %v, want context.Canceled", err)
	}
	// The Torrent accepts a new Download afterwards (given a cancelled context here).
	if err := tor.Download(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("second Download = %v, want context.Canceled", err)
	}
}

func TestAddErrors(t *testing.T) {
	fx := newFixture(t, 1<<20, 8)
	short := writeTemp(t, "short", fx.src[:100], false)
	good := fx.partFile(t, nil)
	n := startNode(t, "127.0.0.1", nil)
	tests := []struct {
		name string
		p    Package
	}{
		{"no metainfo", Package{Data: good}},
		{"no data", Package{MetaInfo: fx.mi}},
		{"wrong size", Package{MetaInfo: fx.mi, Data: short}},
		{"have length", Package{MetaInfo: fx.mi, Data: good, Have: []bool{true}}},
		{"bad info", Package{MetaInfo: &metainfo.MetaInfo{InfoBytes: []byte("d4:name")}, Data: good}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := n.Add(context.Background(), tc.p); err == nil {
				t.Error("Add succeeded")
			}
		})
	}
	addPkg(t, n, Package{MetaInfo: fx.mi, Data: good})
	if _, err := n.Add(context.Background(), Package{MetaInfo: fx.mi, Data: good}); err == nil {
		t.Error("adding the same info hash twice succeeded")
	}
	for _, cfg := range []Config{{LPD: true}, {ListenAddr: "nohost:1"}, {ListenAddr: "127.0.0.1"}, {MaxUploadRate: -1}} {
		if n, err := NewNode(cfg); err == nil {
			n.Close()
			t.Errorf("NewNode(%+v) succeeded", cfg)
		}
	}
}

// fakeTracker is a minimal HTTP tracker: it remembers every announcing peer and returns
// the others, compact.
type fakeTracker struct {
	mu     sync.Mutex
	peers  map[string]netip.AddrPort
	events []string
}

func (ft *fakeTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	port, _ := strconv.Atoi(q.Get("port"))
	ip, err := netip.ParseAddr(q.Get("ip"))
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		ip, _ = netip.ParseAddr(host)
	}
	self := netip.AddrPortFrom(ip.Unmap(), uint16(port))
	ft.mu.Lock()
	if ft.peers == nil {
		ft.peers = map[string]netip.AddrPort{}
	}
	id := q.Get("peer_id")
	ft.events = append(ft.events, fmt.Sprintf("%s %s", self, q.Get("event")))
	if q.Get("event") == "stopped" {
		delete(ft.peers, id)
	} else {
		ft.peers[id] = self
	}
	var compact []byte
	for pid, ap := range ft.peers {
		if pid != id && ap.Addr().Is4() {
			compact = append(compact, ap.Addr().AsSlice()...)
			compact = binary.BigEndian.AppendUint16(compact, ap.Port())
		}
	}
	ft.mu.Unlock()
	b, _ := bencode.Marshal(map[string]any{"interval": 60, "peers": string(compact)})
	w.Write(b)
}

func (ft *fakeTracker) sawEvent(suffix string) bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for _, e := range ft.events {
		if strings.HasSuffix(e, suffix) {
			return true
		}
	}
	return false
}

// Peers found through the torrent's tracker are dialed; completion and shutdown are
// announced.
func TestTrackerDiscovery(t *testing.T) {
	var ft fakeTracker
	srv := httptest.NewServer(&ft)
	defer srv.Close()
	fx := newFixture(t, 2<<20, 9, srv.URL+"/announce")
	seed, part := fx.seedFile(t), fx.partFile(t, nil)
	seeder := startNode(t, "127.0.0.1", nil)
	st := addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
	// Wait for the seeder's first announce so the leecher's answer lists it.
	for deadline := time.Now().Add(5 * time.Second); !ft.sawEvent(seeder.Addr().String() + " started"); {
		if time.Now().After(deadline) {
			t.Fatalf("the seeder never announced; events %v", ft.events)
		}
		time.Sleep(10 * time.Millisecond)
	}
	leecher := startNode(t, "127.0.0.1", nil)
	tor := addPkg(t, leecher, Package{MetaInfo: fx.mi, Data: part})
	download(t, tor)
	checkData(t, part, fx.src)
	for deadline := time.Now().Add(5 * time.Second); !ft.sawEvent(leecher.Addr().String() + " completed"); {
		if time.Now().After(deadline) {
			t.Fatalf("no completed announce; events %v", ft.events)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if !ft.sawEvent(seeder.Addr().String() + " stopped") {
		t.Errorf("no stopped announce after Close; events %v", ft.events)
	}
}

// slowCompleted delays a tracker's handling of "completed" announces by delay, as a busy
// tracker might, and reports on arrived when the first comes in. wg counts the announces
// being handled.
type slowCompleted struct {
	ft      *fakeTracker
	delay   time.Duration
	arrived chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func (sc *slowCompleted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sc.wg.Add(1)
	defer sc.wg.Done()
	if r.URL.Query().Get("event") == "completed" {
		sc.once.Do(func() { close(sc.arrived) })
		time.Sleep(sc.delay) // the client's cancel does not stop a handler that is under way
	}
	sc.ft.ServeHTTP(w, r)
}

// A torrent closed while its "completed" announce is under way (an update with --seed-time 0
// leaves as it completes) waits for the tracker's answer before it announces "stopped": cut
// off, the announce still reached the tracker, which handled it after the "stopped" and kept
// the node listed once it was gone.
func TestStoppedAfterCompleted(t *testing.T) {
	ft := &fakeTracker{}
	sc := &slowCompleted{ft: ft, delay: 300 * time.Millisecond, arrived: make(chan struct{})}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	fx := newFixture(t, 1<<20, 10, srv.URL+"/announce")
	seeder := startNode(t, "127.0.0.1", nil)
	addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
	for deadline := time.Now().Add(5 * time.Second); !ft.sawEvent(seeder.Addr().String() + " started"); {
		if time.Now().After(deadline) {
			t.Fatalf("the seeder never announced; events %v", ft.events)
		}
		time.Sleep(10 * time.Millisecond)
	}
	leecher := startNode(t, "127.0.0.1", nil)
	part := fx.partFile(t, nil)
	tor := addPkg(t, leecher, Package{MetaInfo: fx.mi, Data: part})
	download(t, tor)
	select {
	case <-sc.arrived:
	case <-time.After(5 * time.Second):
		t.Fatalf("no completed announce; events %v", ft.events)
	}
	if err := tor.Close(); err != nil {
		t.Fatal(err)
	}
	sc.wg.Wait()
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for id, ap := range ft.peers {
		if ap == leecher.Addr() {
			t.Errorf("the tracker lists the closed torrent's node (peer ID %x); events in order: %v", id, ft.events)
		}
	}
}

var testTimeout = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BT_TEST_TIMEOUT")); err == nil {
		return d
	}
	return 40 * time.Second
}()

// A node that got pieces from the origin and leaves at once holds the only copy of them:
// HandOver keeps it until a peer holds each, and returns at once when no peer is left to
// take them.
func TestHandOver(t *testing.T) {
	fx := newFixture(t, 1<<20+777, 21)
	part := fx.partFile(t, nil)
	first := startNode(t, "127.0.0.1", nil)
	var o origin
	a := addPkg(t, first, Package{MetaInfo: fx.mi, Data: part, Origin: o.fetch(fx, part, false)})
	download(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	// Alone: nobody to hand over to.
	start := time.Now()
	if n, left := a.HandOver(ctx, time.Minute); n != fx.num || left != fx.num {
		t.Errorf("alone: HandOver = %d pieces from the origin, %d left; want %d and %d", n, left, fx.num, fx.num)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("alone: HandOver waited %s for nobody", d)
	}

	// A peer arrives without an origin: HandOver returns once it holds every piece, which
	// it can only have from this node.
	part2 := fx.partFile(t, nil)
	second := startNode(t, "127.0.0.1", nil)
	b := addPkg(t, second, Package{MetaInfo: fx.mi, Data: part2, Peers: []netip.AddrPort{first.Addr()}})
	done := make(chan error, 1)
	go func() { done <- b.Download(ctx) }()
	// As in an update, the peers are connected already. On loopback the peer can fetch the
	// whole megabyte and drop the connection (both complete) between two looks: then
	// HandOver must return at once.
	for len(a.lt.PeerConns()) == 0 && b.PiecesComplete() < fx.num {
		if ctx.Err() != nil {
			t.Fatal("the peer never connected")
		}
		time.Sleep(5 * time.Millisecond)
	}
	n, left := a.HandOver(ctx, testTimeout)
	// It returns when it saw the peer hold every piece, or when the complete peer dropped
	// the connection (two seeders have nothing to trade): either way, not before.
	if got := b.PiecesComplete(); n != fx.num || got != fx.num {
		t.Fatalf("with a peer: HandOver = %d pieces from the origin (%d seen only here) returned when the peer had %d of %d pieces",
			n, left, got, fx.num)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkData(t, part2, fx.src)
	if st := b.Stats(); st.OriginRequests != 0 {
		t.Errorf("the peer asked an origin %d times; it has none", st.OriginRequests)
	}
}

// A seeder on the origin's host is the origin: nodes that fetch from the origin share its
// pieces out over the origin path, and the library never asks the seeder, which would
// serve every node in rarest-first order. When the origin fails, the nodes fall back to
// the seeder. A pkgsync node is that seeder only if it says it only seeds (Config.Seeder):
// one that simply completed on the origin's host (runners on one host, hosts behind one NAT)
// is a peer like any other.
func TestOriginSeeder(t *testing.T) {
	for _, tc := range []struct {
		name         string
		fail, seeder bool
	}{
		{"a seeder, the origin up", false, true},
		{"a seeder, the origin down", true, true},
		{"a node that completed, the origin up", false, false},
	} {
		fail := tc.fail
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, 6<<20, 11)
			ips := []string{"127.0.4.1", "127.0.4.2", "127.0.4.3", "127.0.4.4"}
			needLoopbacks(t, ips...)
			seedData := fx.seedFile(t)
			seeder := startNode(t, ips[0], func(c *Config) { c.Seeder = tc.seeder })
			seedTor := addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: seedData, Have: fx.all()})
			originAddrs := []netip.Addr{netip.MustParseAddr(ips[0])}
			var ns []*Node
			for _, ip := range ips[1:] {
				ns = append(ns, startNode(t, ip, nil))
			}
			var o origin
			var failed atomic.Int64
			var tors []*Torrent
			var parts []*os.File
			for i, n := range ns {
				peers := []netip.AddrPort{seeder.Addr()}
				for j, p := range ns {
					if j != i {
						peers = append(peers, p.Addr())
					}
				}
				part := fx.partFile(t, nil)
				fetch := o.fetch(fx, part, false)
				if fail {
					fetch = func(ctx context.Context, i int) (int64, error) {
						failed.Add(1)
						return 0, fmt.Errorf("origin: piece %d: 503 Service Unavailable", i)
					}
				}
				parts = append(parts, part)
				tors = append(tors, addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Origin: fetch,
					Peers: peers, OriginAddrs: originAddrs}))
			}
			downloadAll(t, tors)
			for _, p := range parts {
				checkData(t, p, fx.src)
			}
			f := int64(len(fx.src))
			up := seedTor.Stats().BytesUploaded
			t.Logf("origin sent %d bytes (%.2f F), the seeder %d (%.2f F), %d failed origin requests",
				o.bytes.Load(), float64(o.bytes.Load())/float64(f), up, float64(up)/float64(f), failed.Load())
			if fail {
				// A fast-path piece counts once its send returned, which may come after the
				// node verified it.
				waitFor(t, "the seeder to count the package as sent, with the origin down", func() bool {
					return seedTor.Stats().BytesUploaded >= f
				})
				return
			}
			if !tc.seeder {
				if up == 0 {
					t.Errorf("the node that completed on the origin's host sent nothing: it was taken for the origin's seeder")
				}
				return
			}
			if up != 0 {
				t.Errorf("the seeder on the origin's host sent %d bytes; want 0 (the origin path serves them)", up)
			}
			// The seeder sent nothing, so the origin sent every piece at least once; and no
			// node fetches a piece from it twice. (How close to once: swarmbench's classic.)
			if got := o.bytes.Load(); got < f || got > f*int64(len(ns)) {
				t.Errorf("origin sent %d bytes, want %d to %d", got, f, f*int64(len(ns)))
			}
		})
	}
}
