// Package zsyncfile reads and writes zsync 0.6.2 control files (.zsync), the format the stock
// zsyncmake writes and the stock zsync client reads.
//
// A control file is a text header of "Key: value" lines ended by an empty line, followed by a binary
// block table: for each block of the target file, the last RsumBytes bytes of its rolling checksum
// (see package rollsum) and the first ChecksumBytes bytes of the MD4 of the block, the last block
// padded with zeros to a full block. pkgsync keeps this format byte for byte so that stock zsync
// clients can use pkgsync's files and pkgsync can use zsyncmake's.
//
// The package follows encoding/csv: Read and ReadHeader parse, Write and WriteHeader produce
// zsyncmake's exact layout, and parse failures are *ParseError values naming the line and key and
// wrapping a sentinel error (ErrHeader, ErrTruncated, ErrLength, ...). NewHeader, HashLengths and
// Header.Sum compute what zsyncmake would write for a file, so a File built here is identical to
// zsyncmake's output.
//
// Control files arrive over the network, so Read treats them as hostile: the header is capped at
// MaxHeaderBytes and MaxHeaderLines, every value is range-checked before use, and the block table is
// grown only as its bytes arrive, so a header claiming a petabyte costs nothing. Read accepts only
// what Write can give back unchanged (the fuzz target in package fuzz checks this).
package zsyncfile

import "time"

// Version is the format version pkgsync writes in the "zsync:" header.
const Version = "0.6.2"

// Header is the text part of a control file.
type Header struct {
	Version   string    // value of "zsync:", Version when written by pkgsync
	Filename  string    // "Filename:", the file's base name
	MTime     time.Time // "MTime:", zero when absent
	Blocksize int       // "Blocksize:", a power of two
	Length    int64     // "Length:", the target file's length in bytes

	// "Hash-Lengths: seq_matches,rsum_bytes,checksum_bytes".
	SeqMatches    int // 1 or 2: consecutive blocks that must match before a match is trusted
	RsumBytes     int // 1..4: bytes of the weak sum kept per block (the last ones of the packed a,b)
	ChecksumBytes int // 3..16: bytes of the MD4 kept per block (the first ones)

	URLs []string // "URL:", absolute or relative to the control file's own URL; may repeat or be absent
	SHA1 [20]byte // "SHA-1:", of the whole target file

	// Extra holds the other header lines, in file order: keys zsync 0.6.2 does not know, which the
	// file listed in a Safe line, and Min-Version. Write lists the former in a Safe line again, so
	// that reading and writing a file keeps them.
	Extra []Field
}

// Field is one "Key: value" header line that Header has no field for.
type Field struct{ Key, Value string }

// Block is one record of the block table.
type Block struct {
	Weak   uint32   // packed rolling checksum (a<<16|b) masked to the last RsumBytes bytes
	Strong [16]byte // MD4 of the zero-padded block; only the first ChecksumBytes bytes are kept, the rest zero
}

// File is a whole control file.
type File struct {
	Header
	Blocks []Block // exactly NumBlocks(Length, Blocksize) records
}

// NumBlocks returns how many blocks of size bs cover length bytes.
func NumBlocks(length int64, bs int) int {
	if bs <= 0 || length <= 0 {
		return 0
	}
	return int((length + int64(bs) - 1) / int64(bs))
}
