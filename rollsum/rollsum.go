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

// Rollsum is the state of a rolling checksum over a window of fixed size. The zero value is a sum over
// an empty window; use New to start one over a block.
type Rollsum struct {
	A, B uint16
	n    uint16 // block size mod 2^16, the multiplier of the outgoing byte
}

// New returns the checksum of block; len(block) is the window size for Roll.
func New(block []byte) Rollsum {
	a, b := Block(block)
	return Rollsum{A: a, B: b, n: uint16(len(block))}
}

// Block returns the two sums of block without the rolling state.
func Block(block []byte) (a, b uint16) {
	// Sums are computed in uint32 and folded only at the end: the wraparound of uint16 arithmetic
	// is the same mod 2^16, so this is just a faster way to write the definition.
	var sa, sb uint32
	n := uint32(len(block))
	for i, c := range block {
		sa += uint32(c)
		sb += (n - uint32(i)) * uint32(c)
	}
	return uint16(sa), uint16(sb)
}

// Roll slides the window by one byte: out leaves at the front, in enters at the back.
func (r *Rollsum) Roll(out, in byte) {
	r.A += uint16(in) - uint16(out)
	r.B += r.A - r.n*uint16(out)
}

// Sum32 returns the checksum as zsync lays it out: a in the high half, b in the low half.
func (r *Rollsum) Sum32() uint32 { return uint32(r.A)<<16 | uint32(r.B) }

// Sum32 returns the packed checksum of block.
func Sum32(block []byte) uint32 {
	a, b := Block(block)
	return uint32(a)<<16 | uint32(b)
}

// Mask returns the mask that keeps the last n bytes (1..4) of a packed checksum, the part zsync's
// block table stores for rsum_bytes = n.
func Mask(n int) uint32 {
	if n >= 4 {
		return 0xffffffff
	}
	return 1<<(8*uint(n)) - 1
}
