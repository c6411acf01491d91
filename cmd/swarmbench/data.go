package main

import (
	"math/rand/v2"
	"sort"
)

// versions returns a pseudo-random v1 of size bytes and a v2 made from it by scattered edits
// (overwrites, insertions and deletions of 4-60 KiB, about one per MiB), and the number of bytes
// of v2 that are new: what overwrites and insertions wrote. The same size and seed always give
// the same bytes, so that every run and every machine fans out the same package.
func versions(size int64, seed uint64) (v1, v2 []byte, changed int64) {
	var key [32]byte
	for i := range key {
		key[i] = byte(seed >> (8 * (i % 8)))
	}
	src := rand.NewChaCha8(key)
	v1 = make([]byte, size)
	src.Read(v1)
	r := rand.New(rand.NewPCG(seed, 0x5eed))

	edits := max(4, int(size>>20))
	const maxEdit = 60 << 10
	// Positions of the edits, sorted and at least 2*maxEdit apart so that they never overlap.
	span := size - 2*maxEdit
	pos := make([]int64, 0, edits)
	if span > 0 {
		for len(pos) < edits {
			pos = append(pos, maxEdit+r.Int64N(span))
		}
	}
	sort.Slice(pos, func(i, j int) bool { return pos[i] < pos[j] })

	v2 = make([]byte, 0, size+int64(edits)*maxEdit)
	var at int64 // next byte of v1 to copy
	for i, p := range pos {
		if p < at+2*maxEdit {
			continue
		}
		v2 = append(v2, v1[at:p]...)
		n := int64(4<<10 + r.IntN(maxEdit-4<<10))
		fresh := func() {
			buf := make([]byte, n)
			src.Read(buf)
			v2 = append(v2, buf...)
			changed += n
		}
		switch i % 3 {
		case 0: // overwrite n bytes
			fresh()
			at = p + n
		case 1: // insert n bytes
			fresh()
			at = p
		default: // delete n bytes
			at = p + n
		}
	}
	v2 = append(v2, v1[at:]...)
	return v1, v2, changed
}
