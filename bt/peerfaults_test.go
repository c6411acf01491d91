package bt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	pp "github.com/anacrolix/torrent/peer_protocol"
)

// The peer and tracker rows of the fault suite (issue 22): real sockets on loopback, real
// pkgsync nodes or hand-written peers that speak the wire protocol, and each row checks the
// outcome: the exact file, and the liar banned. Timing enters only as hang guards and as the
// short StallTimeout that lets the origin take what a bad peer holds back.

// faultIPs are the loopback addresses of these tests, one per role, so that a ban hits only
// the liar.
func faultIPs(t testing.TB, n int) []string {
	t.Helper()
	var ips []string
	for i := range n {
		ips = append(ips, fmt.Sprintf("127.0.22.%d", 1+i))
	}
	needLoopbacks(t, ips...)
	return ips
}

// liarFile is a copy of the source with every byte altered: a peer that serves it sends
// nothing but wrong blocks, over plain BitTorrent and pkgsync_range alike.
func (fx *fixture) liarFile(t testing.TB) *os.File {
	t.Helper()
	lies := slices.Clone(fx.src)
	for i := range lies {
		lies[i] ^= 0x3c
	}
	return writeTemp(t, "lies.bin", lies, true)
}

// downloadPastLiar runs tor's download on dl, whose one peer so far is the liar: once dl bans
// the liar (bannedBy: the library's bans for BitTorrent, this package's for the fast path), it
// hands dl the good peer, and the download must then succeed.
func downloadPastLiar(t *testing.T, dl *Node, tor *Torrent, liar, good *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tor.Download(ctx) }()
	waitFor(t, "the liar banned", func() bool { return slices.Contains(bannedBy(dl), liar.Addr().Addr().String()) })
	tor.addPeers([]netip.AddrPort{good.Addr()}, torrent.PeerSourceDirect)
	if err := <-done; err != nil {
		dumpNodes(t)
		t.Fatalf("Download: %v", err)
	}
}

// bannedBy returns the addresses n has banned.
func bannedBy(n *Node) []string {
	return n.bannedIPs()
}

// faultyNode is a downloading node's config for these rows: the origin takes pieces that
// peers claim once peers have completed nothing for a short while.
func faultyNode(c *Config) {
	c.StallTimeout = 500 * time.Millisecond
}

// logBuffer keeps a node's log lines (passing them on to testLogger's writer, if any).
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := testLogWriter(); w != nil {
		_, _ = w.Write(p)
	}
	return l.b.Write(p)
}

// logger returns a logger writing to l, text as pkgsync update -v writes it.
func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, nil))
}

