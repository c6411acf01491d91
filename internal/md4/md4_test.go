package md4

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	xmd4 "golang.org/x/crypto/md4"

	"github.com/pkgsync/pkgsync/internal/testtool"
)

// rfc1320 is the test suite of RFC 1320, appendix A.5.
var rfc1320 = []struct {
	in, want string
}{
	{"", "31d6cfe0d16ae931b73c59d7e0c089c0"},
	{"a", "bde52cb31de33e46245e05fbdbd6fb24"},
	{"abc", "a448017aaf21d8525fc10ae87aa6729d"},
	{"message digest", "d9130a8164549fe818874806e1c7014b"},
	{"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"},
	{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"},
	{"12345678901234567890123456789012345678901234567890123456789012345678901234567890", "e33b4ddc9c38f2199c3e7b164fcc0536"},
}

func TestRFC1320(t *testing.T) {
	for _, tc := range rfc1320 {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			sum := Sum([]byte(tc.in))
			if got := hex.EncodeToString(sum[:]); got != tc.want {
				t.Errorf("Sum = %s, want %s", got, tc.want)
			}
			sum = SumBlock([]byte(tc.in), len(tc.in))
			if got := hex.EncodeToString(sum[:]); got != tc.want {
				t.Errorf("SumBlock(in, len(in)) = %s, want %s", got, tc.want)
			}
			d := New()
			io.WriteString(d, tc.in)
			if got := hex.EncodeToString(d.Sum(nil)); got != tc.want {
				t.Errorf("Digest.Sum = %s, want %s", got, tc.want)
			}
		})
	}
}

func xSum(data []byte) [Size]byte {
	h := xmd4.New()
	h.Write(data)
	var out [Size]byte
	h.Sum(out[:0])
	return out
}

// testLengths are the lengths the differential tests cover: every length around the 55/56 and
// 63/64 padding boundaries of the first few chunks, then a seeded random sample up to 5000.
func testLengths() []int {
	var ls []int
	for base := 0; base <= 4*BlockSize; base += BlockSize {
		for l := base - 10; l <= base+10; l++ {
			if l >= 0 {
				ls = append(ls, l)
			}
		}
	}
	for _, l := range []int{55, 56, 57, 119, 120, 121, 2047, 2048, 2049, 4095, 4096, 4097, 5000} {
		ls = append(ls, l)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		ls = append(ls, r.IntN(5001))
	}
	return ls
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func TestSumMatchesXCrypto(t *testing.T) {
	data := randBytes(7, 5000)
	for _, l := range testLengths() {
		// Slice from an odd offset too, so no alignment is assumed.
		for _, off := range []int{0, 1} {
			if off+l > len(data) {
				continue
			}
			in := data[off : off+l]
			if got, want := Sum(in), xSum(in); got != want {
				t.Fatalf("len %d off %d: Sum = %x, x/crypto/md4 = %x", l, off, got, want)
			}
		}
	}
}

func TestSumBlockMatchesPaddedCopy(t *testing.T) {
	data := randBytes(8, 5000)
	sizes := []int{1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 2048, 4096, 5000}
	for _, l := range testLengths() {
		for _, size := range sizes {
			if size < l {
				continue
			}
			padded := make([]byte, size)
			copy(padded, data[:l])
			if got, want := SumBlock(data[:l], size), xSum(padded); got != want {
				t.Fatalf("len %d size %d: SumBlock = %x, MD4 of padded copy = %x", l, size, got, want)
			}
		}
	}
}

func TestAppendBlockSums(t *testing.T) {
	data := randBytes(14, 5000)
	tests := []struct {
		length, blockSize int
	}{
		{0, 2048},
		{1, 2048},
		{2048, 2048},
		{2049, 2048},
		{4096, 2048},
		{4097, 2048},
		{5000, 2048},
		{5000, 1024},
		{5000, 4096},
		{5000, 8192},
		{5000, 1},
		{1000, 63},
		{1000, 65},
		{1000, 100},
		{130, 64},
		{192, 64},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d_at_%d", tc.length, tc.blockSize), func(t *testing.T) {
			in := data[:tc.length]
			prefix := [][Size]byte{{1, 2, 3}}
			got := AppendBlockSums(slices.Clone(prefix), in, tc.blockSize)
			want := slices.Clone(prefix)
			for off := 0; off < len(in); off += tc.blockSize {
				blk := in[off:min(off+tc.blockSize, len(in))]
				padded := make([]byte, tc.blockSize)
				copy(padded, blk)
				want = append(want, xSum(padded))
			}
			if !slices.Equal(got, want) {
				t.Errorf("AppendBlockSums gave %d sums, want %d; first difference at %d",
					len(got), len(want), firstDiff(got, want))
			}
		})
	}
	for _, bs := range []int{0, -1} {
		if got := AppendBlockSums(nil, data, bs); len(got) != 0 {
			t.Errorf("AppendBlockSums(blockSize %d) appended %d sums, want none", bs, len(got))
		}
	}
}

