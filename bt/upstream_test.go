package bt

// The tests in this file check behaviour of github.com/anacrolix/torrent v1.59.1 itself, not of
// this package: each is a behaviour that a workaround described in doc.go relies on or works
// around. When one fails after an upgrade of the library, the workaround its doc names is to be
// re-checked (and may be dropped). They run the library's client alone or two clients on
// 127.0.0.1, and need no swarm.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"
)

// TestUpstreamDefaultConfig pins the defaults of torrent.NewDefaultClientConfig (config.go)
// that newNode overrides, so that an upgrade that changes one is noticed and the override
// re-checked:
//   - MaxAllocPeerRequestDataPerConn (1 MiB): the upload budget (doc.go "Upload budget",
//     peerRequestBudget);
//   - KeepAliveTimeout (1 min): the bound on a lost writer wake-up (doc.go "Lost wake-up",
//     writerWakeInterval);
//   - HalfOpenConnsPerTorrent (25) and DialRateLimiter (10/s): "Peer order";
//   - DisableWebseeds (off): "Web seeds";
//   - Seed and DisableAggressiveUpload (off): "Choking";
//   - DefaultStorage (nil, so file storage in DataDir): "Storage".
func TestUpstreamDefaultConfig(t *testing.T) {
	cc := torrent.NewDefaultClientConfig()
	tests := []struct {
		name      string
		got, want any
	}{
		{"MaxAllocPeerRequestDataPerConn", cc.MaxAllocPeerRequestDataPerConn, 1 << 20},
		{"KeepAliveTimeout", cc.KeepAliveTimeout, time.Minute},
		{"HalfOpenConnsPerTorrent", cc.HalfOpenConnsPerTorrent, 25},
		{"DialRateLimiter.Limit", cc.DialRateLimiter.Limit(), rate.Limit(10)},
		{"DisableWebseeds", cc.DisableWebseeds, false},
		{"Seed", cc.Seed, false},
		{"DisableAggressiveUpload", cc.DisableAggressiveUpload, false},
		{"DefaultStorage is nil", cc.DefaultStorage == nil, true},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("NewDefaultClientConfig().%s = %v, want %v: re-check the override in newNode and doc.go", tt.name, tt.got, tt.want)
		}
	}
}

// TestUpstreamDefaultStorageWritesCompletionDB guards "Storage" in doc.go (the client's
// DefaultStorage refuses every torrent): without DefaultStorage, NewClient (client.go) opens
// storage.NewFile(DataDir), whose pieceCompletionForDir (storage/completion.go) creates a bolt
// (.torrent.bolt.db) or sqlite (.torrent.db) completion database in DataDir. If it stops doing
// so, the refusing default storage is no longer needed to keep files out of DataDir.
func TestUpstreamDefaultStorageWritesCompletionDB(t *testing.T) {
	dir := t.TempDir()
	cc := upstreamConfig(t)
	cc.DataDir = dir
	cc.DefaultStorage = nil
	cl := newUpstreamClient(t, cc)
	cl.Close()
	var found []string
	for _, name := range []string{".torrent.bolt.db", ".torrent.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			found = append(found, name)
		}
	}
	if len(found) == 0 {
		ents, _ := os.ReadDir(dir)
		t.Errorf("the default storage wrote no piece completion database in DataDir %s (found %v): the refusing default storage of newNode may be dropped", dir, ents)
	}
}

