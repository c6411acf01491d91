package tracker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	anacrolixTracker "github.com/anacrolix/torrent/tracker"
	httpTracker "github.com/anacrolix/torrent/tracker/http"
	"github.com/anacrolix/torrent/types/infohash"

	"github.com/pkgsync/pkgsync/originplan"
	"github.com/pkgsync/pkgsync/topology"
)

// fakeClock is an injectable clock that only moves when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a log sink safe to read while the tracker writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	tr    *Tracker
	srv   *httptest.Server
	clock *fakeClock
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{clock: &fakeClock{now: time.Date(2026, 11, 24, 23, 49, 2, 0, time.UTC)}}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	e.tr = New(opts)
	e.srv = httptest.NewServer(e.tr.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		e.tr.Close()
	})
	return e
}

func ihOf(s string) (ih [20]byte) {
	copy(ih[:], s)
	return ih
}

// peerIDOf makes a distinct 20-byte peer_id for each name.
func peerIDOf(name string) (id [20]byte) {
	sum := sha1.Sum([]byte(name))
	copy(id[:], "-PS0001-"+hex.EncodeToString(sum[:6]))
	return id
}

// clientAnnounce announces through anacrolix/torrent's tracker client, claiming the address ip
// (which is only a string in the announce: nothing is ever sent to it).
type clientAnnounce struct {
	ih    [20]byte
	ip    string
	port  uint16
	left  int64
	event anacrolixTracker.AnnounceEvent
	id    string // peer id suffix; defaults to ip:port
}

func (e *env) announce(t *testing.T, a clientAnnounce) anacrolixTracker.AnnounceResponse {
	t.Helper()
	if a.id == "" {
		a.id = fmt.Sprintf("%s:%d", a.ip, a.port)
	}
	ann := anacrolixTracker.Announce{
		TrackerUrl: e.srv.URL + "/announce",
		Request: anacrolixTracker.AnnounceRequest{
			InfoHash: a.ih,
			PeerId:   peerIDOf(a.id),
			Left:     a.left,
			Event:    a.event,
			NumWant:  -1,
			Port:     a.port,
		},
		Context: context.Background(),
	}
	if a.ip != "" {
		ip := net.ParseIP(a.ip)
		if ip.To4() != nil {
			ann.ClientIp4 = krpc.NodeAddr{IP: ip}
		} else {
			ann.ClientIp6 = krpc.NodeAddr{IP: ip}
		}
	}
	resp, err := ann.Do()
	if err != nil {
		t.Fatalf("announce %+v: %v", a, err)
	}
	return resp
}

func peerAddrs(resp anacrolixTracker.AnnounceResponse) []string {
	var out []string
	for _, p := range resp.Peers {
		ap, _ := p.ToNetipAddrPort()
		out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String())
	}
	return out
}

// rawGet requests path?query and decodes the bencoded dictionary answered.
func (e *env) rawGet(t *testing.T, path string, q url.Values) map[string]any {
	t.Helper()
	return e.rawGetQuery(t, path, q.Encode())
}

func (e *env) rawGetQuery(t *testing.T, path, rawQuery string) map[string]any {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path + "?" + rawQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s?%s: %s: %q", path, rawQuery, resp.Status, body)
	}
	var d map[string]any
	if err := bencode.Unmarshal(body, &d); err != nil {
		t.Fatalf("GET %s?%s: answer %q is not a bencoded dictionary: %v", path, rawQuery, body, err)
	}
	return d
}

func announceQuery(ih [20]byte, id string, port int, extra ...string) url.Values {
	q := url.Values{}
	q.Set("info_hash", string(ih[:]))
	pid := peerIDOf(id)
	q.Set("peer_id", string(pid[:]))
	q.Set("port", strconv.Itoa(port))
	q.Set("uploaded", "0")
	q.Set("downloaded", "0")
	q.Set("left", "100")
	q.Set("compact", "1")
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q
}

