// Package versions makes deterministic package versions for tests, benchmarks and the demo:
// pseudo-random data (so that nothing but the edits is shared between versions) and a new
// release made from an old one by scattered insertions, deletions and overwrites.
//
// It has its own home because the demo, the benchmarks and several test packages all need the
// same pairs, and a pair must be the same on every machine for figures to be comparable.
package versions

import "math/rand/v2"

// Random returns n pseudo-random bytes determined by seed.
func Random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Edit returns a new version of v1 with edits changes spread evenly over it, cycling through an
// insertion of new bytes, a deletion, and an overwrite, each of minLen to maxLen bytes. v1 is not
// modified.
func Edit(v1 []byte, seed uint64, edits, minLen, maxLen int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]byte, 0, len(v1)+edits*maxLen)
	step := len(v1) / (edits + 1)
	pos := 0
	span := max(maxLen-minLen, 1)
	for e := 0; e < edits; e++ {
		next := max((e+1)*step, pos)
		if next > len(v1) {
			break
		}
		out = append(out, v1[pos:next]...)
		n := minLen + r.IntN(span)
		switch e % 3 {
		case 0: // insert
			out = append(out, Random(seed+uint64(e)+1, n)...)
			pos = next
		case 1: // delete
			pos = min(next+n, len(v1))
		default: // overwrite
			out = append(out, Random(seed+uint64(e)+1000, n)...)
			pos = min(next+n, len(v1))
		}
	}
	return append(out, v1[pos:]...)
}
