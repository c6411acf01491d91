package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pkgsync/pkgsync/rollsum"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// configs are the worker layouts every scan case runs under: one worker over whole chunks, and
// several workers over chunks of odd sizes so that chunk boundaries fall everywhere; and one
// speculative scan, which on these random cases (no weak-sum collisions) must find the same.
func configs(bs int) []Options {
	return []Options{
		{Workers: 1},
		{Workers: 3, chunk: 1000},
		{Workers: 2, chunk: int64(3*bs + 1)},
		{Workers: 2, chunk: int64(5*bs + 3), Speculate: true},
	}
}

// blocksOf cuts data into bs-sized blocks (the last may be short).
func blocksOf(data []byte, bs int) [][]byte {
	var out [][]byte
	for off := 0; off < len(data); off += bs {
		out = append(out, data[off:min(off+bs, len(data))])
	}
	return out
}

func TestScan(t *testing.T) {
	t40k := randBytes(1, 40000) // 312.5 blocks of 128
	t25k := randBytes(2, 25600) // 100 blocks of 256
	edited := cat(t40k[:1001], randBytes(3, 3), t40k[1001:7777], randBytes(4, 555), t40k[7777:20001], t40k[20334:])
	shrunk := cat(t40k[:4099], t40k[4100:13001], t40k[13300:39999])
	a, b, c := t40k[:10007], t40k[10007:19008], t40k[19008:]
	zeros := func(n int) []byte { return make([]byte, n) }
	withZeros := cat(randBytes(5, 3001), zeros(5*128+13), randBytes(6, 4000), zeros(9*128), randBytes(7, 2222), zeros(300))
	x := randBytes(8, 128)
	r := blocksOf(randBytes(9, 20*128), 128)
	repeated := cat(r[0], x, r[1], r[2], x, x, r[3], r[4], x, r[5], r[6], x)
	r1, r2 := randBytes(22, 7001), randBytes(23, 6003)
	zeroGap := cat(r1, zeros(5000), r2)
	tail := randBytes(10, 30077)
	lastStart := len(tail) / 128 * 128
	// A stretch that the target holds twice, at two alignments, as a tar holds a file bundled
	// twice; the old version has it twice too, at yet other offsets.
	twice := randBytes(30, 40*128+57)
	twiceTarget := cat(randBytes(31, 300), twice, randBytes(32, 77), twice, randBytes(33, 200))
	twiceOld := cat(randBytes(34, 5), twice, randBytes(35, 1009), twice, randBytes(36, 3))
	isolated := randBytes(11, 64*300)
	var sprinkled []byte
	for i, blk := range blocksOf(isolated, 64) {
		if i%7 == 3 {
			sprinkled = append(sprinkled, randBytes(uint64(100+i), 13+i%50)...)
			sprinkled = append(sprinkled, blk...)
		}
	}

	tests := []struct {
		name      string
		bs, seq   int // seq 0: as zsyncmake picks
		target    []byte
		olds      [][]byte
		all, none bool // beyond the oracle: every block found, or none
	}{
		{name: "identical/partial last block", bs: 128, target: t40k, olds: [][]byte{t40k}, all: true},
		{name: "identical/aligned", bs: 256, target: t25k, olds: [][]byte{t25k}, all: true},
		{name: "identical/seq1", bs: 128, seq: 1, target: t40k, olds: [][]byte{t40k}, all: true},
		{name: "unrelated", bs: 128, target: t40k, olds: [][]byte{randBytes(20, 40000)}, none: true},
		{name: "unrelated/seq1", bs: 128, seq: 1, target: t40k, olds: [][]byte{randBytes(20, 40000)}, none: true},
		{name: "old has insertions", bs: 128, target: t40k, olds: [][]byte{edited}},
		{name: "old has insertions/seq1", bs: 64, seq: 1, target: t40k, olds: [][]byte{edited}},
		{name: "old lacks bytes", bs: 128, target: t40k, olds: [][]byte{shrunk}},
		{name: "old lacks bytes/seq1", bs: 256, seq: 1, target: t40k, olds: [][]byte{shrunk}},
		{name: "stretch moved", bs: 128, target: t40k, olds: [][]byte{cat(a, c, b)}},
		{name: "stretch moved/seq1", bs: 128, seq: 1, target: t40k, olds: [][]byte{cat(c, a, b)}},
		{name: "zero runs", bs: 128, target: withZeros, olds: [][]byte{cat(randBytes(12, 999), zeros(3*128+5), randBytes(13, 5000))}},
		{name: "zero runs/seq1", bs: 128, seq: 1, target: withZeros, olds: [][]byte{cat(randBytes(12, 999), zeros(128), randBytes(13, 5000))}},
		// Matching zero blocks follows the old file's alignment; the block after the run starts
		// a few bytes off it and is found only because the scan steps back when the run ends.
		{name: "zero run shorter in old", bs: 128, target: zeroGap, olds: [][]byte{cat(r1, zeros(4993), r2)}, all: true},
		{name: "zero run longer in old", bs: 128, target: zeroGap, olds: [][]byte{cat(r1, zeros(5013), r2)}, all: true},
		{name: "zero run longer in old/seq1", bs: 128, seq: 1, target: zeroGap, olds: [][]byte{cat(r1, zeros(5013), r2)}, all: true},
		{name: "repeated block fills every position", bs: 128, target: repeated, olds: [][]byte{cat(randBytes(14, 77), x, r[1], randBytes(15, 500))}},
		{name: "only the tail", bs: 128, target: tail, olds: [][]byte{cat(randBytes(16, 5000), tail[lastStart:])}},
		{name: "tail followed by other data", bs: 128, target: tail, olds: [][]byte{cat(randBytes(16, 5000), tail[lastStart:], randBytes(17, 900))}, none: true},
		{name: "last two blocks", bs: 128, target: tail, olds: [][]byte{cat(randBytes(18, 333), tail[lastStart-128:])}},
		{name: "target and old shorter than a block", bs: 256, target: t40k[:100], olds: [][]byte{t40k[:100]}, all: true},
		{name: "old is a prefix of the only block", bs: 256, target: t40k[:100], olds: [][]byte{t40k[:50]}, none: true},
		{name: "old shorter than a block holds the tail", bs: 256, target: t40k[:1000], olds: [][]byte{t40k[768:1000]}},
		{name: "empty old", bs: 128, target: t40k, olds: [][]byte{nil}, none: true},
		{name: "content twice at two alignments", bs: 128, target: twiceTarget, olds: [][]byte{twiceOld}},
		{name: "content twice at two alignments/seq1", bs: 128, seq: 1, target: twiceTarget, olds: [][]byte{twiceOld}},
		{name: "content twice, once per source", bs: 128, target: twiceTarget, olds: [][]byte{twice, cat(randBytes(37, 99), twice)}},
		{name: "isolated blocks", bs: 64, target: isolated, olds: [][]byte{sprinkled}},
		{name: "isolated blocks/seq1", bs: 64, seq: 1, target: isolated, olds: [][]byte{sprinkled}},
		{name: "two sources", bs: 128, target: t40k, olds: [][]byte{cat(t40k[:20000], randBytes(19, 3000)), cat(randBytes(21, 4321), t40k[15000:])}, all: true},
		{name: "second source fills gaps", bs: 128, target: t40k, olds: [][]byte{edited, shrunk, t40k[9000:30000]}},
	}
	for _, tc := range tests {
		f := makeFile(tc.target, tc.bs, tc.seq)
		want := oracle(tc.target, tc.bs, f.SeqMatches, tc.olds...)
		if tc.all && slices.Contains(want, false) || tc.none && slices.Contains(want, true) {
			t.Fatalf("%s: the case is wrong: oracle %v", tc.name, want)
		}
		for _, opt := range configs(tc.bs) {
			t.Run(fmt.Sprintf("%s/workers=%d,chunk=%d,speculate=%v", tc.name, opt.Workers, opt.chunk, opt.Speculate), func(t *testing.T) {
				var srcs []Source
				for i, o := range tc.olds {
					srcs = append(srcs, srcOf(fmt.Sprintf("old%d", i), o))
				}
				var scanned int64
				opt.OnProgress = func(n int64) { scanned += n }
				p, err := Scan(t.Context(), f, srcs, opt)
				if err != nil {
					t.Fatal(err)
				}
				if d := diffFound(found(p), want); d != "" {
					t.Errorf("seq_matches %d: %s", f.SeqMatches, d)
				}
				if !slices.Contains(want, false) {
					// Every group was found, so sources after the one completing it may be skipped.
					if scanned > totalSize(srcs) {
						t.Errorf("progress reported %d bytes, sources hold %d", scanned, totalSize(srcs))
					}
				} else if scanned != totalSize(srcs) {
					t.Errorf("progress reported %d bytes, want %d", scanned, totalSize(srcs))
				}
				checkPlan(t, p, tc.target, srcs)
			})
		}
	}
}

