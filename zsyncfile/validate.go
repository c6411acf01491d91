package zsyncfile

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits on what Read accepts and Write produces. They bound the work and memory a hostile control
// file can cause and keep pkgsync's files readable by the stock zsync 0.6.2 client.
const (
	// MinBlocksize and MaxBlocksize bound Blocksize, which must also be a power of two. zsyncmake
	// takes any power of two for -b (its usage text suggests 512 and up); below 512 the table costs
	// more than it saves, and above 16 MiB a single block no longer fits the buffers pkgsync keeps
	// per block.
	MinBlocksize = 512
	MaxBlocksize = 1 << 24

	// MaxLength bounds Length (1 PiB).
	MaxLength = 1 << 50

	// MaxBlocks bounds NumBlocks(Length, Blocksize): zsync 0.6.2 counts blocks in a C int.
	MaxBlocks = math.MaxInt32

	// MaxLineBytes is the longest header line, with its newline: zsync 0.6.2 reads lines with
	// fgets into a 1024-byte buffer and misparses anything longer.
	MaxLineBytes = 1023

	// MaxHeaderBytes and MaxHeaderLines bound the whole text header, the empty line included.
	MaxHeaderBytes = 64 << 10
	MaxHeaderLines = 1000
)

// Header keys. The gzip keys belong to zsyncmake's "look inside" mode (a .zsync of the uncompressed
// content of a .gz, fetched as compressed ranges), which pkgsync does not implement.
const (
	keyVersion     = "zsync"
	keyMinVersion  = "Min-Version"
	keyFilename    = "Filename"
	keyMTime       = "MTime"
	keyBlocksize   = "Blocksize"
	keyLength      = "Length"
	keyHashLengths = "Hash-Lengths"
	keyURL         = "URL"
	keySHA1        = "SHA-1"
	keySafe        = "Safe"
)

// gzipKeys are the keys of zsyncmake's gzip look-inside mode.
var gzipKeys = map[string]bool{"Z-URL": true, "Z-Map2": true, "Recompress": true, "Z-Filename": true}

// errGzip explains why a gzip-mode key is refused.
var errGzip = fmt.Errorf("%w: gzip look-inside mode (Z-URL, Z-Map2, Recompress, Z-Filename) is not "+
	"supported by pkgsync; make the .zsync with zsyncmake -Z", ErrUnsupported)

// mtimeLayout is how zsyncmake writes MTime (strftime "%a, %d %b %Y %H:%M:%S %z", in UTC).
const mtimeLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// mtimeParseLayouts are the two forms zsync 0.6.2 parses (with and without the weekday); a one- or
// two-digit day is accepted like strptime's %d.
var mtimeParseLayouts = []string{"Mon, 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 -0700"}

// Validate reports whether h can be written as a control file that Read accepts and returns
// unchanged (MTime is kept to the second, in UTC): every field in range, every value fitting on
// one header line, Extra keys neither reserved nor unlistable in Safe, and the header within
// MaxHeaderBytes and MaxHeaderLines. The error wraps one of the Err* sentinels.
func (h *Header) Validate() error {
	_, err := h.appendHeader(nil)
	return err
}

// Validate reports whether f can be written by Write: the header is valid (see Header.Validate),
// Blocks has exactly NumBlocks records, and no record has bits beyond RsumBytes and
// ChecksumBytes, which the file could not hold.
func (f *File) Validate() error {
	if err := f.Header.Validate(); err != nil {
		return err
	}
	return f.checkBlocks()
}

func (f *File) checkBlocks() error {
	if n := NumBlocks(f.Length, f.Blocksize); len(f.Blocks) != n {
		return fmt.Errorf("zsync: %w: %d records for %d blocks of %d bytes", ErrBlocks, len(f.Blocks), n, f.Blocksize)
	}
	mask := weakMask(f.RsumBytes)
	for i, b := range f.Blocks {
		if b.Weak&^mask != 0 {
			return fmt.Errorf("zsync: %w: block %d: weak sum %#08x has more than %d bytes", ErrBlocks, i, b.Weak, f.RsumBytes)
		}
		kept := b.Strong
		clear(kept[f.ChecksumBytes:])
		if kept != b.Strong {
			return fmt.Errorf("zsync: %w: block %d: strong sum has more than %d bytes", ErrBlocks, i, f.ChecksumBytes)
		}
	}
	return nil
}

// weakMask is rollsum.Mask for a validated rsum length (1..4).
func weakMask(rsumBytes int) uint32 { return 1<<(8*uint(rsumBytes)) - 1 }

// fieldError is a Validate error about the header, or about one key of it, which it names.
type fieldError struct {
	key string // "" for the header as a whole
	err error
}

func (e *fieldError) Error() string {
	if e.key == "" {
		return fmt.Sprintf("zsync: invalid header: %v", e.err)
	}
	return fmt.Sprintf("zsync: invalid header (%s): %v", e.key, e.err)
}
func (e *fieldError) Unwrap() error { return e.err }

