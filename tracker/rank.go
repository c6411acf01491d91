package tracker

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"math"
	mathbits "math/bits"
	"net/netip"
	"slices"

	"github.com/pkgsync/pkgsync/topology"
)

// Peer lists are ranked by topology.Closeness: shared site levels × topology.LevelWeight plus the
// leading address bits in common (the package doc gives the rest of the order). This file works
// it out the way topology.RankBy does, but from what the store keeps of each peer, computed once
// when the peer first announces (its site as interned level numbers, a hash of its address),
// instead of looking every candidate's site up again at every announce; and it sorts only the
// peers the answer can hold when the swarm is larger. The records it sorts hold no pointers, so
// that moving them costs the garbage collector nothing. TestRankMatchesTopology checks the two
// against each other.

// sites interns the site names of a topology: each site becomes the list of numbers of its
// leading levels ("dc1/rack3" is the numbers of "dc1" and "dc1/rack3"), so that two sites share
// as many levels as their lists have leading numbers in common. It is built once and only read.
type sites struct {
	topo   *topology.Map
	bySite map[string]*site
}

type site struct{ levels []uint32 }

func newSites(m *topology.Map) *sites {
	ss := &sites{topo: m, bySite: make(map[string]*site)}
	prefixes := make(map[string]uint32)
	for _, e := range m.Entries() {
		if ss.bySite[e.Site] != nil {
			continue
		}
		st := new(site)
		for i := 0; i <= len(e.Site); i++ {
			if i == len(e.Site) || e.Site[i] == '/' {
				n, ok := prefixes[e.Site[:i]]
				if !ok {
					n = uint32(len(prefixes))
					prefixes[e.Site[:i]] = n
				}
				st.levels = append(st.levels, n)
			}
		}
		ss.bySite[e.Site] = st
	}
	return ss
}

// of returns the site of a, or nil.
func (ss *sites) of(a netip.Addr) *site {
	if len(ss.bySite) == 0 {
		return nil
	}
	return ss.bySite[ss.topo.Site(a)]
}

// sharedLevels counts the leading levels two sites have in common; no site shares nothing.
func sharedLevels(a, b *site) int {
	if a == nil || b == nil {
		return 0
	}
	if a == b {
		return len(a.levels)
	}
	n := 0
	for n < len(a.levels) && n < len(b.levels) && a.levels[n] == b.levels[n] {
		n++
	}
	return n
}

// rankKey is what ranking needs of one peer address, worked out once: its site, a hash, and the
// address as the two big-endian halves of its 16-byte form, which scoring compares bit by bit.
type rankKey struct {
	site   *site
	hash   uint64 // of address and port; the asker's seed turns it into the order among equals
	hi, lo uint64
	is4    bool
}

func newRankKey(ss *sites, ap netip.AddrPort) rankKey {
	a := ap.Addr().Unmap().WithZone("")
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return rankKey{site: ss.of(a), hash: mix64(mix64(hi^uint64(ap.Port())) ^ lo), hi: hi, lo: lo, is4: a.Is4()}
}

// cand is a peer in the running for an answer, with its place in the order. It holds no pointer.
type cand struct {
	order uint64 // closeness (descending) and tier, lower first
	tie   uint64 // the order among equals: the peer's hash, then mixed with the asker's seed
	ip    [16]byte
	port  uint16
	is4   bool
	id    [20]byte
}

func (c *cand) addr() netip.AddrPort {
	a := netip.AddrFrom16(c.ip)
	if c.is4 {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, c.port)
}

// asker is what scoring needs of the peer that asks.
type asker struct {
	key   rankKey
	seeds bool
}

func newAsker(ss *sites, ap netip.AddrPort, seeds bool) asker {
	return asker{key: newRankKey(ss, ap), seeds: seeds}
}

// score writes the candidate record of peer p for the asker into c, in place: a swarm's walk
// scores every peer, and a record made and then copied into the list costs as much again.
// Among equally close peers, those of the other role come first (seeders for a leecher,
// leechers for a seeder).
func (a *asker) score(c *cand, p *peer) {
	k := &p.key
	c.tie, c.port, c.is4, c.id = k.hash, p.addr.Port(), k.is4, p.id
	binary.BigEndian.PutUint64(c.ip[:8], k.hi)
	binary.BigEndian.PutUint64(c.ip[8:], k.lo)
	bits := 0
	if k.is4 == a.key.is4 {
		bits = 128
		if x := a.key.hi ^ k.hi; x != 0 {
			bits = mathbits.LeadingZeros64(x)
		} else if x := a.key.lo ^ k.lo; x != 0 {
			bits = 64 + mathbits.LeadingZeros64(x)
		}
		if k.is4 {
			bits -= 96 // the ::ffff: prefix every IPv4 address shares
		}
	}
	s := sharedLevels(a.key.site, k.site)*topology.LevelWeight + bits
	c.order = uint64(math.MaxUint32-uint32(s)) << 1
	if p.seeder() == a.seeds {
		c.order |= 1
	}
}

// rankBuf is the scratch space of ranking, reused across announces.
type rankBuf struct {
	cands []cand   // the candidates, as the store scored them
	keys  []uint64 // what is sorted: see sortKey
	tmp   []uint64 // sortKeys' scratch
	out   []cand   // the answer
}

// Ranking sorts one word per candidate instead of the 56-byte candidates: from the top, 14 bits
// of distance (closeness subtracted from 2^14-1), the tier, the top 29 bits of the tie, and the
// candidate's index. Words sort as plain integers, without a comparison function, and two
// candidates whose words agree but for the index (one pair in 2^29 of equally close peers) are
// put in compareCands order afterwards. Closeness of 2^14 or more (64 site levels) or more than
// 2^20 candidates take a slower path that sorts the candidates themselves.
const (
	idxBits   = 20
	tieBits   = 29
	scoreBits = 64 - 1 - tieBits - idxBits
	maxScore  = 1<<scoreBits - 1
)

