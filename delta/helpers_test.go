package delta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/pkgsync/pkgsync/internal/md4"
	"github.com/pkgsync/pkgsync/rollsum"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// hashLengths returns zsyncmake's Hash-Lengths for a file of length bytes at block size bs; seq
// overrides seq_matches when non-zero (the other two follow from it by the same formulas).
func hashLengths(length int64, bs, seq int) (seqMatches, rsum, csum int) {
	l, b := float64(length), float64(bs)
	seqMatches = 1
	if length > int64(bs) {
		seqMatches = 2
	}
	if seq != 0 {
		seqMatches = seq
	}
	sm := float64(seqMatches)
	rsum = int(math.Ceil(((math.Log(l)+math.Log(b))/math.Log(2) - 8.6) / sm / 8))
	rsum = min(max(rsum, 2), 4)
	perBlock := float64(length / int64(bs))
	csum = int(math.Ceil((20 + (math.Log(l)+math.Log(1+perBlock))/math.Log(2)) / sm / 8))
	csum = max(csum, int((7.9+20+math.Log(1+perBlock)/math.Log(2))/8))
	csum = min(csum, 16)
	return seqMatches, rsum, csum
}

// makeFile builds the control file of target as zsyncmake does: each block zero-padded to bs,
// weak = packed rolling sum masked to rsum bytes, strong = first csum bytes of MD4.
func makeFile(target []byte, bs, seq int) *zsyncfile.File {
	seq, rsum, csum := hashLengths(int64(len(target)), bs, seq)
	f := &zsyncfile.File{Header: zsyncfile.Header{
		Version: zsyncfile.Version, Filename: "target", Blocksize: bs, Length: int64(len(target)),
		SeqMatches: seq, RsumBytes: rsum, ChecksumBytes: csum,
	}}
	pad := make([]byte, bs)
	for off := 0; off < len(target); off += bs {
		clear(pad[copy(pad, target[off:min(off+bs, len(target))]):])
		b := zsyncfile.Block{Weak: rollsum.Sum32(pad) & rollsum.Mask(rsum), Strong: md4.Sum(pad)}
		clear(b.Strong[csum:])
		f.Blocks = append(f.Blocks, b)
	}
	return f
}

// randBytes returns n bytes from a generator seeded with seed.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n]
}

// cat concatenates byte slices into a new one.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// memFile is an in-memory io.ReaderAt and io.WriterAt that records the ranges written.
type memFile struct {
	mu     sync.Mutex
	b      []byte
	writes []Range
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.NewReader(m.b).ReadAt(p, off)
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if need := int(off) + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	copy(m.b[off:], p)
	m.writes = append(m.writes, Range{Off: off, Len: int64(len(p))})
	return len(p), nil
}

// srcOf makes a Source over data.
func srcOf(name string, data []byte) Source {
	return Source{Name: name, R: bytes.NewReader(data), Size: int64(len(data))}
}

// oracle computes by brute force (block sizes of at least 8) which target blocks zsync's rules allow to be found in olds:
// with seq 1 every block whose content occurs at any offset of a zero-padded old file; with seq
// 2 every block whose content occurs right before or right after (at the next block offset) the
// content of its successor or predecessor, and the last block alone. A block counts when any
// block with the same content does (a match fills all positions of the content).
func oracle(target []byte, bs, seq int, olds ...[]byte) []bool {
	n := (len(target) + bs - 1) / bs
	content := make([]string, n)
	pos := map[string][]int{}
	prefix := map[uint64]bool{} // first 8 bytes of each block, to skip most map lookups
	for i := range n {
		b := make([]byte, bs)
		copy(b, target[i*bs:min((i+1)*bs, len(target))])
		content[i] = string(b)
		pos[content[i]] = append(pos[content[i]], i)
		prefix[binary.LittleEndian.Uint64(b)] = true
	}
	ok := map[string]bool{}
	for _, old := range olds {
		// Windows start inside the old file and read on into zeros, as zsync pads it.
		padded := append(append([]byte(nil), old...), make([]byte, 2*bs)...)
		for p := range old {
			if !prefix[binary.LittleEndian.Uint64(padded[p:])] {
				continue
			}
			c := string(padded[p : p+bs])
			for _, i := range pos[c] {
				switch {
				case seq == 1, i == n-1:
					ok[c] = true
				case string(padded[p+bs:p+2*bs]) == content[i+1]:
					ok[c], ok[content[i+1]] = true, true
				}
			}
		}
	}
	want := make([]bool, n)
	for i := range n {
		want[i] = ok[content[i]]
	}
	return want
}

// found returns which blocks p found.
func found(p *Plan) []bool {
	out := make([]bool, len(p.Blocks))
	for i, l := range p.Blocks {
		out[i] = l.Src >= 0
	}
	return out
}

