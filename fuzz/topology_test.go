package fuzz

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/topology"
)

// FuzzTopologyParse feeds arbitrary text to topology.Parse. Text that fails must fail with a
// "name:line: " error and no panic; a map that parses must answer Site for arbitrary addresses
// exactly as a slow scan of its entries for the longest matching prefix does, and Closeness and
// RankSeeded must be consistent with each other.
func FuzzTopologyParse(f *testing.F) {
	seeds := []string{
		"10.1.0.0/16 dc1\n10.1.3.0/24 dc1/rack3\n",
		"# comment\n\n10.2.0.0/16 dc2 # trailing\nfd00:1::/48 dc1/rack9\n",
		"0.0.0.0/0 world\n::/0 world6\n",
		"::ffff:10.3.0.0/112 dc3\n10.3.1.0/24 dc3/r1\n",
		"10.1.0.0/33 dc1\n",
		"10.1.5.0/16 dc1\n",
		"10.1.0.0/16 a//b\n",
		"10.1.0.0/16 a\n10.1.0.0/16 b\n",
		"10.1.0.0\n",
	}
	for i, s := range seeds {
		f.Add(s, []byte{10, 1, byte(i), 7, 0xfd, 0, 0, 1})
	}
	f.Fuzz(func(t *testing.T, text string, addrSeed []byte) {
		m, err := topology.Parse(strings.NewReader(text), "fuzz.txt")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.txt:") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		entries := m.Entries()
		addrs := fuzzAddrs(entries, addrSeed)
		for _, a := range addrs {
			if got, want := m.Site(a), slowSite(entries, a); got != want {
				t.Fatalf("Site(%v) = %q, slow scan says %q", a, got, want)
			}
		}
		if len(addrs) == 0 {
			return
		}
		self := addrs[0]
		peers := make([]netip.AddrPort, 0, len(addrs))
		for i, a := range addrs {
			peers = append(peers, netip.AddrPortFrom(a, uint16(i)))
			if c, r := topology.Closeness(m, self, a), topology.Closeness(m, a, self); c != r {
				t.Fatalf("Closeness(%v, %v) = %d but reversed = %d", self, a, c, r)
			}
			if c, s := topology.Closeness(m, self, a), topology.Closeness(m, self, self); c > s {
				t.Fatalf("%v is closer to %v (%d) than to itself (%d)", a, self, c, s)
			}
		}
		topology.RankSeeded(m, self, peers, uint64(len(text)))
		for i := 1; i < len(peers); i++ {
			prev, cur := topology.Closeness(m, self, peers[i-1].Addr()), topology.Closeness(m, self, peers[i].Addr())
			if prev < cur {
				t.Fatalf("RankSeeded put %v (closeness %d) before %v (closeness %d)", peers[i-1], prev, peers[i], cur)
			}
		}
	})
}

// fuzzAddrs returns addresses worth asking about: the first and last address of every entry's
// prefix and their IPv4-mapped forms, plus IPv4 and IPv6 addresses cut from seed.
func fuzzAddrs(entries []topology.Entry, seed []byte) []netip.Addr {
	var out []netip.Addr
	for _, e := range entries {
		first := e.Prefix.Addr()
		last := first.As16()
		bits := e.Prefix.Bits()
		if first.Is4() {
			bits += 96
		}
		for i := bits; i < 128; i++ {
			last[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, first, netip.AddrFrom16(last).Unmap(), netip.AddrFrom16(first.As16()))
	}
	for len(seed) >= 4 {
		out = append(out, netip.AddrFrom4([4]byte(seed[:4])))
		var b [16]byte
		copy(b[:], bytes.Repeat(seed[:4], 4))
		out = append(out, netip.AddrFrom16(b))
		seed = seed[4:]
	}
	if len(out) > 64 {
		out = out[:64]
	}
	return out
}

// slowSite is the definition of Site: the site of the longest prefix that contains a.
func slowSite(entries []topology.Entry, a netip.Addr) string {
	a = a.Unmap()
	best, site := -1, ""
	for _, e := range entries {
		if e.Prefix.Contains(a) && e.Prefix.Bits() > best {
			best, site = e.Prefix.Bits(), e.Site
		}
	}
	return site
}
