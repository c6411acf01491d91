package bt

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/storage"
)

func TestRangeCodec(t *testing.T) {
	pieceLen := func(p int) int64 {
		if p == 3 {
			return 1000 // a short last piece
		}
		return testPieceLen
	}
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte(i)
	}
	good := []rangeMsg{
		{kind: msgRangeRequest, id: 7, piece: 2, off: 4096, length: rangeChunk},
		{kind: msgRangeRequest, id: 1<<32 - 1, piece: 3, off: 999, length: 1},
		{kind: msgRangeData, id: 9, piece: 0, off: testPieceLen - 100, length: 100, data: data},
		{kind: msgRangeReject, id: 0, piece: 1, off: 5},
	}
	for _, m := range good {
		got, err := decodeRange(encodeRange(m), 4, pieceLen)
		if err != nil {
			t.Errorf("%+v: %v", m, err)
			continue
		}
		if got.kind != m.kind || got.id != m.id || got.piece != m.piece || got.off != m.off ||
			got.length != m.length || !slices.Equal(got.data, m.data) {
			t.Errorf("round trip of %+v gave %+v", m, got)
		}
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", []byte{'q', 0, 0, 0, 1}},
		{"unknown kind", encodeRange(rangeMsg{kind: 'z', piece: 1})},
		{"piece out of range", encodeRange(rangeMsg{kind: msgRangeRequest, piece: 4, length: 10})},
		{"zero length", encodeRange(rangeMsg{kind: msgRangeRequest, piece: 1})},
		{"too long", encodeRange(rangeMsg{kind: msgRangeRequest, piece: 1, length: rangeChunk + 1})},
		{"past piece end", encodeRange(rangeMsg{kind: msgRangeRequest, piece: 3, off: 990, length: 11})},
		{"request with extra", append(encodeRange(rangeMsg{kind: msgRangeRequest, piece: 1, length: 1}), 0)},
		{"reject with extra", append(encodeRange(rangeMsg{kind: msgRangeReject, piece: 1}), 0)},
		{"empty data", encodeRange(rangeMsg{kind: msgRangeData, piece: 1})},
		{"data past end", encodeRange(rangeMsg{kind: msgRangeData, piece: 3, off: 950, data: data})},
	}
	for _, tc := range bad {
		if m, err := decodeRange(tc.b, 4, pieceLen); !errors.Is(err, errBadRange) {
			t.Errorf("%s: got %+v, %v; want errBadRange", tc.name, m, err)
		}
	}
}

func TestRangeChunks(t *testing.T) {
	const off, n = 1 << 20, 100 << 10
	tests := []struct {
		name    string
		missing []Range
		want    []Range
		whole   bool
	}{
		{"none", nil, nil, true},
		{"one small", []Range{{Off: off + 10, Len: 20}}, []Range{{Off: 10, Len: 20}}, false},
		{"split", []Range{{Off: off, Len: 40 << 10}}, []Range{{Off: 0, Len: 16 << 10}, {Off: 16 << 10, Len: 16 << 10}, {Off: 32 << 10, Len: 8 << 10}}, false},
		{"clipped", []Range{{Off: off - 5, Len: 10}, {Off: off + n - 3, Len: 10}, {Off: 0, Len: 4}}, []Range{{Off: 0, Len: 5}, {Off: n - 3, Len: 3}}, false},
		{"all of it", []Range{{Off: off, Len: n / 2}, {Off: off + n/2, Len: n / 2}}, nil, true},
	}
	for _, tc := range tests {
		got, whole := rangeChunks(tc.missing, off, n)
		if whole != tc.whole || (!tc.whole && !slices.Equal(got, tc.want)) {
			t.Errorf("%s: got %v whole=%v, want %v whole=%v", tc.name, got, whole, tc.want, tc.whole)
		}
	}
}

