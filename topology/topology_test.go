package topology

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sample = `# data center layout
10.1.0.0/16      dc1
10.1.3.0/24      dc1/rack3    # a rack inside dc1
10.1.4.0/24      dc1/rack4
10.2.0.0/16      dc2

fd00:1::/48      dc1/rack9
::ffff:10.3.0.0/112 dc3
`

func mustParse(t testing.TB, text string) *Map {
	t.Helper()
	m, err := Parse(strings.NewReader(text), "topology.txt")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"prefix too long", "10.0.0.0/8 a\n\n10.1.0.0/33 dc1\n", `topology.txt:3: bad CIDR "10.1.0.0/33"`},
		{"v6 prefix too long", "fd00::/129 a\n", `topology.txt:1: bad CIDR "fd00::/129"`},
		{"no length", "10.1.0.0 dc1\n", `topology.txt:1: bad CIDR "10.1.0.0": no /prefix-length`},
		{"bad address", "10.1.0/16 dc1\n", `topology.txt:1: bad CIDR "10.1.0/16": bad address`},
		{"zone", "fe80::%eth0/64 dc1\n", `topology.txt:1: bad CIDR "fe80::%eth0/64": bad address`},
		{"signed length", "10.0.0.0/+8 dc1\n", `topology.txt:1: bad CIDR "10.0.0.0/+8"`},
		{"host bits", "# c\n10.1.5.0/16 dc1\n", `topology.txt:2: bad CIDR "10.1.5.0/16": bits set past /16 (did you mean 10.1.0.0/16?)`},
		{"short mapped", "::ffff:0:0/80 dc1\n", `topology.txt:1: bad CIDR "::ffff:0:0/80": bits set past /80`},
		{"one field", "10.1.0.0/16\n", `topology.txt:1: want "CIDR site", got 1 fields`},
		{"three fields", "10.1.0.0/16 dc1 extra\n", `topology.txt:1: want "CIDR site", got 3 fields`},
		{"empty level", "10.1.0.0/16 dc1//r\n", `topology.txt:1: bad site "dc1//r": empty level`},
		{"trailing slash", "10.1.0.0/16 dc1/\n", `topology.txt:1: bad site "dc1/": empty level`},
		{"duplicate", "10.1.0.0/16 a\n10.1.0.0/16 b\n", `topology.txt:2: 10.1.0.0/16 is already mapped on line 1`},
		{"duplicate mapped", "10.1.0.0/16 a\n::ffff:10.1.0.0/112 b\n", `topology.txt:2: 10.1.0.0/16 is already mapped on line 1`},
		{"line too long", "10.0.0.0/8 a\n" + strings.Repeat("x", 70000) + "\n", `topology.txt:2: bufio.Scanner: token too long`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(strings.NewReader(tt.text), "topology.txt")
			if err == nil {
				t.Fatalf("Parse succeeded with %d entries, want error %q", len(m.Entries()), tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want prefix %q", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "topology.txt" {
				t.Errorf("error %v is not a *ParseError naming the file", err)
			}
		})
	}
}

func TestParseEntries(t *testing.T) {
	m := mustParse(t, sample)
	want := []Entry{
		{netip.MustParsePrefix("10.1.0.0/16"), "dc1", 2},
		{netip.MustParsePrefix("10.1.3.0/24"), "dc1/rack3", 3},
		{netip.MustParsePrefix("10.1.4.0/24"), "dc1/rack4", 4},
		{netip.MustParsePrefix("10.2.0.0/16"), "dc2", 5},
		{netip.MustParsePrefix("fd00:1::/48"), "dc1/rack9", 7},
		{netip.MustParsePrefix("10.3.0.0/16"), "dc3", 8},
	}
	if got := m.Entries(); !slices.Equal(got, want) {
		t.Errorf("Entries =\n%v\nwant\n%v", got, want)
	}
	empty := mustParse(t, "# nothing\n\n   \n")
	if n := len(empty.Entries()); n != 0 {
		t.Errorf("comment-only file has %d entries", n)
	}
}

