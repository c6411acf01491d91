package report

import (
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/origin"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var t0 = time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)

// ann is a hand-written announce: package pkg ('a', 'b'), peer number n (10.0.0.n:6881) at
// second s.
func ann(pkg byte, n int, s float64, event string, up, down, left int64) Announce {
	a := Announce{Time: t0.Add(time.Duration(s * float64(time.Second))), Event: event,
		Peer:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}), 6881),
		Uploaded: up, Downloaded: down, Left: left}
	a.InfoHash[0] = pkg
	a.PeerID[0], a.PeerID[19] = pkg, byte(n)
	return a
}

func access(s float64, path string, status int, n int64) AccessEntry {
	return AccessEntry{Time: t0.Add(time.Duration(s * float64(time.Second))), Remote: "10.0.0.9:5", Method: "GET",
		Path: path, Status: status, Bytes: n, Range: "-"}
}

// fanout is three nodes fetching 1000 bytes of package a; node 3 never completes. The peers
// downloaded 2400 bytes and uploaded 1400: 1000 came from outside the swarm.
func fanout() []Announce {
	return []Announce{
		ann('a', 1, 0, "started", 0, 0, 1000),
		ann('a', 2, 1, "started", 0, 0, 1000),
		ann('a', 3, 2, "started", 0, 0, 1000),
		ann('a', 1, 10, "completed", 600, 1000, 0),
		ann('a', 2, 21, "", 300, 700, 300),
		ann('a', 2, 31, "completed", 500, 1000, 0),
		ann('a', 3, 40, "", 0, 400, 600),
		ann('a', 1, 60, "stopped", 900, 1000, 0),
	}
}