// oldVersion is a copy of fx's source as a node rebuilt it from an old version: piece 0
// intact and known complete, piece 1 wholly missing, and every other piece with a few
// small scattered blocks missing (garbage in the file). It returns the Have bitmap, the
// Missing function, the number of missing bytes and of partial pieces.
func (fx *fixture) oldVersion(t testing.TB, seed uint64) (have []bool, missing func(int) []Range, total int64, partial int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	have = make([]bool, fx.num)
	have[0] = true
	gaps := make([][]Range, fx.num)
	for i := 1; i < fx.num; i++ {
		off, n := fx.pieceRange(i)
		if i == 1 {
			gaps[i] = []Range{{Off: off, Len: n}}
			total += n
			continue
		}
		partial++
		const block = 2 << 10
		nb := n / block
		for _, b := range r.Perm(int(nb))[:min(3, nb)] {
			gaps[i] = append(gaps[i], Range{Off: off + int64(b)*block, Len: block})
			total += block
		}
		if tail := n % block; tail > 0 {
			gaps[i] = append(gaps[i], Range{Off: off + nb*block, Len: tail})
			total += tail
		}
		slices.SortFunc(gaps[i], func(a, b Range) int { return int(a.Off - b.Off) })
	}
	return have, func(p int) []Range { return gaps[p] }, total, partial
}

// oldFile writes the source with the given missing ranges replaced by garbage.
func (fx *fixture) oldFile(t testing.TB, missing func(int) []Range) *os.File {
	t.Helper()
	data := slices.Clone(fx.src)
	for i := range fx.num {
		for _, g := range missing(i) {
			for j := g.Off; j < g.Off+g.Len; j++ {
				data[j] ^= 0xa5
			}
		}
	}
	return writeTemp(t, "old.part", data, false)
}

// Nodes that rebuilt most of each piece from an old version take only the missing bytes
// from pkgsync peers, not whole pieces.
func TestPartialPiecesFromPeers(t *testing.T) {
	tests := []struct {
		name       string
		nodes      int
		withOrigin bool
		uploadRate int64
	}{
		{"one node", 1, false, 0},
		{"three nodes", 3, false, 0},
		{"three nodes with origin", 3, true, 0},
		{"rate limited seeder", 2, true, 16 << 20},
	}
	for k, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, 4<<20+3000, uint64(20+k))
			have, missing, total, partial := fx.oldVersion(t, uint64(k))
			seeder := startNode(t, loopback(t, 0), func(c *Config) { c.MaxUploadRate = tc.uploadRate })
			addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
			var o origin
			var parts []*os.File
			var tors []*Torrent
			var ns []*Node
			for i := range tc.nodes {
				ns = append(ns, startNode(t, loopback(t, 1+i), nil))
			}
			for i, n := range ns {
				part := fx.oldFile(t, missing)
				parts = append(parts, part)
				peers := []netip.AddrPort{seeder.Addr()}
				for j, m := range ns {
					if j != i {
						peers = append(peers, m.Addr())
					}
				}
				p := Package{MetaInfo: fx.mi, Data: part, Have: have, Missing: missing, Peers: peers}
				if tc.withOrigin {
					p.Origin = o.fetch(fx, part, false)
				}
				tors = append(tors, addPkg(t, n, p))
			}
			downloadAll(t, tors)
			limit := total*3/2 + int64(partial)*rangeChunk
			for i, tor := range tors {
				checkData(t, parts[i], fx.src)
				st := tor.Stats()
				t.Logf("node %d: missing %d bytes in %d partial pieces and one whole; %d from peers, %d from origin, %d uploaded",
					i, total, partial, st.BytesFromPeers, st.BytesFromOrigin, st.BytesUploaded)
				if got := st.BytesFromPeers + st.BytesFromOrigin; got > limit {
					t.Errorf("node %d took %d bytes (%d from peers), want at most %d for %d missing",
						i, got, st.BytesFromPeers, limit, total)
				}
			}
			if up := seeder.torrentsUploaded(); up == 0 {
				t.Errorf("the seeder uploaded nothing")
			}
		})
	}
}