func totalSize(srcs []Source) int64 {
	var n int64
	for _, s := range srcs {
		n += s.Size
	}
	return n
}

// TestScanPrefersLowerSource checks the merge order: a block found in two sources comes from the
// lower index, and within a source from the lowest offset.
func TestScanPrefersLowerSource(t *testing.T) {
	const bs = 128
	target := randBytes(30, 64*bs)
	junk := randBytes(31, 1000)
	srcs := []Source{
		srcOf("first", cat(target[:40*bs], junk)),
		srcOf("second", cat(junk, target, junk, target)),
	}
	for _, opt := range configs(bs) {
		p, err := Scan(t.Context(), makeFile(target, bs, 0), srcs, opt)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range p.Blocks {
			want := Loc{Src: 1, Off: int64(len(junk) + i*bs)}
			if i < 40 {
				want = Loc{Src: 0, Off: int64(i * bs)}
			}
			if l != want {
				t.Fatalf("%+v: block %d at %+v, want %+v", opt, i, l, want)
			}
		}
		checkPlan(t, p, target, srcs)
	}
}

// TestScanSameAcrossWorkers checks that the Plan does not depend on the number of workers.
func TestScanSameAcrossWorkers(t *testing.T) {
	const bs = 64
	target := cat(randBytes(40, 20000), make([]byte, 1000), randBytes(41, 7000))
	old := cat(randBytes(42, 77), target[3000:17000], make([]byte, 300), target[:2999], target[21000:])
	// Content twice, at two alignments of the target and twice in the old file: the second
	// pass's work, which must not depend on which worker got there first either.
	twice := randBytes(43, 9000)
	twiceTarget := cat(twice, randBytes(44, 21), twice, make([]byte, 700))
	twiceOld := cat(randBytes(45, 3), twice, make([]byte, 2000), randBytes(46, 11), twice[:5000], randBytes(47, 2), twice[5000:])
	for _, tc := range []struct{ target, old []byte }{{target, old}, {twiceTarget, twiceOld}} {
		f := makeFile(tc.target, bs, 0)
		srcs := []Source{srcOf("old", tc.old)}
		var first *Plan
		for _, w := range []int{1, 2, 3, 8} {
			p, err := Scan(t.Context(), f, srcs, Options{Workers: w, chunk: 999})
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = p
				checkPlan(t, p, tc.target, srcs)
			} else if !slices.Equal(p.Blocks, first.Blocks) {
				t.Fatalf("workers=%d: plan differs from workers=1", w)
			}
		}
	}
}