// banLogged reports whether the log has the line by which -v shows that ip was banned.
func (l *logBuffer) banLogged(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, `msg="bt: banned peer"`) && strings.Contains(line, " peer="+ip+" ") {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds; the deadline is a hang guard only.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !cond(); {
		if time.Now().After(deadline) {
			dumpNodes(t)
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawMode is how a rawPeer misbehaves.
type rawMode int

const (
	// rawSilent accepts connections and never sends a byte.
	rawSilent rawMode = iota
	// rawClaimer says it has every piece and unchokes, and never answers a request.
	rawClaimer
	// rawRangeLiar says it has every piece and speaks pkgsync_range, answering every range
	// request with wrong bytes; it never unchokes, so plain BitTorrent gets nothing from it.
	rawRangeLiar
)

// rawPeer is a hand-written peer on a real socket: the handshake, the extended handshake,
// a bitfield and the messages of its mode, written with the library's wire codec.
type rawPeer struct {
	mode rawMode
	fx   *fixture
	ln   net.Listener

	conns, requests, rangeRequests atomic.Int64

	wg     sync.WaitGroup
	mu     sync.Mutex
	open   []net.Conn
	closed bool
}

// rawRangeID is the number the rawPeer gives pkgsync_range in its extended handshake.
const rawRangeID pp.ExtensionNumber = 1

func startRawPeer(t *testing.T, ip string, fx *fixture, mode rawMode) *rawPeer {
	t.Helper()
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	rp := &rawPeer{mode: mode, fx: fx, ln: ln}
	rp.wg.Add(1)
	go rp.accept()
	t.Cleanup(func() {
		ln.Close()
		rp.mu.Lock()
		rp.closed = true
		for _, c := range rp.open {
			c.Close()
		}
		rp.mu.Unlock()
		rp.wg.Wait()
	})
	return rp
}

func (rp *rawPeer) addr() netip.AddrPort {
	return netip.MustParseAddrPort(rp.ln.Addr().String())
}

func (rp *rawPeer) accept() {
	defer rp.wg.Done()
	for {
		c, err := rp.ln.Accept()
		if err != nil {
			return
		}
		rp.mu.Lock()
		if rp.closed {
			rp.mu.Unlock()
			c.Close()
			return
		}
		rp.open = append(rp.open, c)
		rp.wg.Add(1)
		rp.mu.Unlock()
		rp.conns.Add(1)
		go func() {
			defer rp.wg.Done()
			defer c.Close()
			rp.serve(c)
		}()
	}
}

func (rp *rawPeer) serve(c net.Conn) {
	if rp.mode == rawSilent {
		_, _ = io.Copy(io.Discard, c)
		return
	}
	fx := rp.fx
	var id [20]byte
	copy(id[:], "-RAW001-")
	_, _ = rand.Read(id[8:])
	var bits pp.PeerExtensionBits
	bits.SetBit(pp.ExtensionBitLtep, true)
	ih := fx.mi.HashInfoBytes()
	res, err := pp.Handshake(context.Background(), c, &ih, id, bits)
	if err != nil || res.Hash != ih {
		return
	}
	send := func(m pp.Message) error {
		b, err := m.MarshalBinary()
		if err != nil {
			return err
		}
		_, err = c.Write(b)
		return err
	}
	ext := pp.ExtendedHandshakeMessage{M: map[pp.ExtensionName]pp.ExtensionNumber{}, V: "raw fault peer"}
	if rp.mode == rawRangeLiar {
		ext.M[rangeExtension] = rawRangeID
	}
	hs, err := bencode.Marshal(ext)
	if err != nil {
		return
	}
	all := make([]bool, fx.num)
	for i := range all {
		all[i] = true
	}
	msgs := []pp.Message{
		{Type: pp.Extended, ExtendedID: pp.HandshakeExtendedID, ExtendedPayload: hs},
		{Type: pp.Bitfield, Bitfield: all},
	}
	if rp.mode == rawClaimer {
		msgs = append(msgs, pp.Message{Type: pp.Unchoke})
	}
	for _, m := range msgs {
		if send(m) != nil {
			return
		}
	}
	d := pp.Decoder{
		R:         bufio.NewReader(c),
		MaxLength: 1 << 20,
		Pool:      &sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }},
	}
	pieceLen := func(p int) int64 {
		_, n := fx.pieceRange(p)
		return n
	}
	var theirRange pp.ExtensionNumber
	for {
		var m pp.Message
		if err := d.Decode(&m); err != nil {
			return
		}
		switch {
		case m.Keepalive:
		case m.Type == pp.Request:
			rp.requests.Add(1)
		case m.Type == pp.Extended && m.ExtendedID == pp.HandshakeExtendedID:
			var h pp.ExtendedHandshakeMessage
			if bencode.Unmarshal(m.ExtendedPayload, &h) == nil {
				theirRange = h.M[rangeExtension]
			}
		case m.Type == pp.Extended && m.ExtendedID == rawRangeID && rp.mode == rawRangeLiar && theirRange != 0:
			q, err := decodeRange(m.ExtendedPayload, fx.num, pieceLen)
			if err != nil || q.kind != msgRangeRequest {
				continue
			}
			rp.rangeRequests.Add(1)
			off, _ := fx.pieceRange(q.piece)
			data := slices.Clone(fx.src[off+q.off : off+q.off+q.length])
			for i := range data {
				data[i] ^= 0x5a
			}
			reply := encodeRange(rangeMsg{kind: msgRangeData, id: q.id, piece: q.piece, off: q.off, data: data})
			if send(pp.Message{Type: pp.Extended, ExtendedID: theirRange, ExtendedPayload: reply}) != nil {
				return
			}
		}
	}
}

// A bad peer cannot spoil an update or hold it: each time the update ends with the exact
// file, the origin taking what the bad peer holds back, and a peer that sent wrong bytes
// is banned.
func TestPeerFaults(t *testing.T) {
	t.Run("corrupt blocks", func(t *testing.T) {
		// A pkgsync node whose disk returns wrong bytes for every block it serves.
		ips := faultIPs(t, 2)
		fx := newFixture(t, 2<<20+500, 50)
		lies, part := fx.liarFile(t), fx.partFile(t, nil)
		liar := startNode(t, ips[0], nil)
		addPkg(t, liar, Package{MetaInfo: fx.mi, Data: lies, Have: fx.all()})
		var logs logBuffer
		dl := startNode(t, ips[1], func(c *Config) { faultyNode(c); c.Logger = logs.logger() })
		var o origin
		tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Origin: o.fetch(fx, part, false),
			Peers: []netip.AddrPort{liar.Addr()}})
		// The library asks the liar for pieces from the moment the package is added. Once a
		// block of it is taken, the liar is banned however the piece ends: alone in a piece
		// that fails, or by the smart ban when the piece passes with other bytes.
		waitFor(t, "a block from the liar", func() bool { return tor.Stats().BytesFromPeers > 0 })
		download(t, tor)
		checkData(t, part, fx.src)
		if b := bannedBy(dl); !slices.Contains(b, ips[0]) {
			t.Errorf("banned %v, want the liar %s", b, ips[0])
		}
		// The line comes once the banned connection is closed, which follows the ban.
		waitFor(t, "the ban in the log", func() bool { return logs.banLogged(ips[0]) })
		t.Logf("stats: %+v", tor.Stats())
	})

	t.Run("corrupt ranges", func(t *testing.T) {
		// A peer that speaks pkgsync_range and answers with wrong bytes. It keeps plain
		// BitTorrent choked: whatever bans it, bans it for its ranges.
		ips := faultIPs(t, 2)
		fx := newFixture(t, 2<<20, 51)
		have, missing, total, partial := fx.oldVersion(t, 51)
		liar := startRawPeer(t, ips[0], fx, rawRangeLiar)
		part := fx.oldFile(t, missing)
		// A long PeerWait: the origin waits for the liar to connect and say what it has.
		var logs logBuffer
		dl := startNode(t, ips[1], func(c *Config) { faultyNode(c); c.PeerWait = testTimeout / 2; c.Logger = logs.logger() })
		var o origin
		tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Have: have, Missing: missing,
			Origin: o.fetch(fx, part, false), Peers: []netip.AddrPort{liar.addr()}})
		download(t, tor)
		checkData(t, part, fx.src)
		st := tor.Stats()
		t.Logf("missing %d bytes in %d partial pieces; the liar got %d range requests; stats %+v",
			total, partial, liar.rangeRequests.Load(), st)
		if liar.rangeRequests.Load() == 0 {
			t.Fatal("the liar was never asked for a range")
		}
		if b := bannedBy(dl); !slices.Contains(b, ips[0]) {
			t.Errorf("banned %v, want the range liar %s", b, ips[0])
		}
		if !logs.banLogged(ips[0]) {
			t.Errorf("no ban of %s in the log:\n%s", ips[0], logs.b.String())
		}
	})

	t.Run("claims pieces it does not have", func(t *testing.T) {
		// Its bitfield says every piece, it unchokes, and it never sends one.
		ips := faultIPs(t, 2)
		fx := newFixture(t, 2<<20, 52)
		claimer := startRawPeer(t, ips[0], fx, rawClaimer)
		part := fx.partFile(t, nil)
		dl := startNode(t, ips[1], faultyNode)
		var o origin
		tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Origin: o.fetch(fx, part, false),
			Peers: []netip.AddrPort{claimer.addr()}})
		// The library asks the claimer for pieces as soon as it hears its bitfield.
		waitFor(t, "a request to the claimer", func() bool { return claimer.requests.Load() > 0 })
		download(t, tor)
		checkData(t, part, fx.src)
		st := tor.Stats()
		t.Logf("the claimer got %d requests; stats %+v", claimer.requests.Load(), st)
		if st.BytesFromOrigin != int64(len(fx.src)) {
			t.Errorf("%d bytes from the origin, want the whole %d: nobody else has them", st.BytesFromOrigin, len(fx.src))
		}
	})

	t.Run("accepts and sends nothing", func(t *testing.T) {
		ips := faultIPs(t, 2)
		fx := newFixture(t, 2<<20, 53)
		silent := startRawPeer(t, ips[0], fx, rawSilent)
		part := fx.partFile(t, nil)
		dl := startNode(t, ips[1], faultyNode)
		var o origin
		tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Origin: o.fetch(fx, part, false),
			Peers: []netip.AddrPort{silent.addr()}})
		waitFor(t, "a connection to the silent peer", func() bool { return silent.conns.Load() > 0 })
		download(t, tor)
		checkData(t, part, fx.src)
		if st := tor.Stats(); st.BytesFromOrigin != int64(len(fx.src)) {
			t.Errorf("%d bytes from the origin, want the whole %d", st.BytesFromOrigin, len(fx.src))
		}
	})
}