// TestUpstreamWebseeds guards "Web seeds" in doc.go: TorrentSpecFromMetaInfo (spec.go) turns a
// .torrent's url-list into TorrentSpec.Webseeds, and a torrent added from that spec gets one web
// seed peer per URL (Torrent.addWebSeed, torrent.go) unless ClientConfig.DisableWebseeds is set.
// This package adds torrents with AddTorrentOpts and their info bytes only, and sets
// DisableWebseeds, so that the origin is reached through the OriginFunc alone.
func TestUpstreamWebseeds(t *testing.T) {
	mi, _ := upstreamTorrent(t, 64<<10, 2)
	mi.UrlList = []string{"http://127.0.0.1:9/pkg.tar"}
	spec := torrent.TorrentSpecFromMetaInfo(mi)
	if len(spec.Webseeds) != 1 || spec.Webseeds[0] != mi.UrlList[0] {
		t.Fatalf("TorrentSpecFromMetaInfo: Webseeds = %q, want the url-list %q", spec.Webseeds, mi.UrlList)
	}
	for _, tt := range []struct {
		name    string
		disable bool
		want    int
	}{
		{"default", false, 1},
		{"DisableWebseeds", true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc := upstreamConfig(t)
			cc.DisableWebseeds = tt.disable
			// Every piece is complete: a web seed peer exists but has nothing to fetch.
			cc.DefaultStorage = newMemStorage(nil, true)
			cl := newUpstreamClient(t, cc)
			tor, _, err := cl.AddTorrentSpec(spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(tor.WebseedPeerConns()); got != tt.want {
				t.Errorf("%d web seed peers from a url-list of one, want %d", got, tt.want)
			}
		})
	}
}

// TestUpstreamBanKeyAndChunkSize guards two workarounds with one bad piece from a single peer
// on 127.0.0.2.
//
// "Bad peers" in doc.go: a piece that fails its hash with one untrusted peer as its only
// source makes the library ban that peer (Torrent.pieceHashed, torrent.go, then
// PeerConn.providedBadData, peerconn.go; upstream issue anacrolix/torrent#715). Client.banPeerIP
// (client.go) keys the ban by netip.AddrFromSlice of net.ParseIP's 16-byte form: the
// IPv4-mapped address. Client.badPeerIPPort (incoming connections, client.go) and
// Torrent.dropBannedPeers (torrent.go) look up the plain IPv4 form, so the ban does not hold;
// the Node copies every library ban into its own IPBlocklist (banList). If the key becomes the
// plain form, the copy is no longer needed.
//
// Chunks of 16 KiB (defaultChunkSize, global.go): the range extension's request size
// (ranges.go) and the upload budget (peerRequestBudget, 1024 requests of 16 KiB) assume the
// library asks for and writes pieces in chunks of that size.
func TestUpstreamBanKeyAndChunkSize(t *testing.T) {
	const pieceLen, pieces = 64 << 10, 2
	mi, data := upstreamTorrent(t, pieceLen, pieces)
	liarData := bytes.Clone(data)
	for i := range liarData {
		liarData[i] ^= 0x5a
	}

	lc := upstreamConfig(t)
	lc.ListenHost = func(string) string { return "127.0.0.2" }
	lc.Seed = true
	lc.DefaultStorage = newMemStorage(liarData, true)
	liar := newUpstreamClient(t, lc)
	if _, err := liar.AddTorrent(mi); err != nil {
		t.Fatal(err)
	}

	vs := newMemStorage(make([]byte, len(data)), false)
	vc := upstreamConfig(t)
	vc.DefaultStorage = vs
	victim := newUpstreamClient(t, vc)
	tor, err := victim.AddTorrent(mi)
	if err != nil {
		t.Fatal(err)
	}
	tor.AddPeers([]torrent.PeerInfo{{Addr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: liar.LocalPort()}}})
	tor.DownloadAll()

	var banned []string
	deadline := time.Now().Add(testTimeout)
	for len(banned) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		banned = victim.BadPeerIPs()
	}
	if len(banned) != 1 {
		t.Fatalf("the library banned %v, want the lying peer 127.0.0.2 alone", banned)
	}
	a, err := netip.ParseAddr(banned[0])
	if err != nil {
		t.Fatal(err)
	}
	if a.Unmap() != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("the library banned %s, want 127.0.0.2", a)
	}
	if !a.Is4In6() {
		t.Errorf("the library keys the ban of an IPv4 peer by %s, not the IPv4-mapped form: re-check the ban copy into Node.bans (doc.go, Bad peers)", a)
	}

	sizes := vs.writeSizes()
	if len(sizes) == 0 {
		t.Fatal("the library wrote no chunk")
	}
	for _, n := range sizes {
		if n != 16<<10 {
			t.Fatalf("the library wrote chunks of %v bytes, want 16 KiB each: re-check the range extension's request size and peerRequestBudget", sizes)
		}
	}
}

