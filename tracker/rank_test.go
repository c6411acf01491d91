package tracker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"

	"github.com/pkgsync/pkgsync/originplan"
	"github.com/pkgsync/pkgsync/topology"
)

// TestRankMatchesTopology checks rank against topology.RankBy, which the tracker used before it
// kept precomputed keys: for every asker and limit, the answer has the same closeness scores and
// tiers in the same order (equally close peers of one tier may come in another order: each ranks
// them by its own seeded hash).
func TestRankMatchesTopology(t *testing.T) {
	topo, err := topology.Parse(strings.NewReader("10.1.0.0/16 dc1\n10.1.3.0/24 dc1/rack3\n10.1.4.0/24 dc1/rack4\n10.2.0.0/16 dc2\nfd00::/16 dc1/rack3\n"), "topo.txt")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := []string{"10.1.3.%d", "10.1.4.%d", "10.1.9.%d", "10.2.0.%d", "192.168.1.%d", "fd00::%x", "fe80::%x"}
	type peerRec struct {
		ap     netip.AddrPort
		seeder bool
	}
	var peers []peerRec
	for i := range 300 {
		ip := netip.MustParseAddr(fmt.Sprintf(addrs[rng.IntN(len(addrs))], rng.IntN(250)+1))
		ap := netip.AddrPortFrom(ip, uint16(6881+i))
		peers = append(peers, peerRec{ap, rng.IntN(3) == 0})
	}
	for _, m := range []*topology.Map{nil, topo} {
		for _, askerIdx := range []int{0, 7, 42, 299} {
			for _, limit := range []int{0, 1, 5, 50, 299, 400} {
				asker := peers[askerIdx]
				ss := newSites(m)
				a := newAsker(ss, asker.ap, asker.seeder)
				var cs []cand
				var ref []peerRec
				for i, p := range peers {
					if i == askerIdx {
						continue
					}
					left := int64(10)
					if p.seeder {
						left = 0
					}
					var c cand
					a.score(&c, &peer{addr: p.ap, left: left, key: newRankKey(ss, p.ap)})
					cs = append(cs, c)
					ref = append(ref, p)
				}
				tier := func(p peerRec) int {
					if p.seeder == asker.seeder {
						return 1
					}
					return 0
				}
				topology.RankBy(m, asker.ap.Addr(), ref, func(p peerRec) netip.AddrPort { return p.ap }, tier, 1)
				got := (&rankBuf{cands: cs}).rank(limit, rankSeed([20]byte{1}, asker.ap))
				if len(got) != min(limit, len(ref)) {
					t.Fatalf("limit %d: %d peers, want %d", limit, len(got), min(limit, len(ref)))
				}
				byAddr := make(map[netip.AddrPort]peerRec)
				for _, p := range ref {
					byAddr[p.ap] = p
				}
				for i, c := range got {
					g, w := byAddr[c.addr()], ref[i]
					gs, ws := topology.Closeness(m, asker.ap.Addr(), g.ap.Addr()), topology.Closeness(m, asker.ap.Addr(), w.ap.Addr())
					if gs != ws || tier(g) != tier(w) {
						t.Fatalf("topology %v, asker %v, limit %d: place %d is %v (closeness %d, tier %d), topology.RankBy has %v (closeness %d, tier %d)",
							m != nil, asker.ap, limit, i, g.ap, gs, tier(g), w.ap, ws, tier(w))
					}
				}
			}
		}
	}
}

// TestRankFirst checks the word-sorting ranking against a sort of the candidates themselves, with
// ties made to collide in the bits the words keep, closeness too large for them, and limits that
// cut runs of collisions.
func TestRankFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 10, 257} {
		for _, hugeScore := range []bool{false, true} {
			for limit := 0; limit <= n+1; limit += max(1, n/7) {
				cs := make([]cand, n)
				for i := range cs {
					score := uint64(rng.IntN(3))
					if hugeScore && i == n/2 {
						score = 1 << 20
					}
					// Ties from a few values that differ only below the 29 bits kept.
					tie := uint64(rng.IntN(3))<<40 | uint64(rng.IntN(1000))
					cs[i] = cand{order: (math.MaxUint32-score)<<1 | uint64(rng.IntN(2)), tie: tie,
						ip: netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(256)), byte(i)}).As16(), port: uint16(i), is4: true}
				}
				want := slices.Clone(cs)
				slices.SortFunc(want, compareCands)
				got := (&rankBuf{cands: cs}).first(limit)
				if !slices.Equal(got, want[:min(limit, n)]) {
					t.Fatalf("n %d limit %d huge %v:\ngot  %v\nwant %v", n, limit, hugeScore, got, want[:min(limit, n)])
				}
			}
		}
	}
}