// One of four peers corrupts every block it sends (issue 22's check): the other three end
// with the exact file, each bans it, no node fetches a piece from the origin twice, and the
// origin sends less than 1.5x the missing bytes. That last bound is issue 22's acceptance
// check; it has a wide margin (1.000x in every run seen, also on a loaded machine), unlike
// the efficiency figures that swarmbench measures.
func TestSwarmWithCorruptPeer(t *testing.T) {
	ips := faultIPs(t, 4)
	fx := newFixture(t, 8<<20, 54)
	have := make([]bool, fx.num)
	var missing int64
	for i := range have {
		have[i] = i%4 == 0 // what the old version gave every node
		if !have[i] {
			_, n := fx.pieceRange(i)
			missing += n
		}
	}
	liar := startNode(t, ips[0], nil)
	addPkg(t, liar, Package{MetaInfo: fx.mi, Data: fx.liarFile(t), Have: fx.all()})
	var ns []*Node
	for _, ip := range ips[1:] {
		ns = append(ns, startNode(t, ip, faultyNode))
	}
	var o origin
	var parts []*os.File
	var tors []*Torrent
	for i, n := range ns {
		peers := []netip.AddrPort{liar.Addr()}
		for j, m := range ns {
			if j != i {
				peers = append(peers, m.Addr())
			}
		}
		part := fx.partFile(t, have)
		parts = append(parts, part)
		tors = append(tors, addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Have: have,
			Origin: o.fetch(fx, part, false), Peers: peers}))
	}
	// The honest nodes have only the old version's pieces, which they all have: what they
	// take before downloading is the liar's.
	for i, tor := range tors {
		waitFor(t, fmt.Sprintf("a block from the liar at node %d", i), func() bool { return tor.Stats().BytesFromPeers > 0 })
	}
	downloadAll(t, tors)
	for i, n := range ns {
		checkData(t, parts[i], fx.src)
		b := bannedBy(n)
		if !slices.Contains(b, ips[0]) {
			t.Errorf("node %d banned %v, want the liar %s", i, b, ips[0])
		}
		for _, ip := range ips[1:] {
			if slices.Contains(b, ip) {
				t.Errorf("node %d banned the honest node %s", i, ip)
			}
		}
		st := tors[i].Stats()
		t.Logf("node %d: %d bytes from the origin, %d from peers", i, st.BytesFromOrigin, st.BytesFromPeers)
	}
	ratio := float64(o.bytes.Load()) / float64(missing)
	t.Logf("origin sent %d bytes = %.3fx the %d missing", o.bytes.Load(), ratio, missing)
	if ratio >= 1.5 {
		t.Errorf("origin sent %.2fx the missing bytes with a corrupt peer, want below 1.5x", ratio)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for p, calls := range o.perPieceCalls {
		if have[p] || calls > len(ns) {
			t.Errorf("piece %d (had: %t) fetched from the origin %d times by %d nodes", p, have[p], calls, len(ns))
		}
	}
}