// torrentsUploaded sums BytesUploaded over the Node's torrents.
// torrentsUploaded sums the node's uploads. It must not hold n.mu while asking the library:
// the library calls back into lookup (which takes n.mu) with its own lock held.
func (n *Node) torrentsUploaded() int64 {
	n.mu.Lock()
	ts := make([]*Torrent, 0, len(n.torrents))
	for _, t := range n.torrents {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	var s int64
	for _, t := range ts {
		s += t.uploaded() + t.rangeUp.Load()
	}
	return s
}

func downloadAll(t *testing.T, tors []*Torrent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	errs := make([]error, len(tors))
	var wg sync.WaitGroup
	for i, tor := range tors {
		wg.Go(func() { errs[i] = tor.Download(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			dumpNodes(t)
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

// A pkgsync peer that answers range requests with wrong bytes, or a plan wrong about the
// bytes it counted as present, cannot spoil the result: pieces that fail verification go
// back to the other paths.
func TestPartialPiecesBadData(t *testing.T) {
	tests := []struct {
		name       string
		liar       bool // a peer serves wrong bytes for every piece
		honest     bool // an honest seeder is there too
		withOrigin bool
		wrongPlan  bool // the old file also differs outside the missing ranges
	}{
		{name: "liar and honest seeder", liar: true, honest: true, withOrigin: true},
		{name: "liar and origin", liar: true, withOrigin: true},
		{name: "wrong plan, seeder only", honest: true, wrongPlan: true},
		{name: "wrong plan, seeder and origin", honest: true, withOrigin: true, wrongPlan: true},
	}
	for k, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, 2<<20, uint64(30+k))
			have, gaps, _, _ := fx.oldVersion(t, uint64(k))
			// Every missing piece is partial: the range path is tried first for all.
			have[1] = true
			missing := func(p int) []Range {
				if p == 1 {
					return nil
				}
				return gaps(p)
			}
			var peers []netip.AddrPort
			var lt *Torrent
			if tc.liar {
				lies := slices.Clone(fx.src)
				for i := range lies {
					lies[i] ^= 0x3c
				}
				liar := startNode(t, loopback(t, 0), nil)
				lt = addPkg(t, liar, Package{MetaInfo: fx.mi, Data: writeTemp(t, "lies.bin", lies, true), Have: fx.all()})
				peers = append(peers, liar.Addr())
			}
			if tc.honest {
				good := startNode(t, loopback(t, 1), nil)
				addPkg(t, good, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
				peers = append(peers, good.Addr())
			}
			part := fx.oldFile(t, missing)
			if tc.wrongPlan {
				for i := 2; i < fx.num; i += 2 {
					off, _ := fx.pieceRange(i)
					var b [1]byte
					if _, err := part.ReadAt(b[:], off+1); err != nil {
						t.Fatal(err)
					}
					b[0] ^= 0xff
					if _, err := part.WriteAt(b[:], off+1); err != nil {
						t.Fatal(err)
					}
				}
			}
			var o origin
			p := Package{MetaInfo: fx.mi, Data: part, Have: have, Missing: missing, Peers: peers}
			if tc.withOrigin {
				p.Origin = o.fetch(fx, part, false)
			}
			dl := startNode(t, loopback(t, 2), func(c *Config) { c.StallTimeout = time.Second })
			tor := addPkg(t, dl, p)
			download(t, tor)
			checkData(t, part, fx.src)
			t.Logf("stats: %+v; origin calls %d", tor.Stats(), o.calls.Load())
			if lt != nil {
				t.Logf("the liar sent %d bytes of ranges", lt.rangeUp.Load())
				if !tc.honest && lt.rangeUp.Load() == 0 {
					t.Errorf("the liar was never asked for ranges")
				}
			}
		})
	}
}

// stockSeeder starts a plain anacrolix client (no pkgsync extensions) seeding fx.
func stockSeeder(t *testing.T, fx *fixture, ip string) netip.AddrPort {
	t.Helper()
	dir := t.TempDir()
	cfg := torrent.NewDefaultClientConfig()
	cfg.ListenHost = func(string) string { return ip }
	cfg.ListenPort = 0
	cfg.DisableIPv6 = true
	cfg.DisableUTP = true
	cfg.NoDHT = true
	cfg.DisableTrackers = true
	cfg.NoDefaultPortForwarding = true
	cfg.Seed = true
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   dir,
		PieceCompletion: storage.NewMapPieceCompletion(),
	})
	info, err := fx.mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, info.BestName()), fx.src, 0o644); err != nil {
		t.Fatal(err)
	}
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	tor, err := cl.AddTorrent(fx.mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.VerifyDataContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The library may record the result after VerifyData returns (see verify).
	select {
	case <-tor.Complete().On():
	case <-time.After(testTimeout):
		t.Fatal("stock seeder: data did not verify")
	}
	ap, err := netip.ParseAddrPort(cl.ListenAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// stockLeecher starts a plain anacrolix client that downloads fx from peers, and returns
// a channel closed when it has everything.
func stockLeecher(t *testing.T, fx *fixture, ip string, peers []netip.AddrPort) (<-chan struct{}, func() []byte) {
	t.Helper()
	dir := t.TempDir()
	cfg := torrent.NewDefaultClientConfig()
	cfg.ListenHost = func(string) string { return ip }
	cfg.ListenPort = 0
	cfg.DisableIPv6 = true
	cfg.DisableUTP = true
	cfg.NoDHT = true
	cfg.DisableTrackers = true
	cfg.NoDefaultPortForwarding = true
	cfg.DefaultStorage = storage.NewFileOpts(storage.NewFileClientOpts{
		ClientBaseDir:   dir,
		PieceCompletion: storage.NewMapPieceCompletion(),
	})
	cl, err := torrent.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	tor, err := cl.AddTorrent(fx.mi)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		tor.AddPeers([]torrent.PeerInfo{{Addr: net.TCPAddrFromAddrPort(p), Source: torrent.PeerSourceDirect}})
	}
	tor.DownloadAll()
	done := make(chan struct{})
	go func() {
		select {
		case <-tor.Complete().On():
			close(done)
		case <-cl.Closed():
		}
	}()
	return done, func() []byte {
		b, err := os.ReadFile(filepath.Join(dir, tor.Info().BestName()))
		if err != nil {
			t.Error(err)
		}
		return b
	}
}

// Clients without the extension are served and serve as before: a stock seeder gives
// partial pieces whole, and a stock leecher beside pkgsync nodes gets everything.
func TestPartialPiecesMixedSwarm(t *testing.T) {
	fx := newFixture(t, 2<<20+100, 40)
	have, missing, total, partial := fx.oldVersion(t, 4)

	// A pkgsync node whose only peer is a stock seeder: whole pieces, still correct.
	stock := stockSeeder(t, fx, loopback(t, 0))
	part := fx.oldFile(t, missing)
	n := startNode(t, loopback(t, 1), nil)
	tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Have: have, Missing: missing, Peers: []netip.AddrPort{stock}})
	download(t, tor)
	checkData(t, part, fx.src)
	st := tor.Stats()
	t.Logf("from a stock seeder: missing %d, %d from peers", total, st.BytesFromPeers)
	if st.BytesFromPeers < int64(partial)*testPieceLen/2 {
		t.Errorf("%d bytes from a stock seeder for %d partial pieces: it cannot send parts", st.BytesFromPeers, partial)
	}

	// A pkgsync seeder, a stock leecher and a pkgsync node with the old version.
	seeder := startNode(t, loopback(t, 2), nil)
	addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
	part2 := fx.oldFile(t, missing)
	n2 := startNode(t, loopback(t, 3), nil)
	tor2 := addPkg(t, n2, Package{MetaInfo: fx.mi, Data: part2, Have: have, Missing: missing,
		Peers: []netip.AddrPort{seeder.Addr()}})
	done, read := stockLeecher(t, fx, loopback(t, 4), []netip.AddrPort{seeder.Addr(), n2.Addr()})
	download(t, tor2)
	checkData(t, part2, fx.src)
	st2 := tor2.Stats()
	if limit := total*3/2 + int64(partial)*rangeChunk; st2.BytesFromPeers > limit {
		t.Errorf("beside a stock leecher: %d bytes from peers, want at most %d", st2.BytesFromPeers, limit)
	}
	select {
	case <-done:
	case <-time.After(testTimeout):
		dumpNodes(t)
		t.Fatal("the stock leecher did not complete")
	}
	if got := read(); !slices.Equal(got, fx.src) {
		t.Errorf("the stock leecher's data differs from the source")
	}
}
