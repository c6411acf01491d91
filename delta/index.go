package delta

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/pkgsync/pkgsync/rollsum"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// golden is 2^64 divided by the golden ratio; multiplying by it spreads a key's bits into the
// top bits of the product (Fibonacci hashing), which index the filter and the table. golden2 is
// a second odd multiplier (from MurmurHash3's finaliser) for the filter's second bit.
const (
	golden  = 0x9E3779B97F4A7C15
	golden2 = 0xC2B2AE3D27D4EB4F
)

// filterBitsPerKey sets the filter's density. Each key sets two bits, one per multiplier; with
// 64 bits per key a random window passes the first test (the only one on the per-byte path)
// about once in 32 bytes and both about once in a thousand, so the table lookup stays rare.
// Denser filters measured slower: the first test's branch mispredicts more often.
const filterBitsPerKey = 64

// maxFilterBits bounds the filter at 32 MiB (about four million distinct keys at full density).
const maxFilterBits = 28

// noLone is a lastW value no masked weak sum can equal.
const noLone = 1 << 40

// index is the searchable form of a control file's block table.
//
// A key is what the scan can compute at an offset from rolling sums alone: for SeqMatches 1 the
// masked weak sum of the window, for SeqMatches 2 the masked weak sums of the window and of the
// window after it, packed into 64 bits. A candidate is a target block index rep such that block
// rep (and rep+1 for SeqMatches 2) has that key; candidates with the same groups are kept once.
type index struct {
	bs     int
	n      int   // target blocks
	length int64 // target length
	seq    int   // 1 or 2
	mask   uint32
	csum   int // strong sum bytes kept

	weak   []uint32   // per block, masked
	strong [][16]byte // per block, truncated to csum bytes

	// group numbers blocks with equal weak and strong sums, in order of first appearance.
	group   []int32
	ngroups int

	filter []uint64 // bitset over hashed keys, two bits per key (a Bloom filter with k = 2)
	fshift uint     // 64 - log2(filter bits)

	slots  []int32 // open addressing over keys, -1 when empty
	sshift uint    // 64 - log2(len(slots))
	keys   []uint64
	start  []int32 // candidates of keys[k] are cands[start[k]:start[k+1]]
	cands  []int32

	// lastW is the last block's masked weak sum when SeqMatches is 2 (it has no successor to pair
	// with, so it is also looked for on its own), else noLone.
	lastW uint64
}

// newIndex builds the index of f, which checkFile accepted, keeping at most maxCand candidates
// of distinct content per key.
func newIndex(f *zsyncfile.File, maxCand int) *index {
	n := len(f.Blocks)
	ix := &index{
		bs:     f.Blocksize,
		n:      n,
		length: f.Length,
		seq:    f.SeqMatches,
		mask:   rollsum.Mask(f.RsumBytes),
		csum:   f.ChecksumBytes,
		weak:   make([]uint32, n),
		strong: make([][16]byte, n),
		lastW:  noLone,
	}
	for i, b := range f.Blocks {
		ix.weak[i] = b.Weak & ix.mask
		ix.strong[i] = b.Strong
		clear(ix.strong[i][ix.csum:])
	}
	ix.groupBlocks()

	type entry struct {
		key    uint64
		g0, g1 int32
		rep    int32
	}
	m := n
	if ix.seq == 2 {
		m = n - 1
		ix.lastW = uint64(ix.weak[n-1])
	}
	ents := make([]entry, 0, max(m, 0))
	for i := 0; i < m; i++ {
		e := entry{key: uint64(ix.weak[i]), g0: ix.group[i], g1: -1, rep: int32(i)}
		if ix.seq == 2 {
			e.key = e.key<<32 | uint64(ix.weak[i+1])
			e.g1 = ix.group[i+1]
		}
		ents = append(ents, e)
	}
	slices.SortFunc(ents, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.g0, b.g0), cmp.Compare(a.g1, b.g1), cmp.Compare(a.rep, b.rep))
	})
	for j := 0; j < len(ents); {
		k := j + 1
		for k < len(ents) && ents[k].key == ents[j].key {
			k++
		}
		ix.keys = append(ix.keys, ents[j].key)
		ix.start = append(ix.start, int32(len(ix.cands)))
		kept := 0
		for t := j; t < k && kept < maxCand; t++ {
			if t > j && ents[t].g0 == ents[t-1].g0 && ents[t].g1 == ents[t-1].g1 {
				continue // same content as the candidate before it: one verification covers both
			}
			ix.cands = append(ix.cands, ents[t].rep)
			kept++
		}
		j = k
	}
	ix.start = append(ix.start, int32(len(ix.cands)))

	nkeys := max(len(ix.keys), 1)
	fbits := bits.Len(uint(nkeys*filterBitsPerKey - 1))
	fbits = min(max(fbits, 6), maxFilterBits)
	ix.filter = make([]uint64, 1<<(fbits-6))
	ix.fshift = uint(64 - fbits)
	sbits := bits.Len(uint(2*nkeys - 1))
	ix.slots = make([]int32, 1<<sbits)
	ix.sshift = uint(64 - sbits)
	for s := range ix.slots {
		ix.slots[s] = -1
	}
	smask := uint64(len(ix.slots) - 1)
	for k, key := range ix.keys {
		h := key * golden
		bit := h >> ix.fshift
		ix.filter[bit>>6] |= 1 << (bit & 63)
		bit = key * golden2 >> ix.fshift
		ix.filter[bit>>6] |= 1 << (bit & 63)
		s := h >> ix.sshift
		for ix.slots[s] >= 0 {
			s = (s + 1) & smask
		}
		ix.slots[s] = int32(k)
	}
	return ix
}