func TestAnnounceWithAnacrolixClient(t *testing.T) {
	e := newEnv(t, Options{})
	ih := ihOf("torrent-a")
	first := e.announce(t, clientAnnounce{ih: ih, ip: "10.1.0.5", port: 6881, left: 1000, event: anacrolixTracker.Started})
	if len(first.Peers) != 0 {
		t.Errorf("first announce got peers %v, want none", peerAddrs(first))
	}
	if first.Interval != 30 {
		t.Errorf("interval = %d, want the 30 s default", first.Interval)
	}
	second := e.announce(t, clientAnnounce{ih: ih, ip: "10.2.0.9", port: 6882, left: 0, event: anacrolixTracker.Started})
	if got := peerAddrs(second); !slices.Equal(got, []string{"10.1.0.5:6881"}) {
		t.Errorf("second announce got peers %v, want [10.1.0.5:6881]", got)
	}
	if second.Seeders != 1 || second.Leechers != 1 {
		t.Errorf("seeders/leechers = %d/%d, want 1/1", second.Seeders, second.Leechers)
	}
	v6 := e.announce(t, clientAnnounce{ih: ih, ip: "fd00:1::7", port: 6883, left: 5})
	if got := peerAddrs(v6); len(got) != 2 {
		t.Errorf("IPv6 asker got peers %v, want the two IPv4 peers", got)
	}
	again := e.announce(t, clientAnnounce{ih: ih, ip: "10.1.0.5", port: 6881, left: 1000})
	if got := peerAddrs(again); !slices.Contains(got, "[fd00:1::7]:6883") || !slices.Contains(got, "10.2.0.9:6882") || len(got) != 2 {
		t.Errorf("re-announce got peers %v, want the IPv4 seeder and the IPv6 peer", got)
	}
	peers := e.tr.Peers(ih)
	if len(peers) != 3 {
		t.Fatalf("Peers = %+v, want 3", peers)
	}
	// Ordered by address: 10.1.0.5, 10.2.0.9, fd00:1::7.
	if p := peers[0]; p.Addr.String() != "10.1.0.5:6881" || p.Left != 1000 || p.Seeder() || p.ID != peerIDOf("10.1.0.5:6881") {
		t.Errorf("Peers[0] = %+v", p)
	}
	if p := peers[1]; !p.Seeder() {
		t.Errorf("Peers[1] = %+v, want a seeder", p)
	}
}

func TestCompactLists(t *testing.T) {
	e := newEnv(t, Options{})
	ih := ihOf("compact")
	e.rawGet(t, "/announce", announceQuery(ih, "a", 1001, "ip", "10.0.0.1", "left", "0"))
	e.rawGet(t, "/announce", announceQuery(ih, "b", 1002, "ip", "fd00::2"))
	e.rawGet(t, "/announce", announceQuery(ih, "c", 1003, "ip", "::ffff:10.0.0.3")) // stored as IPv4

	d := e.rawGet(t, "/announce", announceQuery(ih, "asker", 1004, "ip", "10.0.0.4"))
	for _, k := range []string{"failure reason", "tracker id"} {
		if _, ok := d[k]; ok {
			t.Errorf("successful answer has key %q: %v", k, d)
		}
	}
	if d["interval"] != int64(30) || d["complete"] != int64(1) || d["incomplete"] != int64(3) {
		t.Errorf("interval/complete/incomplete = %v/%v/%v, want 30/1/3", d["interval"], d["complete"], d["incomplete"])
	}
	peers, _ := d["peers"].(string)
	peers6, _ := d["peers6"].(string)
	var got []string
	for b := []byte(peers); len(b) >= 6; b = b[6:] {
		got = append(got, netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:6])).String())
	}
	if len(peers)%6 != 0 || !slices.Equal(got, []string{"10.0.0.1:1001", "10.0.0.3:1003"}) {
		t.Errorf("peers = %x (%v), want 10.0.0.1:1001 then 10.0.0.3:1003 in 6-byte entries", peers, got)
	}
	if len(peers6) != 18 || netip.AddrPortFrom(netip.AddrFrom16([16]byte([]byte(peers6[:16]))), binary.BigEndian.Uint16([]byte(peers6[16:]))).String() != "[fd00::2]:1002" {
		t.Errorf("peers6 = %x, want one 18-byte entry for [fd00::2]:1002", peers6)
	}

	// compact=0 gives the BEP 3 list of dictionaries; no_peer_id=1 leaves the ids out.
	d = e.rawGet(t, "/announce", announceQuery(ih, "asker", 1004, "ip", "10.0.0.4", "compact", "0"))
	list, ok := d["peers"].([]any)
	if !ok || len(list) != 3 {
		t.Fatalf("compact=0 peers = %v, want a list of 3", d["peers"])
	}
	first := list[0].(map[string]any)
	wantID := peerIDOf("a")
	if first["ip"] != "10.0.0.1" || first["port"] != int64(1001) || first["peer id"] != string(wantID[:]) {
		t.Errorf("compact=0 first peer = %v", first)
	}
	d = e.rawGet(t, "/announce", announceQuery(ih, "asker", 1004, "ip", "10.0.0.4", "compact", "0", "no_peer_id", "1"))
	for _, p := range d["peers"].([]any) {
		if _, ok := p.(map[string]any)["peer id"]; ok {
			t.Errorf("no_peer_id=1 answer has a peer id: %v", p)
		}
	}
}

