package zsyncfile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Read reads a whole control file from r: the header (see ReadHeader), then exactly
// NumBlocks(Length, Blocksize) block records. A short table and any byte after the table are
// errors (zsync 0.6.2 ignores what follows the table). The table is read in chunks and grown only as records arrive, so a header claiming a huge
// Length costs nothing until the bytes are really there.
//
// Errors in the content are *ParseError values wrapping one of the Err* sentinels; errors from r
// are returned wrapped, unchanged otherwise.
func Read(r io.Reader) (*File, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	h, err := ReadHeader(br)
	if err != nil {
		return nil, err
	}
	blocks, err := readTable(br, &h)
	if err != nil {
		return nil, err
	}
	return &File{Header: h, Blocks: blocks}, nil
}

// ReadHeader reads and checks the text header of a control file from r, up to and including the
// empty line that ends it, leaving r at the first byte of the block table.
//
// It accepts what zsync 0.6.2 accepts, with these differences:
//   - Blocksize, Length, Hash-Lengths and SHA-1 are required (zsync defaults Hash-Lengths to
//     1,4,16 and does without a missing or malformed SHA-1). A file without URL is accepted with URLs empty: the caller
//     decides. Length 0 is accepted, though zsync refuses it.
//   - Numbers must be plain decimals, and every value must be in range (see the limits and
//     Header.Validate): Blocksize a power of two from MinBlocksize to MaxBlocksize, Hash-Lengths
//     within 1..2, 1..4, 3..16, a Filename a base name, an MTime a date zsync's two formats can
//     express (zsync ignores one it cannot read).
//   - Only URL and the keys kept in Extra may repeat; zsync keeps the last value.
//   - A key zsync does not know must be listed, as a whole word, in a Safe line before it (zsync
//     takes any substring of the last Safe line), and is then kept in Extra. Safe may appear once.
//   - A Min-Version newer than Version is refused, as zsync refuses one newer than its own; an
//     older one is kept in Extra. A "zsync:" version 0.0.x is refused (zsync refuses 0.0.4); any
//     newer one is accepted, as zsync does, leaving incompatible changes to Min-Version and Safe.
//   - The gzip look-inside keys (Z-URL, Z-Map2, Recompress, Z-Filename) are refused with
//     ErrUnsupported, even when listed in Safe.
//   - The header may not exceed MaxHeaderLines lines or MaxHeaderBytes bytes, nor be one that
//     Write could not give back within those limits.
func ReadHeader(r *bufio.Reader) (Header, error) {
	p := headerParser{seen: make(map[string]int)}
	for {
		line, err := p.nextLine(r)
		if err != nil {
			return Header{}, err
		}
		if len(line) == 1 { // "\n": end of the header
			break
		}
		if err := p.parseLine(line); err != nil {
			return Header{}, err
		}
	}
	if err := p.finish(); err != nil {
		return Header{}, err
	}
	return p.h, nil
}

// headerParser holds the state of ReadHeader.
type headerParser struct {
	h     Header
	line  int             // number of the current line, from 1
	bytes int             // header bytes read so far
	seen  map[string]int  // line of each single-valued key read so far
	safe  map[string]bool // words of the Safe line
}

// nextLine returns the next header line with its newline. The slice is valid until the next read.
func (p *headerParser) nextLine(r *bufio.Reader) ([]byte, error) {
	p.line++
	if p.line > MaxHeaderLines {
		return nil, &ParseError{Line: p.line, Err: fmt.Errorf("%w: header has more than %d lines", ErrHeader, MaxHeaderLines)}
	}
	var long []byte // a line longer than r's buffer, which ReadSlice returns in pieces
	for {
		chunk, err := r.ReadSlice('\n')
		n := len(long) + len(chunk)
		if n > MaxLineBytes {
			return nil, &ParseError{Line: p.line, Err: fmt.Errorf("%w: line longer than %d bytes, which zsync cannot read", ErrHeader, MaxLineBytes)}
		}
		if p.bytes+n > MaxHeaderBytes {
			return nil, &ParseError{Line: p.line, Err: fmt.Errorf("%w: header longer than %d bytes", ErrHeader, MaxHeaderBytes)}
		}
		switch {
		case err == nil:
			p.bytes += n
			if long != nil {
				return append(long, chunk...), nil
			}
			return chunk, nil
		case errors.Is(err, bufio.ErrBufferFull):
			long = append(long, chunk...)
		case errors.Is(err, io.EOF):
			return nil, &ParseError{Line: p.line, Err: fmt.Errorf("%w: header not ended by an empty line", ErrTruncated)}
		default:
			return nil, fmt.Errorf("zsync: reading header line %d: %w", p.line, err)
		}
	}
}

