package bt

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/internal/directio"
)

func TestFastCodec(t *testing.T) {
	ih := metainfo.Hash{1, 2, 3, 19: 20}
	req := encodeFastRequest(ih, 70000)
	if gotIH, p, err := decodeFastRequest(req); err != nil || gotIH != ih || p != 70000 {
		t.Errorf("request round trip: %x %d %v", gotIH, p, err)
	}
	if port, err := decodeFastPort(encodeFastPort(6881)); err != nil || port != 6881 {
		t.Errorf("port round trip: %d %v", port, err)
	}
	pieceLen := func(p int) int64 { return map[bool]int64{true: 100, false: 256}[p == 3] }
	tests := []struct {
		name  string
		b     []byte
		want  int
		data  bool
		valid bool
	}{
		{"data", encodeFastReply(msgFastData, 2, 256), 2, true, true},
		{"last piece", encodeFastReply(msgFastData, 3, 100), 3, true, true},
		{"refusal", encodeFastReply(msgFastRefused, 2, 0), 2, false, true},
		{"busy", encodeFastReply(msgFastBusy, 2, 0), 2, false, true},
		{"busy with length", encodeFastReply(msgFastBusy, 2, 256), 2, false, false},
		{"other piece", encodeFastReply(msgFastData, 1, 256), 2, false, false},
		{"short data", encodeFastReply(msgFastData, 2, 255), 2, false, false},
		{"long last piece", encodeFastReply(msgFastData, 3, 256), 3, false, false},
		{"refusal with length", encodeFastReply(msgFastRefused, 2, 1), 2, false, false},
		{"unknown kind", encodeFastReply('q', 2, 256), 2, false, false},
		{"short header", encodeFastReply(msgFastData, 2, 256)[:8], 2, false, false},
	}
	for _, tc := range tests {
		kind, err := decodeFastReply(tc.b, tc.want, pieceLen)
		if (err == nil) != tc.valid || (kind == msgFastData) != tc.data || err == nil && kind != tc.b[0] {
			t.Errorf("%s: kind %q, err %v; want data %t, valid %t", tc.name, kind, err, tc.data, tc.valid)
		}
	}
	for _, b := range [][]byte{nil, {'g'}, append([]byte{'x'}, req[1:]...), append(req, 0)} {
		if _, _, err := decodeFastRequest(b); err == nil {
			t.Errorf("request %x accepted", b)
		}
	}
	for _, b := range [][]byte{nil, {'p', 0, 0}, {'p', 1}, {'q', 1, 1}, {'p', 1, 1, 1}} {
		if _, err := decodeFastPort(b); err == nil {
			t.Errorf("port message %x accepted", b)
		}
	}
}

// FuzzDecodeFast feeds the fast path's decoders arbitrary bytes: the port message and the
// request come from any peer, the reply header from any peer a node fetches from. What they
// accept encodes back to the same bytes, and a reply accepted as data names the piece asked for
// with exactly its length.
func FuzzDecodeFast(f *testing.F) {
	f.Add(encodeFastPort(1234), uint32(0), uint32(4))
	f.Add(encodeFastRequest(metainfo.Hash{9}, 5), uint32(5), uint32(8))
	f.Add(encodeFastReply(msgFastData, 5, testPieceLen), uint32(5), uint32(8))
	f.Add(encodeFastReply(msgFastRefused, 7, 0), uint32(7), uint32(8))
	f.Add(encodeFastReply(msgFastBusy, 7, 0), uint32(7), uint32(8))
	f.Add(encodeFastReply(msgFastData, 7, 1000), uint32(7), uint32(8))
	f.Fuzz(func(t *testing.T, b []byte, want, numPieces uint32) {
		if port, err := decodeFastPort(b); err == nil && !bytes.Equal(encodeFastPort(port), b) {
			t.Fatalf("port message %x decoded as %d", b, port)
		}
		if ih, p, err := decodeFastRequest(b); err == nil && !bytes.Equal(encodeFastRequest(ih, int(p)), b) {
			t.Fatalf("request %x decoded as %x %d", b, ih, p)
		}
		if numPieces == 0 || want >= numPieces {
			return
		}
		pieceLen := func(p int) int64 {
			if p == int(numPieces)-1 {
				return 1000
			}
			return testPieceLen
		}
		kind, err := decodeFastReply(b, int(want), pieceLen)
		if err != nil {
			return
		}
		length := int64(0)
		if kind == msgFastData {
			length = pieceLen(int(want))
		}
		if again := encodeFastReply(kind, int(want), length); !bytes.Equal(again, b) {
			t.Fatalf("reply %x accepted as %q for piece %d, which encodes as %x", b, kind, want, again)
		}
	})
}