// faultTracker answers announces like fakeTracker until it turns bad, and from then on
// answers in its bad way. Bad answers to the port watched are counted.
type faultTracker struct {
	fakeTracker
	bad   atomic.Bool
	mode  string // "down" (the connection is dropped), "garbage", "failure", "panic" or "huge"
	watch atomic.Int32
	// hugeSent is the most bytes one "huge" answer got into the connection before the node
	// stopped reading it.
	hugeSent atomic.Int64
	// badToWatched is closed after the first bad answer to the watched port.
	badToWatched chan struct{}
	once         sync.Once
}

func newFaultTracker(mode string) *faultTracker {
	return &faultTracker{mode: mode, badToWatched: make(chan struct{})}
}

func (ft *faultTracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !ft.bad.Load() {
		// fakeTracker's answer, asking for the next announce as soon as the client allows
		// (minAnnounceInterval), so that a download sees the tracker go bad.
		rec := httptest.NewRecorder()
		ft.fakeTracker.ServeHTTP(rec, r)
		var ans map[string]any
		if err := bencode.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ans["interval"] = 1
		b, _ := bencode.Marshal(ans)
		w.Write(b)
		return
	}
	if p := ft.watch.Load(); p != 0 && r.URL.Query().Get("port") == fmt.Sprint(p) {
		defer ft.once.Do(func() { close(ft.badToWatched) })
	}
	switch ft.mode {
	case "down":
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	case "garbage":
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body>502 Bad Gateway</body></html>\n")
	case "failure":
		b, _ := bencode.Marshal(map[string]any{"failure reason": "torrent not registered"})
		w.Write(b)
	case "huge":
		// A reply that never ends: the node must stop reading it (maxTrackerReply).
		fmt.Fprintf(w, "d8:intervali30e5:peers%d:", 1<<40)
		chunk := make([]byte, 64<<10)
		var sent int64
		defer func() {
			for old := ft.hugeSent.Load(); sent > old && !ft.hugeSent.CompareAndSwap(old, sent); old = ft.hugeSent.Load() {
			}
		}()
		for sent < 64<<20 {
			n, err := w.Write(chunk)
			sent += int64(n)
			if err != nil {
				return
			}
		}
	case "panic":
		// A peer list whose entry is no dictionary: anacrolix/torrent v1.59.1's decoder
		// (tracker/http Peer.FromDictInterface) panics on it (fuzz.FuzzTrackerReply).
		io.WriteString(w, "d8:intervali30e5:peersli0eee")
	}
}

