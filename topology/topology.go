// Package topology tells how close two hosts of a data center are, so that peers can be ranked
// nearest first.
//
// A topology file (the --topology flag) maps address ranges to site names, one mapping a line:
//
//	# CIDR          site
//	10.1.0.0/16     dc1
//	10.1.3.0/24     dc1/rack3
//	fd00:1::/48     dc2
//
// A site name may have levels separated by "/" ("dc1/rack3"): two hosts are closer the more
// leading levels their sites share. An address takes the site of the longest prefix that holds it,
// and has no site ("") when none does. Text from "#" to the end of a line is a comment, and blank
// lines are skipped.
//
// Closeness scores a pair of addresses: shared site levels count first, then the number of leading
// bits the two addresses have in common, so that without a topology file hosts on the same subnet
// still rank before distant ones. Rank, RankSeeded and RankBy sort peer lists by that score.
//
// The package has its own home because two parts of pkgsync rank peers the same way: the tracker,
// when it hands out peer lists, and the BitTorrent client, when it picks which peers to connect to
// and request from first. Both must agree on what "close" means, and neither should depend on the
// other for it.
package topology

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Entry is one mapping of a topology file.
type Entry struct {
	Prefix netip.Prefix // masked; IPv4 ranges are in IPv4 form even if written as ::ffff:a.b.c.d/n
	Site   string       // site name, levels separated by "/"
	Line   int          // line number in the file, from 1
}

// Map answers which site an address belongs to. The zero Map and a nil *Map have no entries.
// A Map is not changed after Parse returns it, so it may be shared between goroutines.
type Map struct {
	entries []Entry
	sites   map[netip.Prefix]string
	// Distinct prefix lengths present, longest first, per address family, so that a lookup
	// tries at most one map probe per length instead of scanning every entry.
	lens4, lens6 []int
}

// ParseError is an error in a topology file. Its message reads "file:line: what is wrong".
type ParseError struct {
	File string // name given to Parse
	Line int    // line number, from 1
	Err  error  // what is wrong
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

// Load reads the topology file at path.
func Load(path string) (*Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a topology file from r; name is used in error messages. Every line must be blank,
// a comment, or "CIDR site". A CIDR must have no bits set past its prefix length, a site name no
// empty level, and a CIDR may appear only once.
func Parse(r io.Reader, name string) (*Map, error) {
	m := &Map{sites: make(map[netip.Prefix]string)}
	lineOf := make(map[netip.Prefix]int)
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 {
			continue
		}
		fail := func(format string, args ...any) error {
			return &ParseError{File: name, Line: line, Err: fmt.Errorf(format, args...)}
		}
		if len(fields) != 2 {
			return nil, fail("want \"CIDR site\", got %d fields", len(fields))
		}
		p, err := parseCIDR(fields[0])
		if err != nil {
			return nil, &ParseError{File: name, Line: line, Err: err}
		}
		site := fields[1]
		if err := checkSite(site); err != nil {
			return nil, &ParseError{File: name, Line: line, Err: err}
		}
		if prev, dup := lineOf[p]; dup {
			return nil, fail("%v is already mapped on line %d", p, prev)
		}
		lineOf[p] = line
		m.sites[p] = site
		m.entries = append(m.entries, Entry{Prefix: p, Site: site, Line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: name, Line: line + 1, Err: err}
	}
	for p := range m.sites {
		if p.Addr().Is4() {
			m.lens4 = append(m.lens4, p.Bits())
		} else {
			m.lens6 = append(m.lens6, p.Bits())
		}
	}
	for _, l := range []*[]int{&m.lens4, &m.lens6} {
		slices.Sort(*l)
		slices.Reverse(*l)
		*l = slices.Compact(*l)
	}
	return m, nil
}

// parseCIDR parses "addr/bits" strictly: host bits must be zero, so that a typo such as
// 10.1.5.0/16 (meant as /24) is caught rather than silently widened.
func parseCIDR(s string) (netip.Prefix, error) {
	addrStr, bitsStr, ok := strings.Cut(s, "/")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: no /prefix-length", s)
	}
	a, err := netip.ParseAddr(addrStr)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: bad address %q", s, addrStr)
	}
	n, err := strconv.Atoi(bitsStr)
	if err != nil || n < 0 || n > a.BitLen() || bitsStr != strconv.Itoa(n) {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: prefix length %q not in 0-%d", s, bitsStr, a.BitLen())
	}
	p := netip.PrefixFrom(a, n)
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: bits set past /%d (did you mean %v?)", s, n, p.Masked())
	}
	// Addresses are looked up unmapped, so an IPv4-mapped range is stored in IPv4 form. (A
	// masked prefix of an IPv4-mapped address is at least /96 long: the ::ffff: part is all ones.)
	if a.Is4In6() {
		p = netip.PrefixFrom(a.Unmap(), n-96)
	}
	return p, nil
}

func checkSite(site string) error {
	for _, level := range strings.Split(site, "/") {
		if level == "" {
			return fmt.Errorf("bad site %q: empty level", site)
		}
	}
	return nil
}

// Entries returns the mappings in file order.
func (m *Map) Entries() []Entry {
	if m == nil {
		return nil
	}
	return slices.Clone(m.entries)
}