// The fast path between two pkgsync nodes carries the whole package, byte for byte, and the
// library carries none of it; with the fast path off on either side, the library carries it all.
func TestFastPath(t *testing.T) {
	tests := []struct {
		name               string
		seedMod, getMod    func(*Config)
		fast               bool
		uploadCap, lenient bool
		direct             bool // the downloader has Package.Direct
	}{
		{"fast path", nil, nil, true, false, false, false},
		{"fast path with O_DIRECT", nil, nil, true, false, false, true},
		{"rate limited", func(c *Config) { c.MaxUploadRate = 16 << 20 }, func(c *Config) { c.MaxDownloadRate = 16 << 20 }, true, true, false, false},
		{"off at the downloader", nil, func(c *Config) { c.NoFastPath = true }, false, false, false, false},
		{"off at the seeder", func(c *Config) { c.NoFastPath = true }, nil, false, false, false, false},
		{"encryption required", func(c *Config) { c.RequireEncryption = true }, func(c *Config) { c.RequireEncryption = true }, false, false, false, false},
	}
	fx := newFixture(t, 6<<20+4321, 61)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seed, part := fx.seedFile(t), fx.partFile(t, nil)
			seeder := startNode(t, loopback(t, 2*i), tc.seedMod)
			st := addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
			dl := startNode(t, loopback(t, 2*i+1), tc.getMod)
			var written atomic.Int64
			var direct *os.File
			if tc.direct {
				d, err := directio.Open(part.Name())
				if err != nil {
					t.Fatalf("opening %s with O_DIRECT: %v", part.Name(), err)
				}
				t.Cleanup(func() { d.Close() })
				direct = d
			}
			tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Direct: direct, Peers: []netip.AddrPort{seeder.Addr()},
				Written: func(n int64) { written.Add(n) }})
			download(t, tor)
			checkData(t, part, fx.src)
			size := int64(len(fx.src))
			// Package.Written hears of every byte that went through Data: once each over the
			// fast path, at least once over BitTorrent (a chunk may come twice).
			throughData := size - tor.Stats().BytesWrittenDirect
			if w := written.Load(); w < throughData || tc.fast && w != throughData {
				t.Errorf("Package.Written told of %d bytes written, want %d", w, throughData)
			}
			if tc.fast {
				// The seeder counts a piece once its send returned, which may come after the
				// downloader verified it.
				waitFor(t, "the seeder to count what it sent", func() bool { return st.Stats().BytesUploadedFast >= size })
			}
			got, sent := tor.Stats(), st.Stats()
			t.Logf("downloader %+v; seeder uploaded %d, %d of it fast", got, sent.BytesUploaded, sent.BytesUploadedFast)
			if tc.fast {
				if got.BytesFromPeersFast != size || got.BytesFromPeers != size {
					t.Errorf("%d bytes over the fast path, %d from peers in all; want all %d over the fast path",
						got.BytesFromPeersFast, got.BytesFromPeers, size)
				}
				if sent.BytesUploadedFast != size || sent.BytesUploaded != size {
					t.Errorf("seeder sent %d bytes over the fast path, %d in all; want all %d over the fast path",
						sent.BytesUploadedFast, sent.BytesUploaded, size)
				}
			} else {
				if got.BytesFromPeersFast != 0 || sent.BytesUploadedFast != 0 || got.BytesFromPeers < size {
					t.Errorf("fast path off: %d bytes over it down, %d up; %d from peers, want %d",
						got.BytesFromPeersFast, sent.BytesUploadedFast, got.BytesFromPeers, size)
				}
			}
			// With Package.Direct every whole piece goes direct but the last, whose length is
			// not a multiple of a page.
			wantDirect := int64(0)
			if tc.direct {
				wantDirect = size - size%testPieceLen
			}
			if got.BytesWrittenDirect != wantDirect {
				t.Errorf("%d bytes written with O_DIRECT, want %d", got.BytesWrittenDirect, wantDirect)
			}
			if len(got.Peers) != 1 || got.Peers[0].Downloaded != got.BytesFromPeers {
				t.Errorf("peer stats %+v: want one peer that gave all %d bytes", got.Peers, got.BytesFromPeers)
			}
		})
	}
}