// TestScanHashWork bounds the MD4 work of a scan: about one hash per block of an unchanged file,
// almost none for unrelated data, and a few per block over long runs of zeros, whatever the
// target expects after its zero block (stepping back after each run must not hash every byte).
func TestScanHashWork(t *testing.T) {
	const bs = 512
	r := randBytes(110, 20*bs)
	z := make([]byte, bs)
	zeros := make([]byte, 256<<10)
	tests := []struct {
		name   string
		seq    int
		target []byte
		old    []byte
		max    float64 // bytes hashed per byte of old data
	}{
		{name: "identical", target: randBytes(111, 1<<20), old: randBytes(111, 1<<20), max: 1.01},
		{name: "unrelated", target: randBytes(111, 1<<20), old: randBytes(112, 1<<20), max: 0.01},
		{name: "zeros, one zero block", target: cat(r[:10*bs], z, r[10*bs:]), old: zeros, max: 3},
		{name: "zeros, one zero block/seq1", seq: 1, target: cat(r[:10*bs], z, r[10*bs:]), old: zeros, max: 3},
		{name: "zeros, two zero blocks", target: cat(r[:10*bs], z, z, r[10*bs:]), old: zeros, max: 3},
		{name: "zeros, two zero blocks/seq1", seq: 1, target: cat(r[:10*bs], z, z, r[10*bs:]), old: zeros, max: 3},
		{name: "zeros, unaligned run", target: cat(r[:10*bs+7], z, z, z, r[10*bs:]), old: zeros, max: 3},
		// The last block, alone a candidate everywhere, shares its weak sum with zeros.
		{name: "zeros, last block collides", target: cat(r, weakZero(113, bs)), old: zeros, max: 0.01},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := makeFile(tc.target, bs, tc.seq)
			if n := len(f.Blocks); strings.Contains(tc.name, "collides") && f.Blocks[n-1].Weak != makeFile(z, bs, 0).Blocks[0].Weak {
				t.Fatalf("the last block's weak sum %#x is not a zero block's", f.Blocks[n-1].Weak)
			}
			srcs := []Source{srcOf("old", tc.old)}
			p, err := Scan(t.Context(), f, srcs, Options{Workers: 2, chunk: 100000})
			if err != nil {
				t.Fatal(err)
			}
			if got := float64(p.hashed) / float64(len(tc.old)); got > tc.max {
				t.Errorf("hashed %.2f bytes per byte of old data, want at most %.2f", got, tc.max)
			}
			if d := diffFound(found(p), oracle(tc.target, bs, f.SeqMatches, tc.old)); d != "" {
				t.Error(d)
			}
			checkPlan(t, p, tc.target, srcs)
		})
	}
}