func TestSummarize(t *testing.T) {
	type peerWant struct {
		addr     string
		done     string // "seed", "no" or the completion time
		up, down float64
	}
	tests := []struct {
		name      string
		announces []Announce
		opt       Options
		// per rollout: "title F size spread origin(from) note"
		want  []string
		peers []peerWant // of the first rollout
	}{
		{
			name: "fan-out, origin from the peers' counters", announces: fanout(),
			want:  []string{"610000000000 F=1000/left nodes=2/3 min=10s med=20s p90=28s max=30s origin=1.00(peers' counters, a lower bound) note="},
			peers: []peerWant{{"10.0.0.1:6881", "10s", 0.9, 1}, {"10.0.0.2:6881", "30s", 0.5, 1}, {"10.0.0.3:6881", "no", 0, 0.4}},
		},
		{
			name:      "the .torrent gives size, name and path; the access log counts the path in the window",
			announces: fanout(), opt: Options{
				Packages: map[[20]byte]Package{{'a'}: {Name: "pkg.tar", Size: 1250, Path: "/pkgs/pkg.tar"}},
				Access: []AccessEntry{
					access(-61, "/pkgs/pkg.tar", 200, 7777), // before the window
					access(-1, "/pkgs/pkg.tar.torrent", 200, 300),
					access(1, "/pkgs/pkg.tar", 206, 500),
					access(2, "/pkgs/pkg.tar", 206, 500),
					access(3, "/pkgs/pkg.tar", 416, 0),
					access(4, "/pkgs/other.tar", 200, 900),
					access(119, "/pkgs/pkg.tar", 200, 250), // within a minute of the end
				}},
			want:  []string{"610000000000 pkg.tar F=1250/torrent nodes=2/3 min=10s med=20s p90=28s max=30s origin=1.00(access log /pkgs/pkg.tar) note="},
			peers: []peerWant{{"10.0.0.1:6881", "10s", 0.72, 0.8}, {"10.0.0.2:6881", "30s", 0.4, 0.8}, {"10.0.0.3:6881", "no", 0, 0.32}},
		},
		{
			name: "two packages in the access log and no .torrent: the peers' counters, and why", announces: fanout(),
			opt: Options{Access: []AccessEntry{access(1, "/b.tar", 200, 500), access(2, "/a.tar", 200, 500)}},
			want: []string{"610000000000 F=1000/left nodes=2/3 min=10s med=20s p90=28s max=30s origin=1.00(peers' counters, a lower bound) " +
				"note=access log: requests for 2 packages (/a.tar, /b.tar); give the package's .torrent with --torrent"},
		},
		{
			name: "stats of one package, named after its path", announces: fanout(),
			opt:  Options{Stats: &origin.Stats{Files: map[string]origin.FileStats{"/a.tar": {BodyBytes: 1200}, "/a.tar.torrent": {BodyBytes: 900}}}},
			want: []string{"610000000000 a.tar F=1000/left nodes=2/3 min=10s med=20s p90=28s max=30s origin=1.20(stats /a.tar) note="},
		},
		{
			name: "a seed, a pause longer than the gap, and a second package",
			announces: []Announce{
				ann('a', 1, 0, "started", 0, 0, 0), // a seed: no completion time
				ann('a', 2, 1, "started", 0, 0, 1000),
				ann('b', 2, 2, "started", 0, 0, 50),
				ann('a', 2, 5, "completed", 0, 1000, 0),
				ann('a', 1, 6, "stopped", 1000, 0, 0),
				ann('a', 3, 1000, "started", 0, 0, 1000), // 16 minutes later
				ann('a', 3, 1004, "completed", 0, 1000, 0),
			},
			opt: Options{Stats: &origin.Stats{Files: map[string]origin.FileStats{"/a.tar": {BodyBytes: 1200}}},
				Packages: map[[20]byte]Package{{'a'}: {Name: "a.tar", Size: 1000, Path: "/a.tar"}}},
			want: []string{
				"610000000000 a.tar, rollout 1 of 2 F=1000/torrent nodes=1/1 min=4s med=4s p90=4s max=4s origin=0.00(peers' counters, a lower bound) note=stats: /a.tar counts all 2 rollouts of the package",
				"620000000000 F=50/left nodes=0/1 min=0s med=0s p90=0s max=0s origin=0.00(peers' counters, a lower bound) note=stats: /a.tar may be another package's, which the log also holds; give the package's .torrent with --torrent",
				"610000000000 a.tar, rollout 2 of 2 F=1000/torrent nodes=1/1 min=4s med=4s p90=4s max=4s origin=1.00(peers' counters, a lower bound) note=stats: /a.tar counts all 2 rollouts of the package",
			},
			peers: []peerWant{{"10.0.0.1:6881", "seed", 1, 0}, {"10.0.0.2:6881", "4s", 0, 1}},
		},
	}
	for _, tt := range tests {
		rs := Summarize(tt.announces, tt.opt)
		var got []string
		for _, r := range rs {
			s := r.Spread
			got = append(got, fmt.Sprintf("%s F=%d/%s nodes=%d/%d min=%v med=%v p90=%v max=%v origin=%.2f(%s) note=%s",
				r.Title(), r.Size, map[bool]string{true: "torrent", false: "left"}[r.SizeExact], s.Done, s.Nodes,
				s.Min, s.Median, s.P90, s.Max, r.Share(r.Origin.Bytes), r.Origin.From, r.Origin.Note))
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			continue
		}
		if tt.peers == nil {
			continue
		}
		r := rs[0]
		if len(r.Peers) != len(tt.peers) {
			t.Errorf("%s: %d peers, want %d", tt.name, len(r.Peers), len(tt.peers))
			continue
		}
		for i, w := range tt.peers {
			p := r.Peers[i]
			done := "no"
			switch {
			case p.Seed:
				done = "seed"
			case p.Done:
				done = p.Took.String()
			}
			if p.Addr.String() != w.addr || done != w.done || math.Abs(r.Share(p.Uploaded)-w.up) > 1e-9 || math.Abs(r.Share(p.Downloaded)-w.down) > 1e-9 {
				t.Errorf("%s: peer %d is %v done=%s up %.2f down %.2f; want %+v", tt.name, i+1, p.Addr, done,
					r.Share(p.Uploaded), r.Share(p.Downloaded), w)
			}
		}
	}
}

func TestQuantile(t *testing.T) {
	s := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Second)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{s(7), 0.5, 7 * time.Second},
		{s(1, 2), 0.5, 1500 * time.Millisecond},
		{s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9100 * time.Millisecond},
		{s(1, 2, 3), 1, 3 * time.Second},
		{s(1, 2, 3), 0, time.Second},
	}
	for _, tt := range tests {
		if got := quantile(tt.in, tt.q); got != tt.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	r := Summarize(fanout(), Options{})[0]
	md := r.Markdown()
	for _, want := range []string{
		"## 610000000000\n",
		"2 of 3 nodes completed. F = 1000 B (1000 bytes, the largest \"left\" announced)",
		"min 10.0 s, median 20.0 s, p90 28.0 s, max 30.0 s",
		"Origin: 1.00 F (peers' counters, a lower bound).",
		"| 0 | origin | – | – | – | 1.00 | – |",
		"| 1 | 10.0.0.1:6881 | +0.00 s | 10.0 s | 1.00 | 0.90 | stopped |",
		"| 3 | 10.0.0.3:6881 | +2.00 s | no (60% left) | 0.40 | 0.00 | (re-announce) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks %q:\n%s", want, md)
		}
	}
}