// diffFound describes where got and want differ, or returns "".
func diffFound(got, want []bool) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d blocks, want %d", len(got), len(want))
	}
	var extra, lost []int
	for i := range got {
		switch {
		case got[i] && !want[i]:
			extra = append(extra, i)
		case !got[i] && want[i]:
			lost = append(lost, i)
		}
	}
	if extra == nil && lost == nil {
		return ""
	}
	return fmt.Sprintf("found but not expected: %v; expected but not found: %v", trim(extra), trim(lost))
}

func trim(s []int) []int {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

// checkPlan checks the invariants of p against the target: Apply writes exactly the target's
// bytes for found blocks and nothing for missing ones, Missing and the found blocks partition the
// file, and filling Missing from the target completes it.
func checkPlan(t *testing.T, p *Plan, target []byte, srcs []Source) {
	t.Helper()
	length := int64(len(target))
	if p.Length != length || p.NumBlocks != len(p.Blocks) {
		t.Fatalf("plan length %d, %d/%d blocks; want length %d", p.Length, p.NumBlocks, len(p.Blocks), length)
	}
	const fill = 0xEE
	out := &memFile{b: bytes.Repeat([]byte{fill}, len(target))}
	for i, s := range srcs {
		if s.InPlace {
			// Apply's dst is the InPlace file itself.
			m := s.R.(*memFile)
			m.mu.Lock()
			out.b = append([]byte(nil), m.b...)
			m.mu.Unlock()
			if len(out.b) < len(target) {
				out.b = append(out.b, bytes.Repeat([]byte{fill}, len(target)-len(out.b))...)
			}
			out.b = out.b[:len(target)]
			srcs = append([]Source(nil), srcs...)
			srcs[i].R = &memFile{b: append([]byte(nil), m.b...)}
		}
	}
	if err := p.Apply(t.Context(), out, srcs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	covered := make([]bool, len(target))
	for i := range p.Blocks {
		off, n := p.blockRange(i)
		if p.Found(i) {
			if !bytes.Equal(out.b[off:off+n], target[off:off+n]) {
				t.Fatalf("block %d (from %+v): Apply wrote wrong bytes", i, p.Blocks[i])
			}
			for k := off; k < off+n; k++ {
				covered[k] = true
			}
		}
	}
	for _, w := range out.writes {
		for k := w.Off; k < w.Off+w.Len; k++ {
			if !covered[k] {
				t.Fatalf("Apply wrote [%d,%d) over byte %d of a missing block", w.Off, w.Off+w.Len, k)
			}
		}
	}
	var missing int64
	prevEnd := int64(-1)
	for _, r := range p.Missing() {
		if r.Len <= 0 || r.Off <= prevEnd || r.Off+r.Len > length {
			t.Fatalf("Missing range %+v after end %d: empty, unmerged, unordered or past the end %d", r, prevEnd, length)
		}
		for k := r.Off; k < r.Off+r.Len; k++ {
			if covered[k] {
				t.Fatalf("Missing range %+v overlaps found byte %d", r, k)
			}
			covered[k] = true
		}
		copy(out.b[r.Off:], target[r.Off:r.Off+r.Len])
		missing += r.Len
		prevEnd = r.Off + r.Len
	}
	for k, c := range covered {
		if !c {
			t.Fatalf("byte %d is neither found nor missing", k)
		}
	}
	if !bytes.Equal(out.b, target) {
		t.Fatal("Apply + Missing did not rebuild the target")
	}
	if p.MissingBytes() != missing || p.ReusedBytes()+missing != length {
		t.Fatalf("ReusedBytes %d + MissingBytes %d (ranges sum %d) != length %d", p.ReusedBytes(), p.MissingBytes(), missing, length)
	}
	var bySrc int64
	for i := range srcs {
		bySrc += p.ReusedFrom(i)
	}
	if bySrc != p.ReusedBytes() {
		t.Fatalf("ReusedFrom sums to %d, ReusedBytes %d", bySrc, p.ReusedBytes())
	}
	// Pieces of an awkward size: Have agrees with MissingIn and MissingIn with Missing.
	piece := int64(p.Blocksize)*3 + 17
	for off := int64(0); off < length; off += piece {
		in := p.MissingIn(off, piece)
		if p.Have(off, piece) != (len(in) == 0) {
			t.Fatalf("Have(%d,%d) = %v but MissingIn = %v", off, piece, p.Have(off, piece), in)
		}
		var want []Range
		for _, r := range p.Missing() {
			lo, hi := max(r.Off, off), min(r.Off+r.Len, off+piece)
			if lo < hi {
				want = append(want, Range{Off: lo, Len: hi - lo})
			}
		}
		if fmt.Sprint(in) != fmt.Sprint(want) {
			t.Fatalf("MissingIn(%d,%d) = %v, want %v", off, piece, in, want)
		}
	}
}