func TestRemoteAddress(t *testing.T) {
	e := newEnv(t, Options{})
	ih := ihOf("remote")
	e.rawGet(t, "/announce", announceQuery(ih, "a", 7000))
	peers := e.tr.Peers(ih)
	if len(peers) != 1 || peers[0].Addr != netip.MustParseAddrPort("127.0.0.1:7000") {
		t.Errorf("Peers = %+v, want the connection's address 127.0.0.1 with the announced port", peers)
	}
}

func TestRanking(t *testing.T) {
	topo, err := topology.Parse(strings.NewReader("10.1.0.0/16 dc1\n10.1.3.0/24 dc1/rack3\n10.2.0.0/16 dc2\n"), "topo.txt")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{Topology: topo})
	ih := ihOf("ranked")
	for _, p := range []struct {
		ip   string
		left int64
	}{
		{"10.2.0.9", 0},   // other dc, seeder
		{"10.1.4.5", 10},  // same dc
		{"10.1.3.2", 10},  // same rack, 30 common bits with 10.1.3.1, leecher
		{"10.1.3.3", 0},   // same rack, 30 common bits with 10.1.3.1, seeder
		{"10.1.3.129", 0}, // same rack, 24 common bits
		{"192.168.7.7", 10},
	} {
		e.announce(t, clientAnnounce{ih: ih, ip: p.ip, port: 6881, left: p.left})
	}
	tests := []struct {
		name string
		left int64
		want []string
	}{
		{"leecher gets seeders first among equals", 10, []string{"10.1.3.3:6881", "10.1.3.2:6881", "10.1.3.129:6881", "10.1.4.5:6881", "10.2.0.9:6881", "192.168.7.7:6881"}},
		{"seeder gets leechers first among equals", 0, []string{"10.1.3.2:6881", "10.1.3.3:6881", "10.1.3.129:6881", "10.1.4.5:6881", "10.2.0.9:6881", "192.168.7.7:6881"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.announce(t, clientAnnounce{ih: ih, ip: "10.1.3.1", port: 6881, left: tt.left})
			if got := peerAddrs(resp); !slices.Equal(got, tt.want) {
				t.Errorf("peers =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestRankingShufflesEqualPeersPerAsker(t *testing.T) {
	e := newEnv(t, Options{})
	ih := ihOf("shuffle")
	for port := range uint16(30) {
		e.announce(t, clientAnnounce{ih: ih, ip: "10.9.0.1", port: 7000 + port, left: 10})
	}
	// orderFor announces as ip and returns the order it got of the 30 equally close peers (other
	// askers are closer and come first; they are left out).
	orderFor := func(ip string) string {
		var equal []string
		for _, a := range peerAddrs(e.announce(t, clientAnnounce{ih: ih, ip: ip, port: 6881, left: 10})) {
			if strings.HasPrefix(a, "10.9.0.1:") {
				equal = append(equal, a)
			}
		}
		if len(equal) != 30 {
			t.Fatalf("%s got %d of the 30 equally close peers", ip, len(equal))
		}
		return strings.Join(equal, " ")
	}
	a1, b, a2 := orderFor("10.1.0.1"), orderFor("10.1.0.2"), orderFor("10.1.0.1")
	if a1 != a2 {
		t.Errorf("the same asker got two orders:\n%s\n%s", a1, a2)
	}
	if a1 == b {
		t.Errorf("two askers got the same order of 30 equally close peers:\n%s", a1)
	}
}

func TestAskerNeverListed(t *testing.T) {
	e := newEnv(t, Options{})
	ih := ihOf("self")
	e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.1", port: 6881, left: 10, id: "moving"})
	e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.9", port: 6881, left: 10})
	// The same peer_id from a new address: its old entry is not handed back to it.
	resp := e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.2", port: 6881, left: 10, id: "moving"})
	if got := peerAddrs(resp); !slices.Equal(got, []string{"10.0.0.9:6881"}) {
		t.Errorf("peers = %v, want only 10.0.0.9:6881", got)
	}
}

func TestNumWant(t *testing.T) {
	e := newEnv(t, Options{MaxPeers: 5})
	ih := ihOf("numwant")
	for i := range 10 {
		e.rawGet(t, "/announce", announceQuery(ih, strconv.Itoa(i), 6881, "ip", fmt.Sprintf("10.0.0.%d", i+1)))
	}
	tests := []struct {
		numwant string
		want    int
	}{
		{"", 5}, {"2", 2}, {"100", 5}, {"0", 0}, {"-1", 5},
	}
	for _, tt := range tests {
		q := announceQuery(ih, "asker", 6881, "ip", "10.0.1.1")
		if tt.numwant != "" {
			q.Set("numwant", tt.numwant)
		}
		d := e.rawGet(t, "/announce", q)
		if n := len(d["peers"].(string)) / 6; n != tt.want {
			t.Errorf("numwant=%q: got %d peers, want %d", tt.numwant, n, tt.want)
		}
	}
}

func TestExpiry(t *testing.T) {
	e := newEnv(t, Options{Interval: 10 * time.Second}) // PeerTTL defaults to 30 s
	ih := ihOf("expiry")
	e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.1", port: 1, left: 10})
	e.clock.Advance(20 * time.Second)
	e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.2", port: 2, left: 10})
	e.clock.Advance(10*time.Second - time.Nanosecond) // 10.0.0.1 silent for just under 30 s
	if n := len(e.tr.Peers(ih)); n != 2 {
		t.Fatalf("before the TTL: %d peers, want 2", n)
	}
	e.clock.Advance(time.Nanosecond) // 10.0.0.1 silent for 30 s
	resp := e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.3", port: 3, left: 10})
	if got := peerAddrs(resp); !slices.Equal(got, []string{"10.0.0.2:2"}) {
		t.Errorf("after the TTL: peers %v, want only 10.0.0.2:2", got)
	}
	if resp.Leechers != 2 {
		t.Errorf("after the TTL: %d leechers counted, want 2", resp.Leechers)
	}

	// The periodic sweep drops torrents nobody asks about again.
	other := ihOf("forgotten")
	e.announce(t, clientAnnounce{ih: other, ip: "10.0.0.1", port: 1, left: 10})
	e.clock.Advance(time.Minute)
	e.tr.store.sweep()
	e.tr.store.mu.Lock()
	_, kept := e.tr.store.swarms[other]
	n := len(e.tr.store.swarms)
	e.tr.store.mu.Unlock()
	if kept || n != 0 {
		t.Errorf("after a sweep past every TTL: %d torrents kept (forgotten one kept: %v), want 0", n, kept)
	}
}

func TestStoppedEvent(t *testing.T) {
	e := newEnv(t, Options{})
	ih := ihOf("stopped")
	e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.1", port: 1, left: 10})
	e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.2", port: 2, left: 10, event: anacrolixTracker.Started})
	resp := e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.2", port: 2, left: 10, event: anacrolixTracker.Stopped})
	if len(resp.Peers) != 0 {
		t.Errorf("stopped announce got peers %v, want none", peerAddrs(resp))
	}
	peers := e.tr.Peers(ih)
	if len(peers) != 1 || peers[0].Addr.String() != "10.0.0.1:1" {
		t.Errorf("after stopped: Peers = %+v, want only 10.0.0.1:1", peers)
	}
	resp = e.announce(t, clientAnnounce{ih: ih, ip: "10.0.0.3", port: 3, left: 10})
	if got := peerAddrs(resp); !slices.Equal(got, []string{"10.0.0.1:1"}) {
		t.Errorf("after stopped: a new peer got %v, want only 10.0.0.1:1", got)
	}
}

func TestScrape(t *testing.T) {
	e := newEnv(t, Options{AllowInfoHash: func(ih [20]byte) bool { return ih != ihOf("secret") }})
	a, b, none := ihOf("scrape-a"), ihOf("scrape-b"), ihOf("never-seen")
	e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.1", port: 1, left: 0})                                    // seeder from the start: no completion
	e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.2", port: 2, left: 0, event: anacrolixTracker.Completed}) // completion by event
	e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.3", port: 3, left: 50})
	e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.4", port: 4, left: 50})
	e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.4", port: 4, left: 0}) // completion by left reaching 0
	e.announce(t, clientAnnounce{ih: a, ip: "10.0.0.4", port: 4, left: 0, event: anacrolixTracker.Completed})
	e.announce(t, clientAnnounce{ih: b, ip: "10.0.0.5", port: 5, left: 9})

	u, err := url.Parse(e.srv.URL + "/announce")
	if err != nil {
		t.Fatal(err)
	}
	cl := httpTracker.NewClient(u, httpTracker.NewClientOpts{})
	defer cl.Close()
	got, err := cl.Scrape(context.Background(), []infohash.T{a, b, none})
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	want := []struct{ complete, downloaded, incomplete int32 }{{3, 2, 1}, {0, 0, 1}, {0, 0, 0}}
	for i, w := range want {
		if g := got[i]; g.Seeders != w.complete || g.Completed != w.downloaded || g.Leechers != w.incomplete {
			t.Errorf("scrape[%d] = %+v, want complete %d downloaded %d incomplete %d", i, g, w.complete, w.downloaded, w.incomplete)
		}
	}

	// Completions outlive the peers; a scrape without info_hash lists every known torrent.
	for _, p := range []int{1, 2, 3, 4} {
		q := announceQuery(a, fmt.Sprintf("10.0.0.%d:%d", p, p), p, "ip", fmt.Sprintf("10.0.0.%d", p), "event", "stopped")
		e.rawGet(t, "/announce", q)
	}
	all := e.rawGet(t, "/scrape", url.Values{})
	files, _ := all["files"].(map[string]any)
	if len(files) != 2 {
		t.Fatalf("full scrape files = %v, want torrents a and b", files)
	}
	secret := ihOf("secret")
	if d := e.rawGet(t, "/scrape", url.Values{"info_hash": {string(secret[:])}}); len(d["files"].(map[string]any)) != 0 {
		t.Errorf("scrape of a torrent not served = %v, want no files", d)
	}
	fa, _ := files[string(a[:])].(map[string]any)
	if fa["complete"] != int64(0) || fa["downloaded"] != int64(2) || fa["incomplete"] != int64(0) {
		t.Errorf("full scrape of emptied torrent a = %v, want complete 0 downloaded 2 incomplete 0", fa)
	}
}

func TestLogLines(t *testing.T) {
	var log syncBuffer
	e := newEnv(t, Options{Log: &log})
	ih := ihOf("logged")
	q := announceQuery(ih, "x", 6881, "ip", "10.1.0.5", "event", "started", "uploaded", "11", "downloaded", "22", "left", "33")
	e.rawGet(t, "/announce", q)
	q.Del("port")
	e.rawGet(t, "/announce", q)

	e.tr.flushLog()
	sc := bufio.NewScanner(strings.NewReader(log.String()))
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2:\n%s", len(lines), log.String())
	}
	pid := peerIDOf("x")
	want := map[string]any{
		"time": "2026-11-24T23:49:02Z", "info_hash": hex.EncodeToString(ih[:]), "peer_id": hex.EncodeToString(pid[:]),
		"peer": "10.1.0.5:6881", "event": "started", "uploaded": 11.0, "downloaded": 22.0, "left": 33.0,
		"numwant": -1.0, "peers": 0.0,
	}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("announce log %q = %v, want %v", k, lines[0][k], v)
		}
	}
	if r, _ := lines[0]["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
		t.Errorf("announce log remote = %q, want the connection's address", r)
	}
	if lines[1]["failure"] != `bad port ""` || lines[1]["info_hash"] != hex.EncodeToString(ih[:]) || lines[1]["path"] != "/announce" {
		t.Errorf("failure log line = %v", lines[1])
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, Options{AllowInfoHash: func(ih [20]byte) bool { return ih != ihOf("secret") }})
	ih := ihOf("bad")
	good := announceQuery(ih, "x", 6881)
	with := func(k, v string) string {
		q := announceQuery(ih, "x", 6881)
		q.Set(k, v)
		return q.Encode()
	}
	without := func(k string) string {
		q := announceQuery(ih, "x", 6881)
		q.Del(k)
		return q.Encode()
	}
	tests := []struct {
		name, path, query, want string
	}{
		{"missing info_hash", "/announce", without("info_hash"), "missing info_hash"},
		{"short info_hash", "/announce", with("info_hash", "abc"), "info_hash is 3 bytes, want 20"},
		{"missing peer_id", "/announce", without("peer_id"), "missing peer_id"},
		{"long peer_id", "/announce", with("peer_id", strings.Repeat("p", 21)), "peer_id is 21 bytes, want 20"},
		{"missing port", "/announce", without("port"), `bad port ""`},
		{"port 0", "/announce", with("port", "0"), `bad port "0"`},
		{"port too big", "/announce", with("port", "70000"), `bad port "70000"`},
		{"port not a number", "/announce", with("port", "http"), `bad port "http"`},
		{"unknown event", "/announce", with("event", "exploded"), `unknown event "exploded"`},
		{"negative left", "/announce", with("left", "-5"), `bad left "-5"`},
		{"bad uploaded", "/announce", with("uploaded", "lots"), `bad uploaded "lots"`},
		{"bad numwant", "/announce", with("numwant", "many"), `bad numwant "many"`},
		{"bad ip", "/announce", with("ip", "host.example"), `bad ip "host.example"`},
		{"unspecified ip", "/announce", with("ip", "0.0.0.0"), `bad ip 0.0.0.0: not a peer address`},
		{"bad escape", "/announce", good.Encode() + "&x=%zz", "bad query"},
		{"not served", "/announce", announceQuery(ihOf("secret"), "x", 6881).Encode(), "is not served by this tracker"},
		{"scrape short info_hash", "/scrape", "info_hash=abc", "info_hash is 3 bytes, want 20"},
		{"scrape bad escape", "/scrape", "info_hash=%", "bad query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.rawGetQuery(t, tt.path, tt.query)
			reason, _ := d["failure reason"].(string)
			if !strings.Contains(reason, tt.want) || len(d) != 1 {
				t.Errorf("answer %v, want only a failure reason containing %q", d, tt.want)
			}
		})
	}
	if n := len(e.tr.Peers(ih)); n != 0 {
		t.Errorf("refused announces left %d peers", n)
	}
	// The anacrolix client reports the failure reason as an error.
	_, err := anacrolixTracker.Announce{
		TrackerUrl: e.srv.URL + "/announce",
		Request:    anacrolixTracker.AnnounceRequest{InfoHash: ihOf("secret"), Port: 1},
	}.Do()
	if err == nil || !strings.Contains(err.Error(), "is not served by this tracker") {
		t.Errorf("anacrolix client error = %v, want the failure reason", err)
	}
}

