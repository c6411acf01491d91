// Package md4 computes MD4 (RFC 1320), the strong block checksum of zsync 0.6.2.
//
// It lives in its own package because MD4 is the bottleneck of both `pkgsync make` and the delta
// scan: every block of a package is hashed with it. golang.org/x/crypto/md4 allocates a digest per
// call and runs its rounds as table-driven loops; this package has the 48 steps written out with
// constant shifts and message indexes, loads the message words straight from the caller's slice, and
// keeps all state on the stack, so Sum and SumBlock never allocate.
//
// SumBlock exists for zsync's last block, which is hashed as if zero-padded to a full block: it
// feeds the zeros from a stack buffer instead of making a padded copy. AppendBlockSums hashes a run
// of blocks two at a time with their rounds interleaved; one MD4 is a single dependency chain that
// leaves most of a CPU core idle, and two chains fill it (about 1.5x the throughput of Sum).
//
// MD4 is broken as a cryptographic hash; here it only confirms weak-sum matches, and every piece and
// the whole file are verified with SHA-1 afterwards.
package md4

import (
	"encoding/binary"
	"hash"
	"slices"
)

//go:generate go run gen.go

// Size is the length of an MD4 digest in bytes.
const Size = 16

// BlockSize is the block size of MD4's compression function in bytes.
const BlockSize = 64

// Initial chaining values, RFC 1320 section 3.3.
const (
	init0 = 0x67452301
	init1 = 0xefcdab89
	init2 = 0x98badcfe
	init3 = 0x10325476
)

// Sum returns the MD4 digest of data.
func Sum(data []byte) [Size]byte {
	return sumPadded(data, len(data))
}

// SumBlock returns the MD4 digest of block followed by size-len(block) zero bytes, the way zsync
// hashes the short last block of a file, without building the padded copy. If size <= len(block)
// nothing is appended and the result equals Sum(block).
func SumBlock(block []byte, size int) [Size]byte {
	if size < len(block) {
		size = len(block)
	}
	return sumPadded(block, size)
}

// sumPadded hashes data followed by size-len(data) zeros; size >= len(data).
func sumPadded(data []byte, size int) [Size]byte {
	s := [4]uint32{init0, init1, init2, init3}
	full := len(data) &^ (BlockSize - 1)
	blocks(&s, data[:full])
	return finish(&s, data[full:], size-full, uint64(size))
}

// finish completes a digest whose state s covers all but the last rem bytes of a message of size
// bytes. Those rem bytes are tail (shorter than BlockSize) followed by rem-len(tail) zeros.
func finish(s *[4]uint32, tail []byte, rem int, size uint64) [Size]byte {
	// buf holds the rest of the message, then the MD4 padding (0x80, zeros, 64-bit bit length),
	// which may spill into a second chunk.
	var buf [2 * BlockSize]byte
	copy(buf[:], tail)
	if rem >= BlockSize {
		blocks(s, buf[:BlockSize])
		clear(buf[:BlockSize])
		for rem -= BlockSize; rem >= BlockSize; rem -= BlockSize {
			blocks(s, buf[:BlockSize])
		}
	}
	buf[rem] = 0x80
	end := BlockSize
	if rem >= BlockSize-8 {
		end = 2 * BlockSize
	}
	binary.LittleEndian.PutUint64(buf[end-8:end], size<<3)
	blocks(s, buf[:end])
	return digest(s)
}

// AppendBlockSums cuts data into blocks of blockSize bytes and appends the MD4 digest of each block
// to dst, the last block zero-padded to blockSize as zsync does: the strong-sum column of a zsync
// block table. It appends nothing if blockSize < 1. As with SumBlock, the padding zeros are hashed,
// so a short data with a huge blockSize costs as much as a full block.
//
// It hashes two blocks at a time, interleaving their rounds, which is about 1.5 times the speed of
// calling SumBlock per block: MD4 is one long dependency chain, and a single chain leaves most of
// the CPU's execution slots idle. It allocates only to grow dst.
func AppendBlockSums(dst [][Size]byte, data []byte, blockSize int) [][Size]byte {
	if blockSize < 1 {
		return dst
	}
	n := len(data) / blockSize
	if len(data)%blockSize != 0 {
		n++
	}
	dst = slices.Grow(dst, n)
	full := blockSize &^ (BlockSize - 1)
	for len(data) >= blockSize && len(data)-blockSize >= blockSize {
		p, r := data[:blockSize], data[blockSize:2*blockSize]
		s := [4]uint32{init0, init1, init2, init3}
		t := s
		blocks2(&s, &t, p[:full], r[:full])
		dst = append(dst,
			finish(&s, p[full:], blockSize-full, uint64(blockSize)),
			finish(&t, r[full:], blockSize-full, uint64(blockSize)))
		data = data[2*blockSize:]
	}
	for len(data) > 0 {
		n := min(len(data), blockSize)
		dst = append(dst, SumBlock(data[:n], blockSize))
		data = data[n:]
	}
	return dst
}

func digest(s *[4]uint32) [Size]byte {
	var out [Size]byte
	binary.LittleEndian.PutUint32(out[0:], s[0])
	binary.LittleEndian.PutUint32(out[4:], s[1])
	binary.LittleEndian.PutUint32(out[8:], s[2])
	binary.LittleEndian.PutUint32(out[12:], s[3])
	return out
}

// Digest is a streaming MD4 computation; it implements hash.Hash. Its zero value is not ready for
// use: call New or Reset first. Digest holds no pointers, so a Digest kept in a local variable or
// a struct field costs no allocation.
type Digest struct {
	s   [4]uint32
	buf [BlockSize]byte
	nx  int    // bytes buffered in buf
	len uint64 // bytes written in total
}

var _ hash.Hash = (*Digest)(nil)

// New returns a Digest ready to hash.
func New() *Digest {
	d := new(Digest)
	d.Reset()
	return d
}

// Reset returns d to its initial state.
func (d *Digest) Reset() {
	d.s = [4]uint32{init0, init1, init2, init3}
	d.nx = 0
	d.len = 0
}

// Size returns the digest length, 16.
func (d *Digest) Size() int { return Size }

// BlockSize returns MD4's block size, 64.
func (d *Digest) BlockSize() int { return BlockSize }

// Write adds p to the hashed data. It never returns an error.
func (d *Digest) Write(p []byte) (int, error) {
	n := len(p)
	d.len += uint64(n)
	if d.nx > 0 {
		c := copy(d.buf[d.nx:], p)
		d.nx += c
		p = p[c:]
		if d.nx < BlockSize {
			return n, nil
		}
		blocks(&d.s, d.buf[:])
		d.nx = 0
	}
	if full := len(p) &^ (BlockSize - 1); full > 0 {
		blocks(&d.s, p[:full])
		p = p[full:]
	}
	d.nx = copy(d.buf[:], p)
	return n, nil
}

// Sum appends the digest of the data written so far to b and returns the result; d is unchanged.
func (d *Digest) Sum(b []byte) []byte {
	sum := d.Sum16()
	return append(b, sum[:]...)
}

// Sum16 returns the digest of the data written so far as an array, without allocating; d is
// unchanged.
func (d *Digest) Sum16() [Size]byte {
	s := d.s
	return finish(&s, d.buf[:d.nx], d.nx, d.len)
}