func TestSite(t *testing.T) {
	m := mustParse(t, sample+"0.0.0.0/0 world\n")
	tests := []struct {
		addr, want string
	}{
		{"10.1.0.5", "dc1"},
		{"10.1.3.7", "dc1/rack3"},
		{"10.1.4.255", "dc1/rack4"},
		{"10.2.0.9", "dc2"},
		{"10.3.1.1", "dc3"},
		{"::ffff:10.1.3.7", "dc1/rack3"},
		{"192.168.1.1", "world"},
		{"fd00:1::1", "dc1/rack9"},
		{"fd00:1::1%eth0", "dc1/rack9"},
		{"fd00:2::1", ""},
		{"::1", ""},
	}
	for _, tt := range tests {
		if got := m.Site(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Site(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
	var nilMap *Map
	if got := nilMap.Site(netip.MustParseAddr("10.1.0.5")); got != "" {
		t.Errorf("nil Map Site = %q", got)
	}
	if got := m.Site(netip.Addr{}); got != "" {
		t.Errorf("Site(invalid) = %q", got)
	}
}

func TestCommonBits(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"10.1.0.5", "10.1.0.5", 32},
		{"10.1.0.5", "10.1.0.4", 31},
		{"10.1.0.5", "10.2.0.9", 14},
		{"10.1.0.5", "138.1.0.5", 0},
		{"10.1.0.5", "::ffff:10.1.0.4", 31},
		{"10.1.0.5", "fd00::1", 0},
		{"fd00::1", "fd00::1", 128},
		{"fd00::1", "fd00::2", 126},
		{"fd00::1%eth0", "fd00::1", 128},
		{"fd00::1", "7d00::1", 0},
	}
	for _, tt := range tests {
		a, b := netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)
		if got := CommonBits(a, b); got != tt.want {
			t.Errorf("CommonBits(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CommonBits(b, a); got != tt.want {
			t.Errorf("CommonBits(%s, %s) = %d, want %d (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
	if got := CommonBits(netip.Addr{}, netip.Addr{}); got != 0 {
		t.Errorf("CommonBits of invalid addresses = %d", got)
	}
}

func TestCloseness(t *testing.T) {
	m := mustParse(t, sample)
	tests := []struct {
		m    *Map
		a, b string
		want int
	}{
		{m, "10.1.3.1", "10.1.3.2", 2*LevelWeight + 30},      // same rack
		{m, "10.1.3.1", "10.1.4.1", 1*LevelWeight + 21},      // same dc, other rack
		{m, "10.1.3.1", "10.1.0.1", 1*LevelWeight + 22},      // dc1 vs dc1/rack3
		{m, "10.1.3.1", "10.2.0.1", 0*LevelWeight + 14},      // other dc
		{m, "10.1.3.1", "fd00:1::1", 1*LevelWeight + 0},      // dc1 over IPv6
		{m, "10.9.0.1", "10.9.0.2", 30},                      // no site: bits only
		{nil, "10.1.3.1", "10.1.3.2", 30},                    // nil map: bits only
		{nil, "10.1.3.1", "::ffff:10.1.3.1", 32},             // mapped normalised
		{m, "10.1.3.1", "10.1.3.1", 2*LevelWeight + 32},      // itself
		{m, "10.3.0.1", "::ffff:10.3.0.2", LevelWeight + 30}, // mapped range
	}
	for _, tt := range tests {
		a, b := netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)
		if got := Closeness(tt.m, a, b); got != tt.want {
			t.Errorf("Closeness(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Closeness(tt.m, b, a); got != tt.want {
			t.Errorf("Closeness(%s, %s) = %d, want %d (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func addrPorts(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}

func TestRank(t *testing.T) {
	m := mustParse(t, sample)
	tests := []struct {
		name  string
		m     *Map
		self  string
		peers []netip.AddrPort
		want  []netip.AddrPort
	}{
		{
			name: "rack then dc then elsewhere",
			m:    m, self: "10.1.3.1",
			peers: addrPorts("10.2.0.9:1", "10.1.4.2:1", "192.168.0.1:1", "10.1.3.200:1", "[fd00:1::5]:1", "10.1.3.2:1"),
			// rack3 (2 levels) by bits; then dc1 peers: 10.1.4.2 (21 bits) before fd00:1::5 (0 bits);
			// then no shared site: 10.2.0.9 (14 bits) before 192.168.0.1 (0 bits).
			want: addrPorts("10.1.3.2:1", "10.1.3.200:1", "10.1.4.2:1", "[fd00:1::5]:1", "10.2.0.9:1", "192.168.0.1:1"),
		},
		{
			name: "site beats bits",
			m:    mustParse(t, "10.0.0.0/24 a\n10.0.0.128/25 b\n10.200.0.0/16 a\n"),
			self: "10.0.0.1",
			// 10.0.0.129 shares 24 bits but is in site b; 10.200.0.1 shares 8 bits and site a.
			peers: addrPorts("10.0.0.129:1", "10.200.0.1:1"),
			want:  addrPorts("10.200.0.1:1", "10.0.0.129:1"),
		},
		{
			name: "nil map ties by address then port",
			m:    nil, self: "10.1.3.1",
			peers: addrPorts("10.9.0.2:7", "10.9.0.1:9", "10.9.0.1:8", "10.1.3.5:1"),
			want:  addrPorts("10.1.3.5:1", "10.9.0.1:8", "10.9.0.1:9", "10.9.0.2:7"),
		},
		{
			name: "empty", m: m, self: "10.1.3.1",
			peers: addrPorts(), want: addrPorts(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Clone(tt.peers)
			Rank(tt.m, netip.MustParseAddr(tt.self), got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Rank = %v, want %v", got, tt.want)
			}
			// Ranking must not depend on input order.
			rev := slices.Clone(tt.peers)
			slices.Reverse(rev)
			Rank(tt.m, netip.MustParseAddr(tt.self), rev)
			if !slices.Equal(rev, tt.want) {
				t.Errorf("Rank of reversed input = %v, want %v", rev, tt.want)
			}
		})
	}
}

func TestRankSeeded(t *testing.T) {
	m := mustParse(t, sample)
	self := netip.MustParseAddr("10.1.3.1")
	// 1 rack neighbour, then 20 equally close peers (dc2: no shared level, 14 common bits).
	var peers []netip.AddrPort
	for i := range 20 {
		peers = append(peers, netip.MustParseAddrPort(fmt.Sprintf("10.2.%d.1:6881", i)))
	}
	peers = append(peers, netip.MustParseAddrPort("10.1.3.9:6881"))

	orders := make(map[string]bool)
	for seed := range uint64(8) {
		got := slices.Clone(peers)
		RankSeeded(m, self, got, seed)
		if got[0] != netip.MustParseAddrPort("10.1.3.9:6881") {
			t.Fatalf("seed %d: closest peer is %v, want the rack neighbour first", seed, got[0])
		}
		if !slices.Equal(sortedAddrPorts(got), sortedAddrPorts(peers)) {
			t.Fatalf("seed %d: RankSeeded changed the set of peers: %v", seed, got)
		}
		again := slices.Clone(peers)
		slices.Reverse(again)
		RankSeeded(m, self, again, seed)
		if !slices.Equal(got, again) {
			t.Errorf("seed %d: order depends on input order:\n%v\n%v", seed, got, again)
		}
		orders[fmt.Sprint(got)] = true
	}
	// Twenty equal peers give 20! orders; eight seeds landing on fewer than 6 distinct ones would
	// mean the seed is not used.
	if len(orders) < 6 {
		t.Errorf("8 seeds gave only %d distinct orders of equally close peers", len(orders))
	}
}

func TestRankBy(t *testing.T) {
	m := mustParse(t, sample)
	type rec struct {
		ap     netip.AddrPort
		seeder bool
	}
	recs := []rec{
		{netip.MustParseAddrPort("10.1.3.2:1"), false}, // 30 common bits with self, leecher
		{netip.MustParseAddrPort("10.2.0.1:1"), true},  // other dc, seeder
		{netip.MustParseAddrPort("10.1.3.3:1"), true},  // 30 common bits with self, seeder
		{netip.MustParseAddrPort("10.1.3.1:9"), false}, // 32 common bits, leecher
	}
	seedersFirst := func(r rec) int {
		if r.seeder {
			return 0
		}
		return 1
	}
	for seed := range uint64(4) {
		got := slices.Clone(recs)
		RankBy(m, netip.MustParseAddr("10.1.3.1"), got, func(r rec) netip.AddrPort { return r.ap }, seedersFirst, seed)
		// Closeness first (the leecher at 32 bits beats seeders at 30), then the tier.
		want := []rec{recs[3], recs[2], recs[0], recs[1]}
		if !slices.Equal(got, want) {
			t.Errorf("seed %d: RankBy = %v, want %v", seed, got, want)
		}
	}
}

func sortedAddrPorts(s []netip.AddrPort) []netip.AddrPort {
	s = slices.Clone(s)
	slices.SortFunc(s, netip.AddrPort.Compare)
	return s
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "topology.txt")
	if err := os.WriteFile(path, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := m.Site(netip.MustParseAddr("10.2.3.4")); got != "dc2" {
		t.Errorf("Site = %q, want dc2", got)
	}
	if err := os.WriteFile(path, []byte("10.0.0.0/8 a\nbad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Errorf("Load of bad file: error %v, want it to start with %q", err, path+":2: ")
	}
	missing := filepath.Join(dir, "missing.txt")
	if _, err := Load(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load of missing file: error %v, want ErrNotExist naming the path", err)
	}
}

func BenchmarkRank(b *testing.B) {
	var sb strings.Builder
	for i := range 100 {
		fmt.Fprintf(&sb, "10.%d.0.0/16 dc%d\n10.%d.%d.0/24 dc%d/rack%d\n", i, i%4, i, i%8, i%4, i)
	}
	m := mustParse(b, sb.String())
	var peers []netip.AddrPort
	for i := range 1000 {
		peers = append(peers, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i % 100), byte(i % 8), byte(i)}), 6881))
	}
	self := netip.MustParseAddr("10.3.3.1")
	work := make([]netip.AddrPort, len(peers))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, peers)
		RankSeeded(m, self, work, 42)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(peers)), "ns/peer")
}