// TestUpstreamReqq guards "Upload budget" in doc.go: the library accepts at most
// localClientReqq (1024, client.go) outstanding requests per connection, advertised as reqq
// in its extended handshake, and PeerConn.onReadRequest (peerconn.go) reserves
// MaxAllocPeerRequestDataPerConn for each. peerRequestBudget must cover that many chunks of
// 16 KiB so that no reservation waits on one only the same connection could free.
func TestUpstreamReqq(t *testing.T) {
	mi, data := upstreamTorrent(t, 64<<10, 1)
	cc := upstreamConfig(t)
	cc.Seed = true
	cc.DefaultStorage = newMemStorage(data, true)
	cl := newUpstreamClient(t, cc)
	if _, err := cl.AddTorrent(mi); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(cl.LocalPort())), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	ih := mi.HashInfoBytes()
	var id [20]byte
	copy(id[:], "-UPSTREAMTEST-reqq-")
	if _, err := pp.Handshake(context.Background(), c, &ih, id, pp.NewPeerExtensionBytes(pp.ExtensionBitLtep)); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	d := pp.Decoder{R: bufio.NewReader(c), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}}
	for {
		var msg pp.Message
		if err := d.Decode(&msg); err != nil {
			t.Fatalf("no extended handshake from the library: %v", err)
		}
		if msg.Type != pp.Extended || msg.ExtendedID != pp.HandshakeExtendedID {
			continue
		}
		var hs pp.ExtendedHandshakeMessage
		if err := bencode.Unmarshal(msg.ExtendedPayload, &hs); err != nil {
			t.Fatalf("extended handshake: %v", err)
		}
		if hs.Reqq != 1024 {
			t.Errorf("the library accepts %d outstanding requests, want 1024: re-check peerRequestBudget", hs.Reqq)
		}
		if peerRequestBudget < hs.Reqq*16<<10 {
			t.Errorf("peerRequestBudget %d covers fewer than the library's %d requests of 16 KiB", peerRequestBudget, hs.Reqq)
		}
		return
	}
}

// upstreamConfig is a client for these tests: on 127.0.0.1, an OS-chosen port, nothing but TCP.
func upstreamConfig(t *testing.T) *torrent.ClientConfig {
	cc := torrent.NewDefaultClientConfig()
	cc.DataDir = t.TempDir()
	cc.ListenHost = func(string) string { return "127.0.0.1" }
	cc.ListenPort = 0
	cc.NoDHT = true
	cc.DisableTrackers = true
	cc.DisablePEX = true
	cc.DisableUTP = true
	cc.DisableIPv6 = true
	cc.DisableWebtorrent = true
	cc.NoDefaultPortForwarding = true
	cc.Slogger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cc
}

func newUpstreamClient(t *testing.T, cc *torrent.ClientConfig) *torrent.Client {
	t.Helper()
	cl, err := torrent.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// upstreamTorrent makes a single-file torrent of n pieces of pieceLen pseudo-random bytes.
func upstreamTorrent(t *testing.T, pieceLen, n int) (*metainfo.MetaInfo, []byte) {
	t.Helper()
	data := make([]byte, pieceLen*n)
	for i := range data {
		data[i] = byte(i*131 + i>>9)
	}
	info := metainfo.Info{Name: "pkg.tar", PieceLength: int64(pieceLen), Length: int64(len(data))}
	for off := 0; off < len(data); off += pieceLen {
		sum := sha1.Sum(data[off : off+pieceLen])
		info.Pieces = append(info.Pieces, sum[:]...)
	}
	ib, err := bencode.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	return &metainfo.MetaInfo{InfoBytes: ib}, data
}

// memStorage is a storage.ClientImpl over one byte slice that records the length of every
// write. Completion is what the test says, so a liar can claim pieces it does not have.
type memStorage struct {
	mu       sync.Mutex
	data     []byte
	complete map[int]bool
	all      bool
	writes   []int
}

func newMemStorage(data []byte, complete bool) *memStorage {
	return &memStorage{data: data, complete: map[int]bool{}, all: complete}
}

func (s *memStorage) writeSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.writes...)
}

