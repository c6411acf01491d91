package zsyncfile

import (
	"errors"
	"fmt"
)

// Errors a malformed or unsupported control file can give, wrapped in a *ParseError by Read and
// ReadHeader and in a plain error by Validate, Write and WriteHeader. Test them with errors.Is.
var (
	ErrHeader       = errors.New("malformed header")                      // a line that is not "Key: value", too long, duplicated, ...
	ErrTruncated    = errors.New("unexpected end of file")                // EOF inside the header or the block table
	ErrTrailingData = errors.New("data after the block table")            // more bytes than the table needs
	ErrMissingKey   = errors.New("mandatory key missing")                 // no Blocksize, Length, Hash-Lengths or SHA-1
	ErrUnknownKey   = errors.New("unknown key not listed in Safe")        // zsync refuses these too
	ErrUnsupported  = errors.New("not supported")                         // gzip look-inside mode, Min-Version too new, zsync 0.0.x
	ErrBlocksize    = errors.New("bad block size")                        // not a power of two in MinBlocksize..MaxBlocksize
	ErrLength       = errors.New("bad length")                            // negative, over MaxLength, or over MaxBlocks blocks
	ErrHashLengths  = errors.New("bad Hash-Lengths")                      // not seq,rsum,checksum in 1..2, 1..4, 3..16
	ErrSHA1         = errors.New("bad SHA-1")                             // not 40 hex digits
	ErrMTime        = errors.New("bad MTime")                             // not an RFC 2822 date zsync can read
	ErrFilename     = errors.New("bad Filename")                          // a path rather than a base name
	ErrBlocks       = errors.New("block table does not match the header") // Write: wrong count, or bits beyond the hash lengths
)

// A ParseError is returned for a control file that Read or ReadHeader cannot accept. Line is the
// 1-based header line the problem was found on (for a missing key, the empty line that ends the
// header), or 0 for a problem in the block table; Key is the header key concerned, if any.
type ParseError struct {
	Line int    // 1-based header line, 0 for the block table
	Key  string // header key, "" when the line has none
	Err  error  // wraps one of the Err* sentinels
}

func (e *ParseError) Error() string {
	switch {
	case e.Line > 0 && e.Key != "":
		return fmt.Sprintf("zsync: line %d (%s): %v", e.Line, e.Key, e.Err)
	case e.Line > 0:
		return fmt.Sprintf("zsync: line %d: %v", e.Line, e.Err)
	case e.Key != "":
		return fmt.Sprintf("zsync: %s: %v", e.Key, e.Err)
	default:
		return fmt.Sprintf("zsync: %v", e.Err)
	}
}

func (e *ParseError) Unwrap() error { return e.Err }