func sortKey(c *cand, i int) uint64 {
	far := maxScore - (math.MaxUint32 - c.order>>1) // the score as in asker.score, at most maxScore
	return far<<(64-scoreBits) | (c.order&1)<<(tieBits+idxBits) | c.tie>>(64-tieBits)<<idxBits | uint64(i)
}

// rank orders rb.cands for an asker with the given seed and returns the first limit: closest
// first, then by tier, then in the asker's own order of equals (compareCands). Only the first
// limit are sorted; the rest are only known to come after them.
func (rb *rankBuf) rank(limit int, seed uint64) []cand {
	for i := range rb.cands {
		rb.cands[i].tie = mix64(rb.cands[i].tie ^ seed)
	}
	return rb.first(limit)
}

// first returns the first limit of rb.cands in compareCands order, sorted.
func (rb *rankBuf) first(limit int) []cand {
	cs := rb.cands
	exact := len(cs) <= 1<<idxBits
	for i := range cs {
		if math.MaxUint32-cs[i].order>>1 > maxScore {
			exact = false
		}
	}
	if !exact {
		slices.SortFunc(cs, compareCands)
		return cs[:min(limit, len(cs))]
	}
	keys := rb.keys[:0]
	for i := range cs {
		keys = append(keys, sortKey(&cs[i], i))
	}
	rb.keys = keys
	var rest []uint64 // the keys not taken
	if len(keys) > limit {
		selectFirst(keys, limit)
		keys, rest = keys[:limit], keys[limit:]
	}
	rb.tmp = sortKeys(keys, rb.tmp)
	rb.out = rb.out[:0]
	for _, k := range keys {
		rb.out = append(rb.out, cs[k&(1<<idxBits-1)])
	}
	rb.fixTies(keys, rest)
	return rb.out
}

// sortKeys sorts keys in increasing order, as slices.Sort does, and returns tmp, grown into the
// scratch space it used. More than a few dozen keys are sorted by least-significant-digit radix,
// one byte a pass, skipping a byte that every key has the same: a comparison sort of an answer's
// keys, whose low bits are random ties, branches on every comparison, which a radix pass does not.
func sortKeys(keys, tmp []uint64) []uint64 {
	if len(keys) < 64 {
		slices.Sort(keys)
		return tmp
	}
	tmp = slices.Grow(tmp[:0], len(keys))[:len(keys)]
	src, dst := keys, tmp
	var count [256]int
	for shift := 0; shift < 64; shift += 8 {
		clear(count[:])
		for _, k := range src {
			count[byte(k>>shift)]++
		}
		if count[byte(src[0]>>shift)] == len(src) {
			continue
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range src {
			d := byte(k >> shift)
			dst[count[d]] = k
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
	return tmp
}

// fixTies puts runs of rb.out whose keys agree but for the index in compareCands order. A run at
// the end of the answer may continue among the keys not taken, which then compete for its places.
func (rb *rankBuf) fixTies(keys, rest []uint64) {
	const idxMask = 1<<idxBits - 1
	same := func(a, b uint64) bool { return a&^idxMask == b&^idxMask }
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && same(keys[i], keys[j]) {
			j++
		}
		if j == len(keys) && len(keys) > 0 {
			var more []cand
			for _, k := range rest {
				if same(k, keys[i]) {
					more = append(more, rb.cands[k&idxMask])
				}
			}
			if len(more) > 0 {
				run := append(slices.Clone(rb.out[i:j]), more...)
				slices.SortFunc(run, compareCands)
				copy(rb.out[i:j], run)
				return
			}
		}
		if j-i > 1 {
			slices.SortFunc(rb.out[i:j], compareCands)
		}
		i = j
	}
}

func compareCands(x, y cand) int {
	if c := cmp.Compare(x.order, y.order); c != 0 {
		return c
	}
	if c := cmp.Compare(x.tie, y.tie); c != 0 {
		return c
	}
	// Addresses are unique within a swarm.
	if c := bytes.Compare(x.ip[:], y.ip[:]); c != 0 {
		return c
	}
	return cmp.Compare(x.port, y.port)
}

// selectFirst moves the k smallest of xs to xs[:k], in no particular order (quickselect,
// median-of-three pivots).
func selectFirst(xs []uint64, k int) {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Put the median of lo, mid, hi at hi as the pivot.
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[mid] < xs[hi] {
			xs[mid], xs[hi] = xs[hi], xs[mid]
		}
		pivot, store := xs[hi], lo
		for i := lo; i < hi; i++ {
			if xs[i] < pivot {
				xs[i], xs[store] = xs[store], xs[i]
				store++
			}
		}
		xs[store], xs[hi] = xs[hi], xs[store]
		// xs[store] is in its final place, all before it are smaller.
		switch {
		case store == k-1 || store == k:
			return
		case store > k:
			hi = store - 1
		default:
			lo = store + 1
		}
	}
}

// rankSeed gives each asker of each torrent its own order of equally close peers, the same at
// every announce so that its choice of peers does not churn. It is FNV-1a over the info hash, the
// asker's 16 address bytes and its port.
func rankSeed(infoHash [20]byte, asker netip.AddrPort) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, c := range infoHash {
		h = (h ^ uint64(c)) * prime
	}
	for _, c := range asker.Addr().As16() {
		h = (h ^ uint64(c)) * prime
	}
	h = (h ^ uint64(asker.Port()>>8)) * prime
	return (h ^ uint64(asker.Port()&0xff)) * prime
}

// mix64 is the SplitMix64 finalizer: every input bit moves every output bit.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