// A pkgsync node that lies over the fast path is banned for the first bad piece, which is never
// written, and the piece comes from the honest seeder; a stock seeder serves a pkgsync node over
// BitTorrent, and a pkgsync seeder serves a stock leecher.
func TestFastPathPeers(t *testing.T) {
	fx := newFixture(t, 4<<20+777, 62)
	t.Run("liar", func(t *testing.T) {
		seed, lies, part := fx.seedFile(t), fx.corruptFile(t), fx.partFile(t, nil)
		liar := startNode(t, loopback(t, 0), nil)
		addPkg(t, liar, Package{MetaInfo: fx.mi, Data: lies, Have: fx.all()})
		good := startNode(t, loopback(t, 1), nil)
		addPkg(t, good, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
		var logs logBuffer
		dl := startNode(t, loopback(t, 2), func(c *Config) { c.Logger = logs.logger() })
		// The liar alone first, so that it is asked.
		tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Peers: []netip.AddrPort{liar.Addr()}})
		downloadPastLiar(t, dl, tor, liar, good)
		checkData(t, part, fx.src)
		if !logs.banLogged(liar.Addr().Addr().String()) || !strings.Contains(logs.String(), "pkgsync_fast") {
			t.Errorf("no ban of %s for the fast path in the log:\n%s", liar.Addr().Addr(), logs.String())
		}
		if slices.Contains(bannedBy(dl), good.Addr().Addr().String()) {
			t.Errorf("banned the honest seeder %s", good.Addr().Addr())
		}
		if st := tor.Stats(); st.BytesFromPeersFast != int64(len(fx.src)) {
			t.Errorf("%d bytes stored from the fast path, want the %d of the package (the bad piece not among them)",
				st.BytesFromPeersFast, len(fx.src))
		}
	})
	t.Run("stock seeder", func(t *testing.T) {
		// At most 64 chunks: a stock anacrolix seeder with its default request budget stops
		// uploading to a peer with more requests outstanding (see setLimits).
		fx := newFixture(t, 1<<20, 64)
		part := fx.partFile(t, nil)
		stock := stockSeeder(t, fx, loopback(t, 3))
		n := startNode(t, loopback(t, 4), nil)
		tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Peers: []netip.AddrPort{stock}})
		download(t, tor)
		checkData(t, part, fx.src)
		if st := tor.Stats(); st.BytesFromPeersFast != 0 || st.BytesFromPeers < int64(len(fx.src)) {
			t.Errorf("from a stock seeder: %d bytes fast, %d from peers", st.BytesFromPeersFast, st.BytesFromPeers)
		}
	})
	t.Run("stock leecher", func(t *testing.T) {
		seeder := startNode(t, loopback(t, 5), nil)
		addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
		done, read := stockLeecher(t, fx, loopback(t, 6), []netip.AddrPort{seeder.Addr()})
		select {
		case <-done:
		case <-time.After(testTimeout):
			dumpNodes(t)
			t.Fatal("the stock leecher did not complete")
		}
		if !slices.Equal(read(), fx.src) {
			t.Error("the stock leecher's data differs from the source")
		}
	})
}

// A peer that offers the fast path but cannot be reached on it is heard through the library
// again: the download completes over BitTorrent.
func TestFastPathUnreachable(t *testing.T) {
	fx := newFixture(t, 3<<20+5, 63)
	seed, part := fx.seedFile(t), fx.partFile(t, nil)
	seeder := startNode(t, loopback(t, 0), nil)
	addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: seed, Have: fx.all()})
	seeder.fast.l.Close() // still offered in handshakes, no longer listening
	var logs logBuffer
	dl := startNode(t, loopback(t, 1), func(c *Config) { c.Logger = logs.logger() })
	tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Peers: []netip.AddrPort{seeder.Addr()}})
	download(t, tor)
	checkData(t, part, fx.src)
	st := tor.Stats()
	if st.BytesFromPeersFast != 0 || st.BytesFromPeers < int64(len(fx.src)) {
		t.Errorf("%d bytes fast, %d from peers; want all %d over BitTorrent", st.BytesFromPeersFast, st.BytesFromPeers, len(fx.src))
	}
	if !strings.Contains(logs.String(), "fast path to a peer failed") {
		t.Errorf("the fallback is not logged:\n%s", logs.String())
	}
}