// TestScanSpeculate shows the trade Options.Speculate makes. On an unchanged file it skips the
// MD4 of every block but the first of each run. Against an old file whose block k was changed
// without changing its weak sum (a second difference, +1 -2 +1, leaves both rolling sums as
// they are), the strict scan leaves block k missing and the speculative one takes the wrong
// bytes, and says so in Speculated: the caller's verification must catch it.
func TestScanSpeculate(t *testing.T) {
	const bs, k = 512, 37
	target := randBytes(120, 100*bs+99)
	forged := bytes.Clone(target)
	at := k*bs + 200
	forged[at]++
	forged[at+1] -= 2
	forged[at+2]++
	if rollsum.Sum32(forged[k*bs:(k+1)*bs]) != rollsum.Sum32(target[k*bs:(k+1)*bs]) {
		t.Fatal("the forged block's weak sum differs")
	}
	f := makeFile(target, bs, 0)
	nblocks := len(f.Blocks)
	tests := []struct {
		name       string
		old        []byte
		speculate  bool
		maxHashed  int64 // bytes hashed with MD4 at most
		speculated int   // blocks accepted on weak sum alone, -1: more than 0
		foundK     bool
	}{
		{"identical", target, false, int64(nblocks+1) * bs, 0, true},
		{"identical, speculating", target, true, 4 * bs, -1, true},
		{"forged block", forged, false, int64(nblocks+3) * bs, 0, false},
		{"forged block, speculating", forged, true, 4 * bs, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srcs := []Source{srcOf("old", tc.old)}
			p, err := Scan(t.Context(), f, srcs, Options{Workers: 1, Speculate: tc.speculate})
			if err != nil {
				t.Fatal(err)
			}
			if p.hashed > tc.maxHashed {
				t.Errorf("hashed %d bytes with MD4, want at most %d", p.hashed, tc.maxHashed)
			}
			if tc.speculated >= 0 && p.Speculated != tc.speculated || tc.speculated < 0 && p.Speculated == 0 {
				t.Errorf("Speculated %d, want %d (-1: some)", p.Speculated, tc.speculated)
			}
			if got := p.Blocks[k].Src >= 0; got != tc.foundK {
				t.Errorf("block %d found: %v, want %v", k, got, tc.foundK)
			}
			if p.Blocks[k].Src < 0 {
				checkPlan(t, p, target, srcs) // the strict plan is right
			}
		})
	}
}

