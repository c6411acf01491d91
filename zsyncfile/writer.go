package zsyncfile

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Write writes f as a control file in zsyncmake's layout (see WriteHeader), followed by its block
// table. It validates f first (see File.Validate) and writes nothing if f is invalid.
func Write(w io.Writer, f *File) error {
	hdr, err := f.appendHeader(make([]byte, 0, 512))
	if err != nil {
		return err
	}
	if err := f.checkBlocks(); err != nil {
		return err
	}
	buf := hdr
	const flushAt = 64 << 10
	for _, b := range f.Blocks {
		buf = f.AppendRecord(buf, b)
		if len(buf) >= flushAt {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("zsync: writing control file for %q: %w", f.Filename, err)
			}
			buf = buf[:0]
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("zsync: writing control file for %q: %w", f.Filename, err)
	}
	return nil
}

// WriteHeader writes the text header of a control file and the empty line that ends it, leaving w
// ready for the block table (see AppendRecord). The lines come in zsyncmake's order: zsync, Safe
// (listing the keys of Extra, when there are any besides Min-Version; zsyncmake puts its Safe line
// here too), Filename, MTime (in UTC, to the second), Blocksize, Length, Hash-Lengths, one URL line
// per URL, SHA-1 (lowercase hex), then the Extra fields in order. Empty Version and Filename and a
// zero MTime are left out. It validates h first (see Header.Validate) and writes nothing if h is
// invalid.
func WriteHeader(w io.Writer, h *Header) error {
	hdr, err := h.appendHeader(nil)
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("zsync: writing header for %q: %w", h.Filename, err)
	}
	return nil
}

// AppendRecord appends the block table record of b to dst and returns the extended slice: the
// last RsumBytes bytes of the big-endian weak sum, then the first ChecksumBytes bytes of the strong
// sum. h must be valid (see Validate).
func (h *Header) AppendRecord(dst []byte, b Block) []byte {
	var weak [4]byte
	binary.BigEndian.PutUint32(weak[:], b.Weak)
	dst = append(dst, weak[4-h.RsumBytes:]...)
	return append(dst, b.Strong[:h.ChecksumBytes]...)
}

// appendHeader validates h and appends its text header, the final empty line included, to dst.
func (h *Header) appendHeader(dst []byte) ([]byte, error) {
	if err := h.checkFields(); err != nil {
		return dst, err
	}
	start := len(dst)
	line := func(key, value string) { dst = append(append(append(append(dst, key...), ": "...), value...), '\n') }
	if h.Version != "" {
		line(keyVersion, h.Version)
	}
	if safe := h.safeKeys(); len(safe) > 0 {
		line(keySafe, strings.Join(safe, " "))
	}
	if h.Filename != "" {
		line(keyFilename, h.Filename)
	}
	if !h.MTime.IsZero() {
		line(keyMTime, h.MTime.UTC().Format(mtimeLayout))
	}
	line(keyBlocksize, strconv.Itoa(h.Blocksize))
	line(keyLength, strconv.FormatInt(h.Length, 10))
	line(keyHashLengths, fmt.Sprintf("%d,%d,%d", h.SeqMatches, h.RsumBytes, h.ChecksumBytes))
	for _, u := range h.URLs {
		line(keyURL, u)
	}
	line(keySHA1, hex.EncodeToString(h.SHA1[:]))
	for _, x := range h.Extra {
		line(x.Key, x.Value)
	}
	dst = append(dst, '\n')

	text := dst[start:]
	if len(text) > MaxHeaderBytes {
		return dst[:start], &fieldError{"", fmt.Errorf("%w: header of %d bytes is over %d", ErrHeader, len(text), MaxHeaderBytes)}
	}
	n := 0
	for l := range bytes.Lines(text) {
		n++
		if len(l) > MaxLineBytes {
			key, _, _ := bytes.Cut(l, []byte(":"))
			return dst[:start], &fieldError{string(key), fmt.Errorf("%w: line of %d bytes is over %d, which zsync cannot read",
				ErrHeader, len(l), MaxLineBytes)}
		}
	}
	if n > MaxHeaderLines {
		return dst[:start], &fieldError{"", fmt.Errorf("%w: header of %d lines is over %d", ErrHeader, n, MaxHeaderLines)}
	}
	return dst, nil
}

// safeKeys lists the distinct keys of Extra that a zsync client must be told it may ignore: all
// but Min-Version, which zsync knows.
func (h *Header) safeKeys() []string {
	var keys []string
	for _, x := range h.Extra {
		if x.Key != keyMinVersion && !slices.Contains(keys, x.Key) {
			keys = append(keys, x.Key)
		}
	}
	return keys
}