// claimFast takes the first free piece of the peer's from the start position on, wrapping around.
func TestStorageClaimFast(t *testing.T) {
	tests := []struct {
		name  string
		from  int
		among []uint32
		held  []int // claimed before, by the fast path
		done  []int // complete
		skip  int   // want refuses it; -1: none
		want  int
	}{
		{name: "first from the start", from: 0, among: []uint32{0, 1, 2}, skip: -1, want: 0},
		{name: "from the middle", from: 1, among: []uint32{0, 1, 2}, skip: -1, want: 1},
		{name: "only the peer's", from: 0, among: []uint32{2}, skip: -1, want: 2},
		{name: "wraps around", from: 2, among: []uint32{0, 1}, skip: -1, want: 0},
		{name: "past the end", from: 3, among: []uint32{1}, skip: -1, want: 1},
		{name: "held and complete skipped", from: 0, among: []uint32{0, 1, 2}, held: []int{0}, done: []int{1}, skip: -1, want: 2},
		{name: "refused skipped", from: 0, among: []uint32{0, 1}, skip: 0, want: 1},
		{name: "nothing left", from: 1, among: []uint32{1}, held: []int{1}, skip: -1, want: -1},
		{name: "peer has nothing", from: 0, skip: -1, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := storageFixture(t, nil)
			for _, p := range tt.held {
				if s.claimFast(p, roaring.BitmapOf(uint32(p)), func(int) bool { return true }) != p {
					t.Fatalf("setting up: piece %d not taken", p)
				}
			}
			for _, p := range tt.done {
				s.complete[p] = true
			}
			got := s.claimFast(tt.from, roaring.BitmapOf(tt.among...), func(p int) bool { return p != tt.skip })
			if got != tt.want {
				t.Errorf("claimFast(%d, %v) = %d, want %d", tt.from, tt.among, got, tt.want)
			}
		})
	}
}

// A piece the fast path holds is taken once, refuses the library's writes, and is released once.
func TestStorageFastHold(t *testing.T) {
	s, _, ti := storageFixture(t, nil)
	all := roaring.New()
	all.AddRange(0, uint64(s.numPieces))
	p := s.claimFast(0, all, func(i int) bool { return i == 1 })
	if p != 1 {
		t.Fatalf("claimFast took %d, want 1", p)
	}
	if s.claimFast(0, all, func(i int) bool { return i == 1 }) != -1 {
		t.Fatal("a piece was taken twice")
	}
	if _, err := piece(ti, 1).WriteAt([]byte{1}, 0); err == nil {
		t.Error("a peer write went into a piece the fast path holds")
	}
	if !s.releaseFast(1) || s.releaseFast(1) {
		t.Error("releaseFast: the hold did not end exactly once")
	}
	if _, err := piece(ti, 1).WriteAt([]byte{1}, 0); err != nil {
		t.Errorf("a peer write into a released piece: %v", err)
	}
}

// Storage tells the fast path (onFree) when a piece it may take becomes free: an incomplete
// piece the origin or the range path lets go, or a complete piece that loses its completion;
// not a complete piece let go, nor a piece taken or completed.
func TestStorageOnFree(t *testing.T) {
	tests := []struct {
		name string
		run  func(s *fileStorage)
		want int
	}{
		{"busy piece let go", func(s *fileStorage) { s.setBusy(0, true); s.setBusy(0, false) }, 1},
		{"taken only", func(s *fileStorage) { s.setBusy(0, true) }, 0},
		{"let go twice", func(s *fileStorage) { s.setBusy(0, true); s.setBusy(0, false); s.setBusy(0, false) }, 1},
		{"never taken", func(s *fileStorage) { s.setBusy(0, false) }, 0},
		{"complete piece let go", func(s *fileStorage) { s.setBusy(0, true); s.setComplete(0, true); s.setBusy(0, false) }, 0},
		{"completion lost", func(s *fileStorage) { s.setComplete(1, true); s.setComplete(1, false) }, 1},
		{"completed", func(s *fileStorage) { s.setComplete(1, true) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := storageFixture(t, nil)
			calls := 0
			s.onFree = func() { calls++ }
			tt.run(s)
			if calls != tt.want {
				t.Errorf("onFree called %d times, want %d", calls, tt.want)
			}
		})
	}
}