// TestSortKeys checks sortKeys against slices.Sort on key sets of every size around its switch to
// radix passes, with bytes that all keys share (skipped passes) and bytes that vary.
func TestSortKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var tmp []uint64
	for _, n := range []int{0, 1, 2, 63, 64, 65, 99, 200, 257, 1000} {
		for _, mask := range []uint64{math.MaxUint64, 0xff00ff00ff00ff00, 0x00ffff0000000fff, 0xff, 1 << 63} {
			keys := make([]uint64, n)
			for i := range keys {
				keys[i] = rng.Uint64()&mask | 0x1234000000000000&^mask
			}
			want := slices.Clone(keys)
			slices.Sort(want)
			tmp = sortKeys(keys, tmp)
			if !slices.Equal(keys, want) {
				t.Fatalf("n %d mask %#x: got %x, want %x", n, mask, keys, want)
			}
		}
	}
}

// TestAnnounceEncoding checks the hand-written compact answer against bencode's encoding of the
// same announceResponse.
func TestAnnounceEncoding(t *testing.T) {
	v4a := netip.MustParseAddrPort("10.0.0.1:6881")
	v4b := netip.MustParseAddrPort("10.0.0.2:1")
	v6 := netip.MustParseAddrPort("[fd00::2]:65535")
	roles := []*originplan.Role{nil, {Slot: -1, Fetchers: []originplan.PeerID{{}}}, {Slot: 1, Fetchers: []originplan.PeerID{{1, 2}, {3}, {}, {'e', ':'}}}}
	for i, peers := range [][]netip.AddrPort{nil, {v4a}, {v4a, v6, v4b}, {v6}, nil, {v4a, v6}} {
		res := announced{seeders: 3, leechers: 12345}
		if r := roles[i%len(roles)]; r != nil {
			res.coordinated, res.role = true, *r
		}
		want := announceResponse{Interval: 30, Complete: 3, Incomplete: 12345, Pkgsync: newRoleReply(&res)}
		var v4, v6 []byte
		for _, p := range peers {
			res.peers = append(res.peers, cand{ip: p.Addr().As16(), port: p.Port(), is4: p.Addr().Is4()})
			if p.Addr().Is4() {
				v4 = appendCompact(v4, p)
			} else {
				v6 = appendCompact(v6, p)
			}
		}
		want.Peers, want.Peers6 = v4, v6
		if want.Peers == nil {
			want.Peers = []byte{}
		}
		wb, err := bencode.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendAnnounce(nil, 30, res); !bytes.Equal(got, wb) {
			t.Errorf("peers %v, role %+v: answer\n%q\nwant (bencode.Marshal)\n%q", peers, roles[i%len(roles)], got, wb)
		}
	}
}

// announceLog is an announce log line as encoding/json writes it; logAnnounce must write the
// same bytes.
type announceLog struct {
	Time       string `json:"time"`
	InfoHash   string `json:"info_hash"`
	PeerID     string `json:"peer_id"`
	Peer       string `json:"peer"`
	Remote     string `json:"remote"`
	Event      string `json:"event"`
	Uploaded   int64  `json:"uploaded"`
	Downloaded int64  `json:"downloaded"`
	Left       int64  `json:"left"`
	NumWant    int32  `json:"numwant"`
	Peers      int    `json:"peers"`
}

func TestLogLineMatchesJSON(t *testing.T) {
	now := time.Date(2026, 11, 24, 23, 49, 2, 123456000, time.UTC)
	for _, tt := range []struct{ remote, peer, event string }{
		{"127.0.0.1:5123", "10.1.0.5:6881", "started"},
		{"[::1]:80", "[fd00::1]:6881", ""},
		{"odd \"<remote>\" & \x01 é", "10.1.0.5:1", "completed"},
	} {
		var log syncBuffer
		tr := New(Options{Log: &log, Now: func() time.Time { return now }})
		a := announceRequest{addr: netip.MustParseAddrPort(tt.peer), event: tt.event}
		a.req.InfoHash, a.req.PeerId = ihOf("ih"), peerIDOf("p")
		a.req.Uploaded, a.req.Downloaded, a.req.Left, a.req.NumWant = 1, 2, -1, 50
		tr.logAnnounce(&a, tt.remote, 7)
		tr.Close()
		var want bytes.Buffer
		json.NewEncoder(&want).Encode(announceLog{
			Time: "2026-11-24T23:49:02.123456Z", InfoHash: fmt.Sprintf("%x", a.req.InfoHash), PeerID: fmt.Sprintf("%x", a.req.PeerId),
			Peer: tt.peer, Remote: tt.remote, Event: tt.event, Uploaded: 1, Downloaded: 2, Left: -1, NumWant: 50, Peers: 7,
		})
		if log.String() != want.String() {
			t.Errorf("log line\n%s\nwant (encoding/json)\n%s", log.String(), want.String())
		}
	}
}

// appendCompact appends the compact form of ap: the address's 4 or 16 bytes, then the port,
// big-endian.
func appendCompact(b []byte, ap netip.AddrPort) []byte {
	if a := ap.Addr(); a.Is4() {
		a4 := a.As4()
		b = append(b, a4[:]...)
	} else {
		a16 := a.As16()
		b = append(b, a16[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}