// groupBlocks numbers the distinct (weak, strong) pairs with an open-addressing table over block
// indexes, which takes 8 bytes per block instead of a map's several dozen.
func (ix *index) groupBlocks() {
	ix.group = make([]int32, ix.n)
	sbits := bits.Len(uint(2*ix.n - 1))
	slots := make([]int32, 1<<sbits)
	for s := range slots {
		slots[s] = -1
	}
	mask := uint64(len(slots) - 1)
	shift := uint(64 - sbits)
	for i := range ix.n {
		st := &ix.strong[i]
		h := (uint64(ix.weak[i]) ^ binary.LittleEndian.Uint64(st[:8]) ^ binary.LittleEndian.Uint64(st[8:])) * golden
		for s := h >> shift; ; s = (s + 1) & mask {
			j := slots[s]
			if j < 0 {
				slots[s] = int32(i)
				ix.group[i] = int32(ix.ngroups)
				ix.ngroups++
				break
			}
			if ix.weak[j] == ix.weak[i] && ix.strong[j] == *st {
				ix.group[i] = ix.group[j]
				break
			}
		}
	}
}

// lookup returns the candidates with key, or nil.
func (ix *index) lookup(key uint64) []int32 {
	smask := uint64(len(ix.slots) - 1)
	for s := key * golden >> ix.sshift; ; s = (s + 1) & smask {
		k := ix.slots[s]
		if k < 0 {
			return nil
		}
		if ix.keys[k] == key {
			return ix.cands[ix.start[k]:ix.start[k+1]]
		}
	}
}

// weakRun fills w[k] with the masked weak sum of the window d[k:k+bs] for every k < len(w),
// rolling the sum one byte at a time. d must hold len(w)-1+bs bytes.
//
// The scan computes weak sums in a pass of their own, apart from the filter probes of findPair:
// with SeqMatches 2 the second window's sum at x is the first window's sum at x+bs, so one
// rolling sum serves both, and each of the two loops keeps all its state in registers.
func weakRun(d []byte, bs int, mask uint32, w []uint32) {
	if len(w) == 0 {
		return
	}
	a16, b16 := rollsum.Block(d[:bs])
	a, b := uint32(a16), uint32(b16)
	w[0] = (a<<16 | b) & mask
	// Sums wrap mod 2^32 here and are cut to 16 bits when stored: the same values mod 2^16.
	n := uint32(bs)
	out := d[:len(w)-1]
	in := d[bs : bs+len(out)]
	next := w[1:]
	next = next[:len(out)]
	for k := range out {
		o := uint32(out[k])
		a += uint32(in[k]) - o
		b += a - n*o
		next[k] = (a<<16 | b&0xffff) & mask
	}
}

// findPair returns the first position p in [from, to) whose SeqMatches 2 key (w[p], w[p+bs])
// passes the filter, or whose w[p] is the lone last block's, or to. w must hold to-1+bs entries.
func (ix *index) findPair(w []uint32, from, to, bs int) int {
	filter := ix.filter
	fshift := ix.fshift & 63
	lastW := ix.lastW
	first := w[from:to]
	second := w[from+bs : to+bs]
	second = second[:len(first)]
	for j, k0 := range first {
		key := uint64(k0)<<32 | uint64(second[j])
		h := key * golden >> fshift
		if filter[h>>6]&(1<<(h&63)) != 0 {
			h = key * golden2 >> fshift
			if filter[h>>6]&(1<<(h&63)) != 0 {
				return from + j
			}
		}
		if uint64(k0) == lastW {
			return from + j
		}
	}
	return to
}

// findOne is findPair for SeqMatches 1, where the key is w[p] alone.
func (ix *index) findOne(w []uint32, from, to int) int {
	filter := ix.filter
	fshift := ix.fshift & 63
	for j, k0 := range w[from:to] {
		h := uint64(k0) * golden >> fshift
		if filter[h>>6]&(1<<(h&63)) != 0 {
			h = uint64(k0) * golden2 >> fshift
			if filter[h>>6]&(1<<(h&63)) != 0 {
				return from + j
			}
		}
	}
	return to
}
