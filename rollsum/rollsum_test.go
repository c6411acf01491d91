package rollsum

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/pkgsync/pkgsync/internal/testtool"
)

// reference computes the two sums straight from the definition in the package doc, with no
// shortcuts: every product and every reduction mod 2^16 spelled out.
func reference(x []byte) (a, b uint16) {
	n := len(x)
	var sa, sb int
	for i := range n {
		sa = (sa + int(x[i])) % 65536
		sb = (sb + (n-i)%65536*int(x[i])) % 65536
	}
	return uint16(sa), uint16(sb)
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func TestBlockMatchesReference(t *testing.T) {
	data := randBytes(1, 70000)
	ones := make([]byte, 70000)
	for i := range ones {
		ones[i] = 0xff
	}
	lengths := []int{0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000, 2047, 2048, 2049,
		4096, 65535, 65536, 65537, 70000}
	r := rand.New(rand.NewPCG(2, 3))
	for range 100 {
		lengths = append(lengths, r.IntN(5000))
	}
	for _, src := range []struct {
		name string
		data []byte
	}{{"random", data}, {"0xff", ones}} {
		for _, l := range lengths {
			for _, off := range []int{0, 3} {
				if off+l > len(src.data) {
					continue
				}
				x := src.data[off : off+l]
				wa, wb := reference(x)
				if a, b := Block(x); a != wa || b != wb {
					t.Errorf("%s len %d off %d: Block = %#04x,%#04x, want %#04x,%#04x", src.name, l, off, a, b, wa, wb)
				}
				r := New(x)
				if r.A != wa || r.B != wb {
					t.Errorf("%s len %d off %d: New = %#04x,%#04x, want %#04x,%#04x", src.name, l, off, r.A, r.B, wa, wb)
				}
				want := uint32(wa)<<16 | uint32(wb)
				if got := Sum32(x); got != want {
					t.Errorf("%s len %d off %d: Sum32 = %#08x, want %#08x", src.name, l, off, got, want)
				}
				if got := r.Sum32(); got != want {
					t.Errorf("%s len %d off %d: (*Rollsum).Sum32 = %#08x, want %#08x", src.name, l, off, got, want)
				}
			}
		}
	}
}

// TestRollMatchesBlock slides a window over a long buffer and checks the rolled sum against a
// fresh Block at every offset.
func TestRollMatchesBlock(t *testing.T) {
	data := randBytes(4, 1<<16)
	for _, n := range []int{1, 2, 5, 64, 1000, 2048, 4096} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := New(data[:n])
			v := r
			for i := 0; ; i++ {
				want := Sum32(data[i : i+n])
				if got := r.Sum32(); got != want {
					t.Fatalf("offset %d: Roll gives %#08x, recomputed %#08x", i, got, want)
				}
				if got := v.Sum32(); got != want {
					t.Fatalf("offset %d: Rolled gives %#08x, recomputed %#08x", i, got, want)
				}
				if i+n == len(data) {
					break
				}
				r.Roll(data[i], data[i+n])
				v = v.Rolled(data[i], data[i+n])
			}
		})
	}
}