// parseLine parses one "Key: value\n" line into p.h.
func (p *headerParser) parseLine(raw []byte) error {
	if bytes.IndexByte(raw, 0) >= 0 {
		return &ParseError{Line: p.line, Err: fmt.Errorf("%w: NUL byte in header", ErrHeader)}
	}
	// zsync strips any mix of trailing newlines, CRs and spaces, then needs "Key: value".
	text := strings.TrimRight(string(raw), "\n\r ")
	key, value, ok := strings.Cut(text, ":")
	if !ok || !strings.HasPrefix(value, " ") {
		return &ParseError{Line: p.line, Err: fmt.Errorf("%w: %q is not a \"Key: value\" line", ErrHeader, text)}
	}
	value = value[1:]
	fail := func(err error) error { return &ParseError{Line: p.line, Key: key, Err: err} }

	switch key {
	case keyVersion, keyFilename, keyMTime, keyBlocksize, keyLength, keyHashLengths, keySHA1, keySafe:
		if first, dup := p.seen[key]; dup {
			return fail(fmt.Errorf("%w: repeats line %d", ErrHeader, first))
		}
		p.seen[key] = p.line
	}

	h := &p.h
	switch key {
	case keyVersion:
		if err := checkVersion(value); err != nil {
			return fail(err)
		}
		h.Version = value
	case keyMinVersion:
		if err := checkMinVersion(value); err != nil {
			return fail(err)
		}
		h.Extra = append(h.Extra, Field{key, value})
	case keyFilename:
		if err := checkFilename(value); err != nil {
			return fail(err)
		}
		h.Filename = value
	case keyMTime:
		t, err := parseMTime(value)
		if err != nil {
			return fail(err)
		}
		h.MTime = t
	case keyBlocksize:
		bs, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fail(fmt.Errorf("%w: %q is not a decimal number", ErrBlocksize, value))
		}
		if err := checkBlocksize(bs); err != nil {
			return fail(err)
		}
		h.Blocksize = int(bs)
	case keyLength:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fail(fmt.Errorf("%w: %q is not a decimal number", ErrLength, value))
		}
		if err := checkLength(n, 0); err != nil {
			return fail(err)
		}
		h.Length = n
	case keyHashLengths:
		seq, rsum, checksum, err := parseHashLengths(value)
		if err != nil {
			return fail(err)
		}
		h.SeqMatches, h.RsumBytes, h.ChecksumBytes = seq, rsum, checksum
	case keyURL:
		h.URLs = append(h.URLs, value)
	case keySHA1:
		if len(value) != 2*len(h.SHA1) {
			return fail(fmt.Errorf("%w: %q is not %d hex digits", ErrSHA1, value, 2*len(h.SHA1)))
		}
		if _, err := hex.Decode(h.SHA1[:], []byte(value)); err != nil {
			return fail(fmt.Errorf("%w: %q is not %d hex digits", ErrSHA1, value, 2*len(h.SHA1)))
		}
	case keySafe:
		p.safe = make(map[string]bool)
		for _, k := range strings.Fields(value) {
			p.safe[k] = true
		}
	default:
		if gzipKeys[key] {
			return fail(errGzip)
		}
		if !p.safe[key] {
			return fail(fmt.Errorf("%w: zsync 0.6.2 refuses it too", ErrUnknownKey))
		}
		h.Extra = append(h.Extra, Field{key, value})
	}
	return nil
}

