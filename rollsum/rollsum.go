// Package rollsum implements the rsync/zsync rolling checksum exactly as zsync 0.6.2 computes it,
// so that the weak sums pkgsync writes and reads agree with zsyncmake's.
//
// For a block x[0..n) of n bytes the checksum is two 16-bit sums:
//
//	a = Σ x[i]            mod 2^16
//	b = Σ (n - i) * x[i]  mod 2^16
//
// Sliding the window one byte, dropping out and taking in, costs O(1):
//
//	a' = a + in - out
//	b' = b + a' - n*out
//
// (all arithmetic mod 2^16, which uint16 overflow gives for free). zsync stores the pair big-endian as
// the four bytes a_hi a_lo b_hi b_lo and keeps the last rsum_bytes of them in its block table; Sum32
// returns those four bytes as one uint32 (a<<16 | b) so that truncation is a mask.
package rollsum

import "encoding/binary"

// Rollsum is the state of a rolling checksum over a window of fixed size. The zero value is a sum over
// an empty window; use New to start one over a block.
type Rollsum struct {
	A, B uint16 // the sums a and b of the package doc
	n    uint16 // block size mod 2^16, the multiplier of the outgoing byte
}

// New returns the checksum of block; len(block) is the window size for Roll.
func New(block []byte) Rollsum {
	a, b := Block(block)
	return Rollsum{A: a, B: b, n: uint16(len(block))}
}

// Block returns the two sums of block without the rolling state.
func Block(block []byte) (a, b uint16) {
	// b = Σ (n-i)*x[i] is also the sum of the running totals of a after each byte, since x[i] is
	// in the running total n-i times; that needs no multiply per byte. Eight bytes at a time:
	// with a0 and b0 the sums before a chunk c[0..8),
	//
	//	a = a0 + Σ c[j]
	//	b = b0 + 8*a0 + Σ (8-j)*c[j]
	//
	// and both chunk sums come from multiplies on 16-bit lanes. e holds c[0], c[2], c[4], c[6] in
	// lanes 0-3 and o holds c[1], c[3], c[5], c[7]; in the product of e with the lane weights
	// m3..m0, lane 3 collects e0*m3 + e1*m2 + e2*m1 + e3*m0, so weights 8,6,4,2 (for e) and 7,5,3,1
	// (for o) give Σ (8-j)*c[j] in the top 16 bits, and weights 1,1,1,1 on e+o give Σ c[j]. No lane
	// can carry into the next: the largest lane is at most 255*(8+6+4+2 + 7+5+3+1) = 9180 < 2^16.
	// The sums wrap mod 2^64, which keeps them exact mod 2^16.
	const (
		lanes = 0x00ff00ff00ff00ff
		ones  = 1<<48 | 1<<32 | 1<<16 | 1
		wEven = 8<<48 | 6<<32 | 4<<16 | 2
		wOdd  = 7<<48 | 5<<32 | 3<<16 | 1
	)
	// Sixty-four bytes at a time, eight words k = 0..7: b gains 64*a0 + Σ (64-j)*c[j], which is
	//
	//	Σ_k 8*(7-k)*S_k + Σ_k W_k
	//
	// with S_k the byte sum of word k and W_k its Σ (8-j')*c. The W_k all use the same lane
	// weights, so their sum comes from the lane-wise sums E and O of the words' e and o: two
	// multiplies, each shifted down on its own (lanes up to 8*255*20 = 40800 < 2^16, no carry).
	// Σ (7-k)*S_k is one multiply of the lane-wise weighted sum (lanes up to 28*2*255 = 14280,
	// their total 57120 < 2^16). Five multiplies per 64 bytes where the loop above takes three
	// per 8, and one carried dependency instead of eight: about twice the speed (figures in
	// docs/BENCHMARKS.md), which a delta scan that follows unchanged data block by block feels.
	var sa, sb uint64
	p := block
	for len(p) >= 64 {
		q := p[:64]
		v0 := binary.LittleEndian.Uint64(q[0:8])
		v1 := binary.LittleEndian.Uint64(q[8:16])
		v2 := binary.LittleEndian.Uint64(q[16:24])
		v3 := binary.LittleEndian.Uint64(q[24:32])
		v4 := binary.LittleEndian.Uint64(q[32:40])
		v5 := binary.LittleEndian.Uint64(q[40:48])
		v6 := binary.LittleEndian.Uint64(q[48:56])
		v7 := binary.LittleEndian.Uint64(q[56:64])
		s0 := v0&lanes + v0>>8&lanes
		s1 := v1&lanes + v1>>8&lanes
		s2 := v2&lanes + v2>>8&lanes
		s3 := v3&lanes + v3>>8&lanes
		s4 := v4&lanes + v4>>8&lanes
		s5 := v5&lanes + v5>>8&lanes
		s6 := v6&lanes + v6>>8&lanes
		s7 := v7&lanes + v7>>8&lanes
		E := v0&lanes + v1&lanes + v2&lanes + v3&lanes + v4&lanes + v5&lanes + v6&lanes + v7&lanes
		O := v0>>8&lanes + v1>>8&lanes + v2>>8&lanes + v3>>8&lanes + v4>>8&lanes + v5>>8&lanes + v6>>8&lanes + v7>>8&lanes
		u := 7*s0 + 6*s1 + 5*s2 + 4*s3 + 3*s4 + 2*s5 + s6
		sb += sa<<6 + (u*ones>>48)<<3 + E*wEven>>48 + O*wOdd>>48
		sa += (s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7) * ones >> 48
		p = p[64:]
	}
	for len(p) >= 8 {
		v := binary.LittleEndian.Uint64(p)
		e, o := v&lanes, v>>8&lanes
		sb += sa<<3 + (e*wEven+o*wOdd)>>48
		sa += (e + o) * ones >> 48
		p = p[8:]
	}
	for _, c := range p {
		sa += uint64(c)
		sb += sa
	}
	return uint16(sa), uint16(sb)
}

// Roll slides the window by one byte: out leaves at the front, in enters at the back.
//
// In a hot loop prefer r = r.Rolled(out, in): calling a pointer method makes the compiler keep r
// in memory, and the store and reload per byte cost about half the speed of the scan.
func (r *Rollsum) Roll(out, in byte) {
	*r = r.Rolled(out, in)
}

// Rolled returns the checksum of the window slid by one byte (out leaves at the front, in enters
// at the back), leaving r unchanged. It does what Roll does, but by value, so a Rollsum held in a
// local variable stays in registers.
func (r Rollsum) Rolled(out, in byte) Rollsum {
	r.A += uint16(in) - uint16(out)
	r.B += r.A - r.n*uint16(out)
	return r
}

// Sum32 returns the checksum as zsync lays it out: a in the high half, b in the low half. It has a
// value receiver, unlike Roll, so that calling it does not force r into memory (see Rolled).
func (r Rollsum) Sum32() uint32 { return uint32(r.A)<<16 | uint32(r.B) }

// Sum32 returns the packed checksum of block.
func Sum32(block []byte) uint32 {
	a, b := Block(block)
	return uint32(a)<<16 | uint32(b)
}

// Mask returns the mask that keeps the last n bytes (1..4) of a packed checksum, the part zsync's
// block table stores for rsum_bytes = n. It returns 0 for n < 1 and all ones for n > 4.
func Mask(n int) uint32 {
	switch {
	case n <= 0:
		return 0
	case n >= 4:
		return 0xffffffff
	}
	return 1<<(8*uint(n)) - 1
}
