package zsyncfile

import (
	"math"
	"time"

	"github.com/pkgsync/pkgsync/internal/md4"
	"github.com/pkgsync/pkgsync/rollsum"
)

// DefaultBlocksize returns the block size zsyncmake picks for a file of length bytes when it is not
// given -b: 2048 below 100,000,000 bytes, 4096 from there on.
func DefaultBlocksize(length int64) int {
	if length < 100000000 {
		return 2048
	}
	return 4096
}

// HashLengths returns the Hash-Lengths zsyncmake 0.6.2 writes for a file of length bytes cut into
// blocks of blocksize bytes: how many consecutive blocks must match (seqMatches), and how many
// bytes of the weak and strong sum each block record keeps.
//
// The arithmetic is zsyncmake's, in the same order and in float64 like its C doubles, so that the
// results agree at the integer boundaries too (a file of exactly one 2048-byte block gets 1,2,4, not
// 1,2,5):
//
//	seq_matches    = len > bs ? 2 : 1
//	rsum_bytes     = ceil(((ln len + ln bs) / ln 2 - 8.6) / seq_matches / 8), clamped to 2..4
//	checksum_bytes = max(ceil((20 + (ln len + ln(1 + len/bs)) / ln 2) / seq_matches / 8),
//	                     trunc((7.9 + (20 + ln(1 + len/bs) / ln 2)) / 8))
//
// where len/bs is integer division. The rsum length grows with the file because a weak-sum
// collision costs an MD4 computation; the checksum length grows with the number of blocks that could
// falsely match. seq_matches = 2 halves both, since two neighbouring blocks must then agree.
// For an empty file zsyncmake's ln 0 = -Inf falls through to the clamps, giving 1,2,3, which
// HashLengths returns too. For length < 0 or blocksize < 1 it returns zeros.
func HashLengths(length int64, blocksize int) (seqMatches, rsumBytes, checksumBytes int) {
	if length < 0 || blocksize < 1 {
		return 0, 0, 0
	}
	bs := int64(blocksize)
	seqMatches = 1
	if length > bs {
		seqMatches = 2
	}
	ln2 := math.Log(2)
	lnBlocks := math.Log(float64(1 + length/bs))
	// checksum_len2 never depends on ln len, so it is defined for the empty file as well.
	checksum2 := int((7.9 + (20 + lnBlocks/ln2)) / 8)
	if length == 0 {
		// zsyncmake converts ceil(-Inf) to int, which is INT_MIN on amd64; the clamps then decide.
		return seqMatches, 2, checksum2
	}
	lnLen := math.Log(float64(length))
	seq := float64(seqMatches)
	rsumBytes = int(math.Ceil(((lnLen+math.Log(float64(bs)))/ln2 - 8.6) / seq / 8))
	rsumBytes = min(max(rsumBytes, 2), 4)
	checksumBytes = int(math.Ceil((20 + (lnLen+lnBlocks)/ln2) / seq / 8))
	checksumBytes = max(checksumBytes, checksum2)
	return seqMatches, rsumBytes, checksumBytes
}

// NewHeader returns the header zsyncmake would write for a file of length bytes named filename
// (a base name, no directory) last modified at mtime (the zero time for none): Version, the block
// size (DefaultBlocksize(length) when blocksize <= 0) and the Hash-Lengths for it. MTime is kept to
// the second, in UTC, as the file stores it. The caller fills in URLs and SHA1.
func NewHeader(filename string, length int64, blocksize int, mtime time.Time) Header {
	if blocksize <= 0 {
		blocksize = DefaultBlocksize(length)
	}
	if !mtime.IsZero() {
		mtime = mtime.Truncate(time.Second).UTC()
	}
	seq, rsum, checksum := HashLengths(length, blocksize)
	return Header{
		Version:       Version,
		Filename:      filename,
		MTime:         mtime,
		Blocksize:     blocksize,
		Length:        length,
		SeqMatches:    seq,
		RsumBytes:     rsum,
		ChecksumBytes: checksum,
	}
}

// Sum returns the block table record for one block of the target file: block is h.Blocksize bytes,
// or fewer for the last block, which is hashed as if padded with zeros to h.Blocksize as zsyncmake
// does. Only the first h.Blocksize bytes of a longer block are used. The weak sum is masked to
// h.RsumBytes and the strong sum cut to h.ChecksumBytes (the rest zero), so the result compares
// equal to the record Read returns for the same block.
func (h *Header) Sum(block []byte) Block {
	bs := h.Blocksize
	if len(block) > bs {
		block = block[:bs]
	}
	// The weak sum of the padded block, without the padding: the zeros add nothing to a, and every
	// byte's weight in b grows by the number of zeros, pad*a in all.
	a, b := rollsum.Block(block)
	b += uint16(bs-len(block)) * a
	out := Block{
		Weak:   (uint32(a)<<16 | uint32(b)) & rollsum.Mask(h.RsumBytes),
		Strong: md4.SumBlock(block, bs),
	}
	if n := h.ChecksumBytes; n >= 0 && n < len(out.Strong) {
		clear(out.Strong[n:])
	}
	return out
}