func TestClose(t *testing.T) {
	tr := New(Options{})
	tr.Close()
	tr.Close() // twice is fine
	// The handler still answers after Close.
	rec := httptest.NewRecorder()
	tr.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/announce?"+announceQuery(ihOf("c"), "x", 1).Encode(), nil))
	var d map[string]any
	if err := bencode.Unmarshal(rec.Body.Bytes(), &d); err != nil || d["interval"] != int64(30) {
		t.Errorf("answer after Close = %q (%v)", rec.Body.Bytes(), err)
	}
}

// FuzzAnnounceQuery checks that no query makes the handler panic or answer anything but a
// bencoded dictionary (origin roles included).
func FuzzAnnounceQuery(f *testing.F) {
	f.Add("/announce", announceQuery(ihOf("f"), "x", 6881, "ip", "10.0.0.1").Encode())
	f.Add("/announce", "info_hash=%00%01&peer_id=x&port=-1&numwant=99999999999")
	f.Add("/scrape", "info_hash=aaaaaaaaaaaaaaaaaaaa&info_hash=b")
	f.Add("/scrape", "")
	tr := New(Options{MaxPeers: 3, OriginFetchers: 2})
	defer tr.Close()
	h := tr.Handler()
	f.Fuzz(func(t *testing.T, path, query string) {
		if path != "/scrape" {
			path = "/announce"
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path, req.URL.RawQuery = path, query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var d map[string]any
		if err := bencode.Unmarshal(rec.Body.Bytes(), &d); err != nil {
			t.Fatalf("answer to %s?%s is not a bencoded dictionary: %q: %v", path, query, rec.Body.Bytes(), err)
		}
	})
}

// discardResponse is a ResponseWriter that keeps nothing, so that a benchmark of the handler
// measures the handler.
type discardResponse struct{ h http.Header }

func (w *discardResponse) Header() http.Header         { return w.h }
func (w *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardResponse) WriteHeader(int)             {}

// BenchmarkAnnounce measures the announce handler alone (no network, requests made beforehand) in
// swarms of 100, 1,000 and 10,000 peers placed in 16 data centers of 8 racks, handing out no
// origin roles and originplan.DefaultFetchers slots (the command's default).
func BenchmarkAnnounce(b *testing.B) {
	var sb strings.Builder
	for i := range 16 {
		fmt.Fprintf(&sb, "10.%d.0.0/16 dc%d\n", i, i%2)
		for r := range 8 {
			fmt.Fprintf(&sb, "10.%d.%d.0/24 dc%d/rack%d\n", i, r, i%2, r)
		}
	}
	topo, err := topology.Parse(strings.NewReader(sb.String()), "bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ swarm, fetchers int }{
		{100, 0}, {100, originplan.DefaultFetchers}, {1000, 0}, {1000, originplan.DefaultFetchers},
		{10000, 0}, {10000, originplan.DefaultFetchers},
	} {
		swarm := c.swarm
		b.Run(fmt.Sprintf("peers=%d/fetchers=%d", swarm, c.fetchers), func(b *testing.B) {
			tr := New(Options{Topology: topo, OriginFetchers: c.fetchers})
			defer tr.Close()
			h := tr.Handler()
			ih := ihOf("bench")
			reqs := make([]*http.Request, swarm)
			for i := range reqs {
				q := announceQuery(ih, strconv.Itoa(i), 6881, "ip", fmt.Sprintf("10.%d.%d.%d", i%16, i/16%8, i/128%250+1))
				reqs[i] = httptest.NewRequest("GET", "/announce?"+q.Encode(), nil)
				h.ServeHTTP(httptest.NewRecorder(), reqs[i])
			}
			w := &discardResponse{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h.ServeHTTP(w, reqs[i%swarm])
				i++
			}
		})
	}
}