// weakZero returns a random block of bs >= 512 bytes whose rolling sum b is 0, like a block of
// zeros: with rsum_bytes 2 the block table cannot tell them apart by weak sum.
func weakZero(seed uint64, bs int) []byte {
	blk := randBytes(seed, bs)
	blk[bs-1], blk[bs-256] = 0, 0
	_, b := rollsum.Block(blk)
	need := -int(b) & 0xffff // add need to b: byte bs-1 counts once, byte bs-256 256 times
	blk[bs-1], blk[bs-256] = byte(need%256), byte(need/256)
	return blk
}

// TestScanMaxCandidates builds blocks that all share one weak sum (a byte pattern +1,-2,+1 keeps
// both rolling sums) and checks that the cap limits the distinct contents looked for, while a
// content repeated at many positions still fills all of them.
func TestScanMaxCandidates(t *testing.T) {
	const bs = 64
	base := randBytes(50, bs)
	for i := range base {
		base[i] = 64 + base[i]%64 // room for +-2 without wrapping
	}
	var blocks [][]byte
	for k := range 20 {
		b := bytes.Clone(base)
		b[k], b[k+1], b[k+2] = b[k]+1, b[k+1]-2, b[k+2]+1
		blocks = append(blocks, b)
	}
	zero := make([]byte, bs)
	target := cat(slices.Concat(blocks...), bytes.Repeat(zero, 30))
	// The old file holds the blocks in reverse order, each apart, so each needs a table lookup.
	var old []byte
	for k := len(blocks) - 1; k >= 0; k-- {
		old = append(append(old, blocks[k]...), randBytes(uint64(60+k), 11)...)
	}
	old = append(old, zero...)
	f := makeFile(target, bs, 1)
	for i := 1; i < 20; i++ {
		if f.Blocks[i].Weak != f.Blocks[0].Weak || f.Blocks[i].Strong == f.Blocks[0].Strong {
			t.Fatalf("block %d: the constructed blocks do not share a weak sum only", i)
		}
	}
	for _, tc := range []struct{ max, want int }{{5, 5}, {20, 20}, {0, 20}} {
		p, err := Scan(t.Context(), f, []Source{srcOf("old", old)}, Options{MaxCandidates: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for i := range 20 {
			if p.Found(i) {
				got++
				if i >= tc.want {
					t.Errorf("MaxCandidates %d: block %d found, but only the first %d contents are candidates", tc.max, i, tc.want)
				}
			}
		}
		if got != tc.want {
			t.Errorf("MaxCandidates %d: %d of the same-weak blocks found, want %d", tc.max, got, tc.want)
		}
		for i := 20; i < 50; i++ {
			if !p.Found(i) {
				t.Fatalf("MaxCandidates %d: zero block %d not found", tc.max, i)
			}
		}
		checkPlan(t, p, target, []Source{srcOf("old", old)})
	}
}

// TestScanInPlace resumes from a half-written output file: blocks already at their own offset
// need no copy, wherever the InPlace source sits in the list, and Apply leaves them alone.
func TestScanInPlace(t *testing.T) {
	const bs = 128
	target := cat(randBytes(70, 30000), make([]byte, 3*bs), randBytes(71, 1000))
	half := cat(target[:15000], make([]byte, len(target)-15000))
	half[5*bs+7] ^= 0xff // one corrupt block
	old := cat(randBytes(72, 100), target[10000:25000])
	tests := []struct {
		name    string
		part    []byte
		withOld bool
		first   bool // the InPlace source comes first
	}{
		{name: "half done, alone", part: half},
		{name: "half done, after old", part: half, withOld: true},
		{name: "half done, before old", part: half, withOld: true, first: true},
		{name: "complete", part: target, withOld: true},
		{name: "short file", part: target[:7*bs+5]},
		{name: "longer than the target", part: cat(target, randBytes(73, 500))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			part := Source{Name: "OUT.part", R: &memFile{b: bytes.Clone(tc.part)}, Size: int64(len(tc.part)), InPlace: true}
			srcs := []Source{part}
			if tc.withOld {
				srcs = []Source{srcOf("old", old), part}
				if tc.first {
					srcs = []Source{part, srcOf("old", old)}
				}
			}
			ip := slices.IndexFunc(srcs, func(s Source) bool { return s.InPlace })
			f := makeFile(target, bs, 0)
			for _, opt := range configs(bs) {
				p, err := Scan(t.Context(), f, srcs, opt)
				if err != nil {
					t.Fatal(err)
				}
				for i := range p.NumBlocks {
					off, n := p.blockRange(i)
					inPlace := off+n <= int64(len(tc.part)) && bytes.Equal(tc.part[off:off+n], target[off:off+n])
					if inPlace != (p.Blocks[i] == Loc{Src: ip, Off: off}) {
						t.Fatalf("%+v: block %d at %+v; it is in place: %v", opt, i, p.Blocks[i], inPlace)
					}
				}
				checkPlan(t, p, target, srcs)
			}
		})
	}
}

// errReader fails every read that reaches past limit.
type errReader struct {
	data  []byte
	limit int64
}

var errDisk = errors.New("disk on fire")

func (e errReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > e.limit {
		return 0, errDisk
	}
	return copy(p, e.data[off:]), nil
}

// shortReader returns less than asked without an error, breaking the io.ReaderAt contract.
type shortReader struct{}

func (shortReader) ReadAt(p []byte, off int64) (int, error) { return len(p) / 2, nil }

func TestScanErrors(t *testing.T) {
	target := randBytes(80, 10000)
	good := makeFile(target, 128, 0)
	bad := func(edit func(f *zsyncfile.File)) *zsyncfile.File {
		f := makeFile(target, 128, 0)
		edit(f)
		return f
	}
	big := randBytes(81, 3<<20)
	tests := []struct {
		name string
		f    *zsyncfile.File
		srcs []Source
		want []string // substrings of the error
		is   error
	}{
		{name: "nil file", f: nil, want: []string{"nil control file"}},
		{name: "zero block size", f: bad(func(f *zsyncfile.File) { f.Blocksize = 0 }), want: []string{"block size 0"}},
		{name: "huge block size", f: bad(func(f *zsyncfile.File) { f.Blocksize = 1 << 40 }), want: []string{"block size"}},
		{name: "seq_matches 3", f: bad(func(f *zsyncfile.File) { f.SeqMatches = 3 }), want: []string{"seq_matches 3"}},
		{name: "rsum_bytes 5", f: bad(func(f *zsyncfile.File) { f.RsumBytes = 5 }), want: []string{"rsum_bytes 5"}},
		{name: "checksum_bytes 0", f: bad(func(f *zsyncfile.File) { f.ChecksumBytes = 0 }), want: []string{"checksum_bytes 0"}},
		{name: "short table", f: bad(func(f *zsyncfile.File) { f.Blocks = f.Blocks[1:] }), want: []string{"blocks in the table"}},
		{name: "negative length", f: bad(func(f *zsyncfile.File) { f.Length = -1 }), want: []string{"negative length"}},
		{name: "two InPlace", f: good, srcs: []Source{{Name: "a", R: bytes.NewReader(nil), InPlace: true}, {Name: "b", R: bytes.NewReader(nil), InPlace: true}}, want: []string{"both InPlace"}},
		{name: "negative size", f: good, srcs: []Source{{Name: "neg", R: bytes.NewReader(nil), Size: -5}}, want: []string{"neg", "negative size"}},
		{name: "no reader", f: good, srcs: []Source{{Name: "nil", Size: 5}}, want: []string{"nil", "no reader"}},
		{name: "read error", f: good, srcs: []Source{{Name: "old.deb", R: errReader{big, 2<<20 + 1}, Size: int64(len(big))}}, want: []string{"old.deb", "at offset "}, is: errDisk},
		{name: "short read", f: good, srcs: []Source{{Name: "liar", R: shortReader{}, Size: 5000}}, want: []string{"liar", "offset 0"}, is: io.ErrUnexpectedEOF},
		{name: "size beyond the data", f: good, srcs: []Source{{Name: "trunc", R: bytes.NewReader(target[:3000]), Size: 9000}}, want: []string{"trunc", "offset 0"}, is: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Scan(t.Context(), tc.f, tc.srcs, Options{Workers: 2})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
		})
	}
}