func (s *memStorage) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	s.mu.Lock()
	if s.data == nil {
		s.data = make([]byte, info.TotalLength())
	}
	s.mu.Unlock()
	return storage.TorrentImpl{
		Piece: func(p metainfo.Piece) storage.PieceImpl {
			return &memPiece{s: s, i: p.Index(), off: p.Offset(), len: p.Length()}
		},
		Close: func() error { return nil },
	}, nil
}

type memPiece struct {
	s        *memStorage
	i        int
	off, len int64
}

func (p *memPiece) ReadAt(b []byte, off int64) (int, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if off >= p.len {
		return 0, errors.New("read past the piece")
	}
	n := copy(b, p.s.data[p.off+off:p.off+p.len])
	if n < len(b) {
		return n, errors.New("short read")
	}
	return n, nil
}

func (p *memPiece) WriteAt(b []byte, off int64) (int, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.writes = append(p.s.writes, len(b))
	return copy(p.s.data[p.off+off:p.off+p.len], b), nil
}

func (p *memPiece) MarkComplete() error { return p.set(true) }

func (p *memPiece) MarkNotComplete() error { return p.set(false) }

func (p *memPiece) set(c bool) error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.complete[p.i] = c
	return nil
}

func (p *memPiece) Completion() storage.Completion {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	c, ok := p.s.complete[p.i]
	if !ok {
		c = p.s.all
	}
	return storage.Completion{Complete: c, Ok: true}
}

// TestUpstreamUpdateCompletion: Piece.UpdateCompletion has the library read a piece's completion
// from storage and take a change at once, without hashing the piece (Torrent.updatePieceCompletion,
// torrent.go): the fast path relies on it (completeFast) to hand over pieces it verified itself.
// Here piece 0 holds garbage and storage says it is complete: the library takes storage's word.
// Piece 1, whose storage says nothing new, stays incomplete.
func TestUpstreamUpdateCompletion(t *testing.T) {
	fx := newFixture(t, 3*testPieceLen, 71)
	part := fx.partFile(t, nil)
	info, err := fx.mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	st := newFileStorage(part, &info, nil)
	cc := torrent.NewDefaultClientConfig()
	cc.DataDir = t.TempDir()
	cc.ListenPort = 0
	cc.NoDHT, cc.DisableTrackers, cc.DisableUTP, cc.NoDefaultPortForwarding = true, true, true, true
	cc.ListenHost = func(string) string { return "127.0.0.1" }
	cc.DisableIPv6 = true
	cl, err := torrent.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	lt, _ := cl.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: fx.mi.HashInfoBytes(), Storage: st, InfoBytes: fx.mi.InfoBytes})
	<-lt.GotInfo()
	st.setComplete(0, true)
	for p, want := range []bool{true, false} {
		lt.Piece(p).UpdateCompletion()
		if ps := lt.PieceState(p); ps.Complete != want || ps.Hashing || ps.QueuedForHash {
			t.Errorf("piece %d: %+v, want complete %t and no hashing", p, ps, want)
		}
	}
	if got := lt.BytesCompleted(); got != testPieceLen {
		t.Errorf("the library counts %d bytes complete, want the %d of piece 0", got, testPieceLen)
	}
}