// checkFields validates each field of h on its own (the rendered size is checked by appendHeader).
func (h *Header) checkFields() error {
	if h.Version != "" {
		if err := checkVersion(h.Version); err != nil {
			return &fieldError{keyVersion, err}
		}
	}
	if h.Filename != "" {
		if err := checkFilename(h.Filename); err != nil {
			return &fieldError{keyFilename, err}
		}
	}
	if !h.MTime.IsZero() {
		if err := checkMTime(h.MTime); err != nil {
			return &fieldError{keyMTime, err}
		}
	}
	if err := checkBlocksize(int64(h.Blocksize)); err != nil {
		return &fieldError{keyBlocksize, err}
	}
	if err := checkLength(h.Length, h.Blocksize); err != nil {
		return &fieldError{keyLength, err}
	}
	if err := checkHashLengths(h.SeqMatches, h.RsumBytes, h.ChecksumBytes); err != nil {
		return &fieldError{keyHashLengths, err}
	}
	for _, u := range h.URLs {
		if err := checkValue(u); err != nil {
			return &fieldError{keyURL, err}
		}
	}
	for _, x := range h.Extra {
		if err := checkExtraKey(x.Key); err != nil {
			return &fieldError{x.Key, err}
		}
		if err := checkValue(x.Value); err != nil {
			return &fieldError{x.Key, err}
		}
		if x.Key == keyMinVersion {
			if err := checkMinVersion(x.Value); err != nil {
				return &fieldError{x.Key, err}
			}
		}
	}
	return nil
}

// checkValue reports whether v survives a trip through a header line: zsync strips trailing
// spaces and CRs, needs a non-empty value after ": ", and stops at a NUL.
func checkValue(v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: empty value", ErrHeader)
	case strings.ContainsAny(v, "\n\x00"):
		return fmt.Errorf("%w: value %q contains a newline or NUL", ErrHeader, v)
	case strings.HasSuffix(v, " ") || strings.HasSuffix(v, "\r"):
		return fmt.Errorf("%w: value %q ends in a space or CR, which zsync strips", ErrHeader, v)
	}
	return nil
}

// checkExtraKey reports whether k may be written as an extra header key: a single Safe token that
// zsync does not already give a meaning to (except Min-Version, which it checks).
func checkExtraKey(k string) error {
	if f := strings.Fields(k); len(f) != 1 || f[0] != k || strings.ContainsAny(k, ":\x00") {
		return fmt.Errorf("%w: key %q is empty or contains a space, colon or NUL", ErrHeader, k)
	}
	switch k {
	case keyVersion, keyFilename, keyMTime, keyBlocksize, keyLength, keyHashLengths, keyURL, keySHA1, keySafe:
		return fmt.Errorf("%w: %s has a Header field and cannot be an extra key", ErrHeader, k)
	}
	if gzipKeys[k] {
		return errGzip
	}
	return nil
}

// checkVersion checks the "zsync:" value. zsync 0.6.2 refuses only the 0.0.4 format; it leaves
// newer writers to signal incompatibility through Min-Version and unknown keys, so any other
// version is accepted here too, and every 0.0.x (older than Hash-Lengths) is refused.
func checkVersion(v string) error {
	if err := checkValue(v); err != nil {
		return err
	}
	if strings.HasPrefix(v, "0.0.") {
		return fmt.Errorf("%w: zsync %s format (0.0.x) predates zsync 0.6 files", ErrUnsupported, v)
	}
	return nil
}

// checkMinVersion checks a Min-Version value against Version, as zsync 0.6.2 checks it against its
// own version (it compares strings; the comparison here is numeric, field by field).
func checkMinVersion(v string) error {
	c, ok := compareVersions(v, Version)
	if !ok {
		return fmt.Errorf("%w: cannot read Min-Version %q", ErrUnsupported, v)
	}
	if c > 0 {
		return fmt.Errorf("%w: file needs zsync %s or newer; pkgsync implements %s", ErrUnsupported, v, Version)
	}
	return nil
}

// compareVersions compares dotted decimal versions ("0.6.2"), missing fields counting as 0.
func compareVersions(a, b string) (int, bool) {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y uint64
		var err error
		if i < len(as) {
			if x, err = strconv.ParseUint(as[i], 10, 32); err != nil {
				return 0, false
			}
		}
		if i < len(bs) {
			if y, err = strconv.ParseUint(bs[i], 10, 32); err != nil {
				return 0, false
			}
		}
		if x != y {
			if x < y {
				return -1, true
			}
			return 1, true
		}
	}
	return 0, true
}

// checkFilename refuses names that are paths: the client would write outside its directory.
func checkFilename(name string) error {
	if err := checkValue(name); err != nil {
		return err
	}
	if name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("%w: %q is not a base name", ErrFilename, name)
	}
	return nil
}

// checkMTime refuses times the MTime line cannot carry: a fraction of a second, or a year that is
// not four digits once in UTC.
func checkMTime(t time.Time) error {
	if t.Nanosecond() != 0 {
		return fmt.Errorf("%w: %v has a fraction of a second", ErrMTime, t)
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%w: year %d in UTC is not four digits", ErrMTime, y)
	}
	return nil
}

func checkBlocksize(bs int64) error {
	if bs < MinBlocksize || bs > MaxBlocksize || bs&(bs-1) != 0 {
		return fmt.Errorf("%w: %d is not a power of two from %d to %d", ErrBlocksize, bs, MinBlocksize, MaxBlocksize)
	}
	return nil
}

// checkLength checks length on its own and, once bs is valid, the number of blocks.
func checkLength(length int64, bs int) error {
	if length < 0 || length > MaxLength {
		return fmt.Errorf("%w: %d is not from 0 to %d", ErrLength, length, int64(MaxLength))
	}
	if bs > 0 && (length-1)/int64(bs) >= MaxBlocks {
		return fmt.Errorf("%w: %d bytes are more than %d blocks of %d", ErrLength, length, MaxBlocks, bs)
	}
	return nil
}

func checkHashLengths(seq, rsum, checksum int) error {
	if seq < 1 || seq > 2 || rsum < 1 || rsum > 4 || checksum < 3 || checksum > 16 {
		return fmt.Errorf("%w: %d,%d,%d is not seq_matches 1..2, rsum_bytes 1..4, checksum_bytes 3..16",
			ErrHashLengths, seq, rsum, checksum)
	}
	return nil
}