// TestRollLongWindow covers windows of 2^16 bytes and more, where the multiplier n of the outgoing
// byte wraps; recomputing at every offset would be too slow, so it checks a sample of offsets.
func TestRollLongWindow(t *testing.T) {
	data := randBytes(5, 1<<18)
	for _, n := range []int{65535, 65536, 65537, 100000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := New(data[:n])
			for i := 0; ; i++ {
				if i%997 == 0 || i+n == len(data) {
					wa, wb := reference(data[i : i+n])
					if r.A != wa || r.B != wb {
						t.Fatalf("offset %d: rolled %#04x,%#04x, reference %#04x,%#04x", i, r.A, r.B, wa, wb)
					}
				}
				if i+n == len(data) {
					break
				}
				r.Roll(data[i], data[i+n])
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		n    int
		want uint32
	}{
		{-1, 0},
		{0, 0},
		{1, 0x000000ff},
		{2, 0x0000ffff},
		{3, 0x00ffffff},
		{4, 0xffffffff},
		{5, 0xffffffff},
	}
	for _, tc := range tests {
		if got := Mask(tc.n); got != tc.want {
			t.Errorf("Mask(%d) = %#08x, want %#08x", tc.n, got, tc.want)
		}
	}
}

// TestZsyncmakeGolden checks our weak sums against the block table the stock zsyncmake writes for
// seeded random files. The cases are chosen so that zsyncmake keeps 2, 3 and 4 rsum bytes and so
// that the last block is zero-padded.
func TestZsyncmakeGolden(t *testing.T) {
	zsyncmake := testtool.Need(t, "zsyncmake")[0]
	tests := []struct {
		length, blocksize, rsumBytes int
	}{
		{10*1024 + 777, 2048, 2},
		{10 * 1024, 2048, 2},
		{5000, 8192, 3},
		{100000, 131072, 4},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d_at_%d", tc.length, tc.blocksize), func(t *testing.T) {
			data := randBytes(uint64(tc.length), tc.length)
			rsumBytes, checksumBytes, table := testtool.ZsyncmakeTable(t, zsyncmake, data, tc.blocksize)
			if rsumBytes != tc.rsumBytes {
				t.Fatalf("zsyncmake chose %d rsum bytes, the case expects %d", rsumBytes, tc.rsumBytes)
			}
			rec := rsumBytes + checksumBytes
			nblocks := (tc.length + tc.blocksize - 1) / tc.blocksize
			if len(table) != nblocks*rec {
				t.Fatalf("block table is %d bytes, want %d blocks of %d", len(table), nblocks, rec)
			}
			mask := Mask(rsumBytes)
			for i := range nblocks {
				blk := make([]byte, tc.blocksize) // zsync pads the last block with zeros
				copy(blk, data[i*tc.blocksize:])
				var packed [4]byte
				copy(packed[4-rsumBytes:], table[i*rec:i*rec+rsumBytes])
				want := binary.BigEndian.Uint32(packed[:])
				if got := Sum32(blk) & mask; got != want {
					t.Errorf("block %d: Sum32&Mask = %#08x, zsyncmake wrote %#08x", i, got, want)
				}
			}
		})
	}
}

var sinkA, sinkB uint16

func BenchmarkBlock(b *testing.B) {
	for _, n := range []int{2048, 4096} {
		data := randBytes(6, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sinkA, sinkB = Block(data)
			}
		})
	}
}

// BenchmarkRoll measures the scan loop of the delta search: one roll and one Sum32 per byte, by
// pointer (Roll) and by value (Rolled).
func BenchmarkRoll(b *testing.B) {
	const n = 4096
	data := randBytes(7, 1<<16)
	for _, bc := range []struct {
		name string
		scan func([]byte, int) uint32
	}{{"Roll", scanRoll}, {"Rolled", scanRolled}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data) - n))
			b.ReportAllocs()
			for b.Loop() {
				sinkSum = bc.scan(data, n)
			}
		})
	}
}

var sinkSum uint32

// scanRoll rolls a window of n bytes over data the way a delta scanner does, returning the XOR of
// the sums at every offset so the work cannot be optimised away.
func scanRoll(data []byte, n int) uint32 {
	r := New(data[:n])
	x := r.Sum32()
	for i := n; i < len(data); i++ {
		r.Roll(data[i-n], data[i])
		x ^= r.Sum32()
	}
	return x
}

// scanRolled is scanRoll with Rolled.
func scanRolled(data []byte, n int) uint32 {
	r := New(data[:n])
	x := r.Sum32()
	for i := n; i < len(data); i++ {
		r = r.Rolled(data[i-n], data[i])
		x ^= r.Sum32()
	}
	return x
}

func TestScanHelpersAgree(t *testing.T) {
	data := randBytes(8, 10000)
	if a, b := scanRoll(data, 1000), scanRolled(data, 1000); a != b {
		t.Errorf("scanRoll = %#08x, scanRolled = %#08x", a, b)
	}
}