// A tracker that is down or answers garbage, at the start or in the middle of a download,
// costs nothing but its answers: the peers known so far and the origin carry on.
func TestTrackerFaults(t *testing.T) {
	for _, mode := range []string{"down", "garbage", "failure", "panic", "huge"} {
		t.Run(mode+" at start", func(t *testing.T) {
			ips := faultIPs(t, 2)
			ft := newFaultTracker(mode)
			ft.bad.Store(true)
			srv := httptest.NewServer(ft)
			defer srv.Close()
			url := srv.URL + "/announce"
			if mode == "down" {
				// Nothing listens there any more: connections are refused.
				srv.Close()
			}
			fx := newFixture(t, 2<<20, 55, url)
			// The seeder lacks every fourth piece: those only the origin has.
			seedHave := make([]bool, fx.num)
			lacks := 0
			for i := range seedHave {
				seedHave[i] = i%4 != 3
				if !seedHave[i] {
					lacks++
				}
			}
			seeder := startNode(t, ips[0], nil)
			addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: seedHave})
			part := fx.partFile(t, nil)
			dl := startNode(t, ips[1], faultyNode)
			var o origin
			tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Origin: o.fetch(fx, part, false),
				Peers: []netip.AddrPort{seeder.Addr()}})
			download(t, tor)
			checkData(t, part, fx.src)
			st := tor.Stats()
			t.Logf("stats: %+v", st)
			if st.OriginRequests < int64(lacks) {
				t.Errorf("%d origin requests, want at least the %d pieces the seeder lacks", st.OriginRequests, lacks)
			}
			if tor.TrackerAnswered() {
				t.Errorf("TrackerAnswered is true, but the tracker never answered")
			}
			// The node stops reading an endless reply at maxTrackerReply; what the socket
			// buffers take beyond it is a few MiB at most.
			if got := ft.hugeSent.Load(); got > 2*maxTrackerReply+(8<<20) {
				t.Errorf("the tracker got %d bytes of one reply into the connection; the node reads at most %d", got, maxTrackerReply)
			}
		})
		t.Run(mode+" mid-run", func(t *testing.T) {
			ips := faultIPs(t, 2)
			ft := newFaultTracker(mode)
			srv := httptest.NewServer(ft)
			defer srv.Close()
			fx := newFixture(t, 2<<20, 56, srv.URL+"/announce")
			seedHave := make([]bool, fx.num)
			for i := range seedHave {
				seedHave[i] = i%4 != 3
			}
			seeder := startNode(t, ips[0], nil)
			addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: seedHave})
			waitFor(t, "the seeder's first announce", func() bool { return ft.sawEvent(seeder.Addr().String() + " started") })
			part := fx.partFile(t, nil)
			dl := startNode(t, ips[1], faultyNode)
			ft.watch.Store(int32(dl.Addr().Port()))
			var o origin
			fetch := o.fetch(fx, part, false)
			// The origin holds its pieces until the tracker has failed this node once: the
			// download cannot end before the tracker goes bad under it.
			held := func(ctx context.Context, i int) (int64, error) {
				select {
				case <-ft.badToWatched:
				case <-ctx.Done():
					return 0, ctx.Err()
				}
				return fetch(ctx, i)
			}
			// The seeder is known only from the tracker's first answer.
			tor := addPkg(t, dl, Package{MetaInfo: fx.mi, Data: part, Origin: held})
			waitFor(t, "the seeder known from the tracker", func() bool { return slices.Contains(tor.KnownPeers(), seeder.Addr()) })
			ft.bad.Store(true)
			download(t, tor)
			checkData(t, part, fx.src)
			st := tor.Stats()
			t.Logf("stats: %+v", st)
			if !slices.Contains(tor.KnownPeers(), seeder.Addr()) {
				t.Errorf("the seeder was forgotten after the tracker went bad: known %v", tor.KnownPeers())
			}
		})
	}
}