// Batches are handed over at the next multiple of fastMarkDelay on the wall clock, never at once.
func TestUntilMark(t *testing.T) {
	base := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		after, want time.Duration
	}{
		{0, fastMarkDelay},
		{time.Millisecond, fastMarkDelay - time.Millisecond},
		{fastMarkDelay - time.Nanosecond, time.Nanosecond},
		{fastMarkDelay, fastMarkDelay},
		{3*fastMarkDelay + fastMarkDelay/4, fastMarkDelay - fastMarkDelay/4},
	}
	for _, tt := range tests {
		if got := untilMark(base.Add(tt.after)); got != tt.want {
			t.Errorf("untilMark(%v after a multiple) = %v, want %v", tt.after, got, tt.want)
		}
	}
}

// readHeader waits for a reply's header together with the piece behind it, and takes a
// refusal or a busy reply, a header with nothing behind it, by itself once fastHeaderWait has passed; either
// way the stream stays in step.
func TestFastReadHeader(t *testing.T) {
	fx := newFixture(t, 2*testPieceLen+100, 64)
	info, err := fx.mi.UnmarshalInfo()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		piece int
		reply []byte // what the server sends
		data  bool
		// late: the server sends once the client most likely waits in the kernel, so that a
		// refusal meets the low-water mark of a whole piece and waits for the deadline.
		late bool
		// split: the server sends the reply's first split bytes at once, the client reads them
		// into its buffer, and the rest comes late, with nothing behind it but the marker.
		split int
	}{
		{"data", 1, append(encodeFastReply(msgFastData, 1, testPieceLen), fx.src[testPieceLen:2*testPieceLen]...), true, false, 0},
		{"data, late", 1, append(encodeFastReply(msgFastData, 1, testPieceLen), fx.src[testPieceLen:2*testPieceLen]...), true, true, 0},
		{"short last piece", 2, append(encodeFastReply(msgFastData, 2, 100), fx.src[2*testPieceLen:]...), true, false, 0},
		{"refusal", 0, encodeFastReply(msgFastRefused, 0, 0), false, false, 0},
		{"refusal, late", 0, encodeFastReply(msgFastRefused, 0, 0), false, true, 0},
		{"busy", 0, encodeFastReply(msgFastBusy, 0, 0), false, false, 0},
		{"busy, late", 0, encodeFastReply(msgFastBusy, 0, 0), false, true, 0},
		{name: "busy, header split", piece: 0, reply: encodeFastReply(msgFastBusy, 0, 0), split: 5},
		{name: "data, header split", piece: 1, reply: append(encodeFastReply(msgFastData, 1, testPieceLen), fx.src[testPieceLen:2*testPieceLen]...),
			data: true, split: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			sent := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					defer c.Close()
					if tt.late {
						time.Sleep(100 * time.Millisecond)
					}
					reply := tt.reply
					if tt.split > 0 {
						if _, err = c.Write(reply[:tt.split]); err == nil {
							time.Sleep(100 * time.Millisecond)
						}
						reply = reply[tt.split:]
					}
					// The reply, then a marker the client must find right after it.
					if err == nil {
						_, err = c.Write(append(slices.Clip(reply), 'M'))
					}
				}
				sent <- err
				if err == nil {
					io.Copy(io.Discard, c) // until the client closes
				}
			}()
			conn, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tor := &Torrent{info: &info, store: newFileStorage(fx.partFile(t, nil), &info, nil)}
			f := &fastFetch{t: tor, conn: conn, br: bufio.NewReaderSize(conn, 4096)}
			if tt.split > 0 {
				if _, err := f.br.Peek(tt.split); err != nil {
					t.Fatal(err)
				}
			}
			// A read that waits for more than the reply holds would wait for good.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			var hdr [fastReplyLen]byte
			if err := f.readHeader(hdr[:], tt.piece); err != nil {
				t.Fatalf("readHeader: %v", err)
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			kind, err := decodeFastReply(hdr[:], tt.piece, tor.store.pieceLength)
			if err != nil || (kind == msgFastData) != tt.data {
				t.Fatalf("header %x: kind %q, %v; want data %t", hdr, kind, err, tt.data)
			}
			rest := make([]byte, len(tt.reply)-fastReplyLen+1)
			if _, err := io.ReadFull(f.br, rest); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rest[:len(rest)-1], tt.reply[fastReplyLen:]) || rest[len(rest)-1] != 'M' {
				t.Error("the bytes after the header are not the piece and the marker")
			}
		})
	}
}

// String returns what was logged so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