func TestScanEmptyTarget(t *testing.T) {
	p, err := Scan(t.Context(), makeFile(nil, 2048, 0), []Source{srcOf("old", randBytes(1, 5000))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.NumBlocks != 0 || p.Missing() != nil || !p.Have(0, 100) || p.ReusedBytes() != 0 {
		t.Fatalf("empty target: %+v", p)
	}
	if err := p.Apply(t.Context(), &memFile{}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestScanCancel(t *testing.T) {
	target := randBytes(90, 1<<20)
	old := randBytes(91, 8<<20)
	f := makeFile(target, 2048, 0)
	srcs := []Source{srcOf("old", old)}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Scan(ctx, f, srcs, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: error %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	var scanned int64
	_, err := Scan(ctx, f, srcs, Options{Workers: 2, chunk: 1 << 20, OnProgress: func(n int64) {
		scanned += n
		cancel()
	}})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "old") {
		t.Fatalf("cancelled during: error %v, want context.Canceled naming the source", err)
	}
	if scanned >= int64(len(old)) {
		t.Fatalf("scanned all %d bytes despite the cancel", scanned)
	}

	p, err := Scan(t.Context(), f, []Source{srcOf("same", target)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if err := p.Apply(ctx, &memFile{}, []Source{srcOf("same", target)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply cancelled: error %v, want context.Canceled", err)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) WriteAt(p []byte, off int64) (int, error) { return 0, errDisk }

func TestApplyErrors(t *testing.T) {
	target := randBytes(95, 20000)
	f := makeFile(target, 256, 0)
	srcs := []Source{srcOf("old", target)}
	p, err := Scan(t.Context(), f, srcs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dst  io.WriterAt
		srcs []Source
		want []string
	}{
		{name: "write fails", dst: failWriter{}, srcs: srcs, want: []string{"write target at offset 0", "old"}},
		{name: "read fails", dst: &memFile{}, srcs: []Source{{Name: "gone", R: errReader{target, 0}, Size: int64(len(target))}}, want: []string{"gone", "offset 0"}},
		{name: "too few sources", dst: &memFile{}, srcs: nil, want: []string{"source 0", "0 sources"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Apply(t.Context(), tc.dst, tc.srcs)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestApplyCoalesces checks that an unchanged file is copied with a few large reads.
func TestApplyCoalesces(t *testing.T) {
	target := randBytes(96, 10<<20+333)
	f := makeFile(target, 2048, 0)
	src := &countingReader{r: bytes.NewReader(target)}
	srcs := []Source{{Name: "old", R: src, Size: int64(len(target))}}
	p, err := Scan(t.Context(), f, []Source{srcOf("old", target)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := &memFile{}
	if err := p.Apply(t.Context(), out, srcs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.b, target) {
		t.Fatal("Apply did not copy the file")
	}
	if want := (len(target) + maxRun - 1) / maxRun; src.reads != want || len(out.writes) != want {
		t.Fatalf("%d reads and %d writes, want %d of each", src.reads, len(out.writes), want)
	}
}

// countingReader counts the ReadAt calls made on it.
type countingReader struct {
	r     io.ReaderAt
	mu    sync.Mutex
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.r.ReadAt(p, off)
}