// Site returns the site of the longest prefix holding a, or "" when no prefix does or m is nil.
// An IPv4-mapped IPv6 address is looked up as IPv4; a zone is ignored.
func (m *Map) Site(a netip.Addr) string {
	if m == nil || len(m.sites) == 0 {
		return ""
	}
	a = normalize(a)
	if !a.IsValid() {
		return ""
	}
	lens := m.lens6
	if a.Is4() {
		lens = m.lens4
	}
	for _, n := range lens {
		p, err := a.Prefix(n)
		if err != nil {
			continue
		}
		if s, ok := m.sites[p]; ok {
			return s
		}
	}
	return ""
}

func normalize(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// sharedLevels counts the leading "/"-separated levels two site names have in common; an empty
// site shares nothing.
func sharedLevels(a, b string) int {
	if a == "" || b == "" {
		return 0
	}
	n := 0
	for {
		ha, ra, moreA := strings.Cut(a, "/")
		hb, rb, moreB := strings.Cut(b, "/")
		if ha != hb {
			return n
		}
		n++
		if !moreA || !moreB {
			return n
		}
		a, b = ra, rb
	}
}

// CommonBits returns how many leading bits a and b have in common: 0 to 32 for two IPv4
// addresses, 0 to 128 for two IPv6 ones, and 0 when they are of different families or invalid.
// IPv4-mapped IPv6 addresses count as IPv4.
func CommonBits(a, b netip.Addr) int {
	a, b = normalize(a), normalize(b)
	if !a.IsValid() || !b.IsValid() || a.Is4() != b.Is4() {
		return 0
	}
	x, y := a.As16(), b.As16()
	n := 0
	for i := range x {
		d := x[i] ^ y[i]
		if d != 0 {
			n += bits.LeadingZeros8(d)
			break
		}
		n += 8
	}
	if a.Is4() {
		n -= 96 // As16 of an IPv4 address starts with the 96-bit ::ffff: prefix they share
	}
	return n
}

// LevelWeight is what one shared site level adds to a Closeness score. It is larger than any
// CommonBits result, so site levels always dominate address bits.
const LevelWeight = 256

// Closeness scores how close b is to a; higher is closer. The score is
// shared site levels × LevelWeight + CommonBits(a, b). With a nil Map it is CommonBits alone.
// It is symmetric.
func Closeness(m *Map, a, b netip.Addr) int {
	return closeness(sharedLevels(m.Site(a), m.Site(b)), a, b)
}

func closeness(levels int, a, b netip.Addr) int { return levels*LevelWeight + CommonBits(a, b) }

// Rank sorts peers closest to self first (see Closeness). Equally close peers are ordered by
// address and then port, so the result depends only on the input set.
func Rank(m *Map, self netip.Addr, peers []netip.AddrPort) {
	rank(m, self, peers, identity, nil, false, 0)
}

// RankSeeded sorts peers closest to self first like Rank, but orders equally close peers by a hash
// of seed and the peer's address, so that askers using different seeds (for example a hash of
// their own address) spread their connections over equally good peers instead of all picking the
// same first few. The order is a deterministic function of the seed and the input set.
func RankSeeded(m *Map, self netip.Addr, peers []netip.AddrPort, seed uint64) {
	rank(m, self, peers, identity, nil, true, seed)
}

// RankBy sorts any kind of peer record closest to self first, as RankSeeded does, where addr
// gives a record's address. Among equally close records, a lower tier comes first (tier may be
// nil: one tier), and within a tier the seeded order of RankSeeded applies. The tracker uses the
// tier to put seeders before leechers for a leeching asker.
func RankBy[T any](m *Map, self netip.Addr, items []T, addr func(T) netip.AddrPort, tier func(T) int, seed uint64) {
	rank(m, self, items, addr, tier, true, seed)
}

func identity(ap netip.AddrPort) netip.AddrPort { return ap }

type key struct {
	i     int // index into the input
	ap    netip.AddrPort
	score int
	tier  int
	tie   uint64
}

func rank[T any](m *Map, self netip.Addr, items []T, addr func(T) netip.AddrPort, tier func(T) int, seeded bool, seed uint64) {
	if len(items) < 2 {
		return
	}
	selfSite := m.Site(self)
	keys := make([]key, len(items))
	for i, it := range items {
		ap := addr(it)
		k := key{i: i, ap: ap, score: closeness(sharedLevels(selfSite, m.Site(ap.Addr())), self, ap.Addr())}
		if tier != nil {
			k.tier = tier(it)
		}
		if seeded {
			k.tie = mix(seed, ap)
		}
		keys[i] = k
	}
	slices.SortFunc(keys, func(x, y key) int {
		if c := cmp.Compare(y.score, x.score); c != 0 {
			return c
		}
		if c := cmp.Compare(x.tier, y.tier); c != 0 {
			return c
		}
		if c := cmp.Compare(x.tie, y.tie); c != 0 {
			return c
		}
		if c := x.ap.Compare(y.ap); c != 0 {
			return c
		}
		return cmp.Compare(x.i, y.i)
	})
	sorted := make([]T, len(items))
	for j, k := range keys {
		sorted[j] = items[k.i]
	}
	copy(items, sorted)
}

// mix hashes seed and ap (FNV-1a over the address bytes and port, finished with the SplitMix64
// finalizer so that nearby addresses land far apart).
func mix(seed uint64, ap netip.AddrPort) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037) ^ seed
	b := ap.Addr().As16()
	for _, c := range b {
		h = (h ^ uint64(c)) * prime
	}
	h = (h ^ uint64(ap.Port()>>8)) * prime
	h = (h ^ uint64(ap.Port()&0xff)) * prime
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