func firstDiff(a, b [][Size]byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestSumBlockSizeBelowLength(t *testing.T) {
	data := randBytes(9, 300)
	for _, size := range []int{-1, 0, 1, 299, 300} {
		if got, want := SumBlock(data, size), Sum(data); got != want {
			t.Errorf("SumBlock(300 bytes, %d) = %x, want Sum = %x", size, got, want)
		}
	}
}

func TestDigestMatchesSum(t *testing.T) {
	data := randBytes(10, 5000)
	r := rand.New(rand.NewPCG(3, 4))
	d := New()
	for _, l := range testLengths() {
		d.Reset()
		in := data[:l]
		// Feed in random pieces so every buffering path is taken.
		for p := in; len(p) > 0; {
			n := min(len(p), r.IntN(150))
			d.Write(p[:n])
			p = p[n:]
		}
		want := Sum(in)
		if got := d.Sum16(); got != want {
			t.Fatalf("len %d: Digest.Sum16 = %x, want %x", l, got, want)
		}
		if got := d.Sum([]byte("prefix")); !bytes.Equal(got, append([]byte("prefix"), want[:]...)) {
			t.Fatalf("len %d: Digest.Sum(prefix) = %x, want prefix+%x", l, got, want)
		}
		// Sum must not disturb the state: more writes continue the same message.
		d.Write([]byte("x"))
		if got, want := d.Sum16(), Sum(append(bytes.Clone(in), 'x')); got != want {
			t.Fatalf("len %d: write after Sum16 gives %x, want %x", l, got, want)
		}
	}
	if d.Size() != 16 || d.BlockSize() != 64 {
		t.Errorf("Size, BlockSize = %d, %d, want 16, 64", d.Size(), d.BlockSize())
	}
}

func TestNoAllocs(t *testing.T) {
	data := randBytes(11, 4096)
	d := New()
	dst := make([][Size]byte, 0, 3)
	tests := []struct {
		name string
		f    func()
	}{
		{"Sum", func() { Sum(data) }},
		{"SumBlock", func() { SumBlock(data[:1000], 4096) }},
		{"AppendBlockSums", func() { AppendBlockSums(dst[:0], data[:3000], 1024) }},
		{"Digest", func() { d.Reset(); d.Write(data[:100]); d.Write(data[100:]); d.Sum16() }},
	}
	for _, tc := range tests {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, n)
		}
	}
}

func FuzzSumBlock(f *testing.F) {
	f.Add([]byte(""), uint16(0))
	f.Add([]byte("abc"), uint16(2048))
	f.Add(bytes.Repeat([]byte{0xff}, 63), uint16(120))
	f.Fuzz(func(t *testing.T, data []byte, extra uint16) {
		if got, want := Sum(data), xSum(data); got != want {
			t.Fatalf("Sum(%d bytes) = %x, x/crypto/md4 = %x", len(data), got, want)
		}
		size := len(data) + int(extra)
		padded := make([]byte, size)
		copy(padded, data)
		if got, want := SumBlock(data, size), xSum(padded); got != want {
			t.Fatalf("SumBlock(%d bytes, %d) = %x, MD4 of padded copy = %x", len(data), size, got, want)
		}
	})
}

// TestZsyncmakeStrongSums checks SumBlock against the strong sums the stock zsyncmake writes,
// including the zero-padded last block.
func TestZsyncmakeStrongSums(t *testing.T) {
	zsyncmake := testtool.Need(t, "zsyncmake")[0]
	tests := []struct {
		length, blocksize int
	}{
		{10*1024 + 777, 2048},
		{5000, 8192},
		{3 * 4096, 4096},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d_at_%d", tc.length, tc.blocksize), func(t *testing.T) {
			data := randBytes(uint64(tc.length), tc.length)
			rsumBytes, checksumBytes, table := testtool.ZsyncmakeTable(t, zsyncmake, data, tc.blocksize)
			rec := rsumBytes + checksumBytes
			nblocks := (tc.length + tc.blocksize - 1) / tc.blocksize
			if len(table) != nblocks*rec {
				t.Fatalf("block table is %d bytes, want %d blocks of %d", len(table), nblocks, rec)
			}
			pairs := AppendBlockSums(nil, data, tc.blocksize)
			if len(pairs) != nblocks {
				t.Fatalf("AppendBlockSums gave %d sums, want %d", len(pairs), nblocks)
			}
			for i := range nblocks {
				blk := data[i*tc.blocksize : min((i+1)*tc.blocksize, len(data))]
				sum := SumBlock(blk, tc.blocksize)
				want := table[i*rec+rsumBytes : (i+1)*rec]
				if !bytes.Equal(sum[:checksumBytes], want) {
					t.Errorf("block %d: SumBlock = %x, zsyncmake wrote %x", i, sum[:checksumBytes], want)
				}
				if !bytes.Equal(pairs[i][:checksumBytes], want) {
					t.Errorf("block %d: AppendBlockSums = %x, zsyncmake wrote %x", i, pairs[i][:checksumBytes], want)
				}
			}
		})
	}
}

var sink [Size]byte

func BenchmarkSum(b *testing.B) {
	for _, n := range []int{2048, 4096} {
		data := randBytes(12, n)
		b.Run(fmt.Sprintf("ours/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sink = Sum(data)
			}
		})
		b.Run(fmt.Sprintf("xcrypto/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sink = xSum(data)
			}
		})
	}
}

func BenchmarkSumBlock(b *testing.B) {
	data := randBytes(13, 1000)
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		sink = SumBlock(data, 4096)
	}
}

func BenchmarkAppendBlockSums(b *testing.B) {
	data := randBytes(15, 1<<20)
	for _, bs := range []int{2048, 4096} {
		dst := make([][Size]byte, 0, len(data)/bs)
		b.Run(fmt.Sprintf("pairs/%d", bs), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendBlockSums(dst[:0], data, bs)
			}
		})
		b.Run(fmt.Sprintf("SumBlock/%d", bs), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				dst = dst[:0]
				for off := 0; off < len(data); off += bs {
					dst = append(dst, SumBlock(data[off:min(off+bs, len(data))], bs))
				}
			}
		})
	}
}