// A peer the library banned for a bad piece stays out: it cannot connect again from its
// address, whichever form of the address the library keyed the ban by.
func TestBannedPeerStaysOut(t *testing.T) {
	ips := faultIPs(t, 2)
	fx := newFixture(t, 1<<20, 57)
	liar := startNode(t, ips[0], nil)
	addPkg(t, liar, Package{MetaInfo: fx.mi, Data: fx.liarFile(t), Have: fx.all()})
	// No origin and no other peer: every piece comes from the liar alone and fails, so the
	// library bans it for a bad piece of its own, never by the smart ban.
	v := startNode(t, ips[1], nil)
	addPkg(t, v, Package{MetaInfo: fx.mi, Data: fx.partFile(t, nil), Peers: []netip.AddrPort{liar.Addr()}})
	waitFor(t, "the ban", func() bool { _, ok := v.bans.Lookup(net.ParseIP(ips[0])); return ok })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ips[0])}, Timeout: testTimeout}
	c, err := d.Dial("tcp4", v.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	var id [20]byte
	copy(id[:], "-RAW001-comesback")
	ih := fx.mi.HashInfoBytes()
	if _, err := pp.Handshake(context.Background(), c, &ih, id, pp.PeerExtensionBits{}); err == nil {
		t.Errorf("the banned peer %s connected again (banned: %v)", ips[0], v.cl.BadPeerIPs())
	}
}