// finish checks what needs the whole header: the mandatory keys and the number of blocks.
func (p *headerParser) finish() error {
	for _, key := range []string{keyBlocksize, keyLength, keyHashLengths, keySHA1} {
		if _, ok := p.seen[key]; !ok {
			return &ParseError{Line: p.line, Key: key, Err: ErrMissingKey}
		}
	}
	if err := checkLength(p.h.Length, p.h.Blocksize); err != nil {
		return &ParseError{Line: p.seen[keyLength], Key: keyLength, Err: err}
	}
	// Write must be able to give the header back. Every field is valid by now, and Write never
	// lengthens a line except MTime (a missing weekday, a one-digit day), by a few bytes; that
	// can still push a header at the limit over MaxHeaderBytes.
	if _, err := p.h.appendHeader(nil); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			err = fe.err
		}
		return &ParseError{Line: p.line, Err: err}
	}
	return nil
}

// parseMTime parses an MTime value the ways zsync does, and refuses what Write could not give back.
func parseMTime(value string) (time.Time, error) {
	for _, layout := range mtimeParseLayouts {
		t, err := time.Parse(layout, value)
		if err != nil {
			continue
		}
		t = t.UTC()
		if err := checkMTime(t); err != nil {
			return time.Time{}, err
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: %q is not like %q", ErrMTime, value, mtimeLayout)
}

// parseHashLengths parses "seq_matches,rsum_bytes,checksum_bytes".
func parseHashLengths(value string) (seq, rsum, checksum int, err error) {
	parts := strings.Split(value, ",")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("%w: %q is not three numbers", ErrHashLengths, value)
	}
	var n [3]int
	for i, s := range parts {
		if n[i], err = strconv.Atoi(s); err != nil {
			return 0, 0, 0, fmt.Errorf("%w: %q is not three numbers", ErrHashLengths, value)
		}
	}
	if err := checkHashLengths(n[0], n[1], n[2]); err != nil {
		return 0, 0, 0, err
	}
	return n[0], n[1], n[2], nil
}

// tableChunk is how many records readTable reads at once, and the first capacity of the table.
const tableChunk = 4096

// readTable reads the block table that follows h, then makes sure nothing follows it. The slice
// doubles as records arrive, up to the NumBlocks the header claims, so memory follows the bytes
// actually read.
func readTable(r *bufio.Reader, h *Header) ([]Block, error) {
	n := NumBlocks(h.Length, h.Blocksize)
	rec := h.RsumBytes + h.ChecksumBytes
	var blocks []Block
	if n > 0 {
		blocks = make([]Block, 0, min(n, tableChunk))
	}
	buf := make([]byte, min(n, tableChunk)*rec)
	for len(blocks) < n {
		chunk := buf[:min(n-len(blocks), tableChunk)*rec]
		got, err := io.ReadFull(r, chunk)
		if k := got / rec; k > 0 {
			if len(blocks)+k > cap(blocks) {
				blocks = slices.Grow(blocks, min(n, max(2*cap(blocks), len(blocks)+k))-len(blocks))
			}
			start := len(blocks)
			blocks = blocks[:start+k]
			for i := range k {
				h.decodeRecord(&blocks[start+i], chunk[i*rec:(i+1)*rec])
			}
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil, &ParseError{Err: fmt.Errorf("%w: block table ends after %d of %d records (%d bytes each)",
				ErrTruncated, len(blocks), n, rec)}
		case err != nil:
			return nil, fmt.Errorf("zsync: reading block table at record %d of %d: %w", len(blocks), n, err)
		}
	}
	switch _, err := r.ReadByte(); {
	case err == nil:
		return nil, &ParseError{Err: fmt.Errorf("%w: more than %d records of %d bytes", ErrTrailingData, n, rec)}
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("zsync: reading past the block table: %w", err)
	}
	return blocks, nil
}

// DecodeRecord returns the block of one table record of h.RsumBytes+h.ChecksumBytes bytes, as
// AppendRecord writes it; rec must be that long.
func (h *Header) DecodeRecord(rec []byte) Block {
	var b Block
	h.decodeRecord(&b, rec)
	return b
}

// decodeRecord decodes one table record of h.RsumBytes+h.ChecksumBytes bytes into b, whose Strong
// must be zero.
func (h *Header) decodeRecord(b *Block, rec []byte) {
	var weak [4]byte
	copy(weak[4-h.RsumBytes:], rec)
	b.Weak = binary.BigEndian.Uint32(weak[:])
	copy(b.Strong[:], rec[h.RsumBytes:])
}
