package zsyncfile_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// baseHeader is a valid header, as zsyncmake writes it, for a 5000-byte file: 3 blocks of 2048
// with 2+3-byte records, so baseTable is 15 bytes.
const baseHeader = `zsync: 0.6.2
Filename: f
MTime: Wed, 25 Nov 2026 14:51:54 +0000
Blocksize: 2048
Length: 5000
Hash-Lengths: 2,2,3
URL: http://x/f
SHA-1: 1260a0e74e36143be3a2183efa2b398617a2cbff

`

const baseTable = "\x01\x02ABC\x03\x04DEF\x05\x06GHI"

// base returns the valid file with the first occurrence of each old string replaced by the new
// one that follows it.
func base(oldnew ...string) string {
	s := baseHeader + baseTable
	for i := 0; i < len(oldnew); i += 2 {
		if !strings.Contains(s, oldnew[i]) {
			panic(fmt.Sprintf("base file has no %q", oldnew[i]))
		}
		s = strings.Replace(s, oldnew[i], oldnew[i+1], 1)
	}
	return s
}

// manyLines returns n "X-Pad: …" lines of width bytes each (newline included).
func manyLines(n, width int) string {
	line := "X-Pad: " + strings.Repeat("p", width-8) + "\n"
	return strings.Repeat(line, n)
}

func TestReadBase(t *testing.T) {
	f, err := zsyncfile.Read(strings.NewReader(base()))
	if err != nil {
		t.Fatal(err)
	}
	want := zsyncfile.File{
		Header: zsyncfile.Header{
			Version: "0.6.2", Filename: "f", MTime: time.Date(2026, 11, 25, 14, 51, 54, 0, time.UTC),
			Blocksize: 2048, Length: 5000, SeqMatches: 2, RsumBytes: 2, ChecksumBytes: 3,
			URLs: []string{"http://x/f"},
			SHA1: [20]byte{0x12, 0x60, 0xa0, 0xe7, 0x4e, 0x36, 0x14, 0x3b, 0xe3, 0xa2, 0x18, 0x3e, 0xfa, 0x2b, 0x39, 0x86, 0x17, 0xa2, 0xcb, 0xff},
		},
		Blocks: []zsyncfile.Block{
			{Weak: 0x0102, Strong: [16]byte{'A', 'B', 'C'}},
			{Weak: 0x0304, Strong: [16]byte{'D', 'E', 'F'}},
			{Weak: 0x0506, Strong: [16]byte{'G', 'H', 'I'}},
		},
	}
	if !filesEqual(f, &want) {
		t.Errorf("Read = %+v\nwant %+v", f, &want)
	}
}

// TestReadAccepts reads variations that must parse, and checks the field each is about.
func TestReadAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(*zsyncfile.File) bool
	}{
		{"no URL", base("URL: http://x/f\n", ""), func(f *zsyncfile.File) bool { return len(f.URLs) == 0 }},
		{"URLs in order", base("URL: http://x/f\n", "URL: http://a/f\nURL: ../f\n"),
			func(f *zsyncfile.File) bool { return strings.Join(f.URLs, " ") == "http://a/f ../f" }},
		{"no zsync, Filename or MTime line", base("zsync: 0.6.2\n", "", "Filename: f\n", "", "MTime: Wed, 25 Nov 2026 14:51:54 +0000\n", ""),
			func(f *zsyncfile.File) bool { return f.Version == "" && f.Filename == "" && f.MTime.IsZero() }},
		{"keys in any order", base("Blocksize: 2048\nLength: 5000\n", "Length: 5000\nBlocksize: 2048\n"),
			func(f *zsyncfile.File) bool { return f.Blocksize == 2048 && f.Length == 5000 }},
		{"newer zsync version", base("zsync: 0.6.2", "zsync: 0.7.1"), func(f *zsyncfile.File) bool { return f.Version == "0.7.1" }},
		{"trailing spaces and CR stripped", base("Length: 5000\n", "Length: 5000 \r \r\n"), func(f *zsyncfile.File) bool { return f.Length == 5000 }},
		{"uppercase SHA-1", base("1260a0e74e", "1260A0E74E"), func(f *zsyncfile.File) bool { return f.SHA1[4] == 0x4e }},
		{"MTime with offset kept as UTC", base("14:51:54 +0000", "16:51:54 +0200"),
			func(f *zsyncfile.File) bool {
				return f.MTime == time.Date(2026, 11, 25, 14, 51, 54, 0, time.UTC) && f.MTime.Location() == time.UTC
			}},
		{"MTime without weekday", base("Wed, 25 Nov", "25 Nov"),
			func(f *zsyncfile.File) bool { return f.MTime.Equal(time.Date(2026, 11, 25, 14, 51, 54, 0, time.UTC)) }},
		{"Safe-listed keys kept in order", base("Filename: f\n", "Safe: X-A X-B\nX-B: 2\nFilename: f\nX-A: 1\nX-B: 3\n"),
			func(f *zsyncfile.File) bool {
				return fmt.Sprint(f.Extra) == "[{X-B 2} {X-A 1} {X-B 3}]"
			}},
		{"Min-Version met", base("Filename: f\n", "Min-Version: 0.6.2\nFilename: f\n"),
			func(f *zsyncfile.File) bool { return fmt.Sprint(f.Extra) == "[{Min-Version 0.6.2}]" }},
		{"Min-Version older", base("Filename: f\n", "Min-Version: 0.5\n"),
			func(f *zsyncfile.File) bool { return fmt.Sprint(f.Extra) == "[{Min-Version 0.5}]" }},
		{"value with colon and inner spaces", base("URL: http://x/f", "URL: http://x:80/a  b"),
			func(f *zsyncfile.File) bool { return f.URLs[0] == "http://x:80/a  b" }},
		{"empty file", base("Length: 5000", "Length: 0", baseTable, ""),
			func(f *zsyncfile.File) bool { return f.Length == 0 && len(f.Blocks) == 0 }},
		{"smallest block size", base("Blocksize: 2048", "Blocksize: 512", "Length: 5000", "Length: 1536"),
			func(f *zsyncfile.File) bool { return f.Blocksize == 512 && len(f.Blocks) == 3 }},
		{"largest block size", base("Blocksize: 2048", "Blocksize: 16777216", baseTable, baseTable[:5]),
			func(f *zsyncfile.File) bool { return f.Blocksize == 1<<24 && len(f.Blocks) == 1 }},
		{"widest records", base("2,2,3", "1,4,16", baseTable, strings.Repeat("\xff", 60)),
			func(f *zsyncfile.File) bool {
				return f.Blocks[2].Weak == 0xffffffff && f.Blocks[2].Strong == [16]byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}
			}},
		{"narrowest records", base("2,2,3", "1,1,3", baseTable, "\x01abc\x02def\x03ghi"),
			func(f *zsyncfile.File) bool {
				return f.Blocks[1] == zsyncfile.Block{Weak: 2, Strong: [16]byte{'d', 'e', 'f'}}
			}},
		{"longest line zsync reads", base("URL: http://x/f", "URL: "+strings.Repeat("u", zsyncfile.MaxLineBytes-6)),
			func(f *zsyncfile.File) bool { return len(f.URLs[0]) == zsyncfile.MaxLineBytes-6 }},
		{"most lines", base("Filename: f\n", "Safe: X-Pad\n"+manyLines(zsyncfile.MaxHeaderLines-9, 20)),
			func(f *zsyncfile.File) bool { return len(f.Extra) == zsyncfile.MaxHeaderLines-9 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := zsyncfile.Read(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(f) {
				t.Errorf("Read gave %+v", f)
			}
		})
	}
}

// TestReadRejects feeds malformed and unsupported files; each must fail with its sentinel, in a
// *ParseError naming the line and key, and never panic.
func TestReadRejects(t *testing.T) {
	long := strings.Repeat("u", zsyncfile.MaxLineBytes-5) // "URL: " + long + "\n" is one byte too many
	tests := []struct {
		name string
		in   string
		want error
		line int
		key  string
	}{
		{"empty input", "", zsyncfile.ErrTruncated, 1, ""},
		{"header never ends", baseHeader[:len(baseHeader)-1], zsyncfile.ErrTruncated, 9, ""},
		{"header cut mid-line", baseHeader[:20], zsyncfile.ErrTruncated, 2, ""},
		{"not a zsync file", "<html>\n\n", zsyncfile.ErrHeader, 1, ""},
		{"no space after colon", base("Length: 5000", "Length:5000"), zsyncfile.ErrHeader, 5, ""},
		{"empty value", base("Filename: f", "Filename: "), zsyncfile.ErrHeader, 2, ""},
		{"CRLF empty line", base("\n\n", "\n\r\n"), zsyncfile.ErrHeader, 9, ""},
		{"NUL byte", base("Filename: f", "Filename: f\x00g"), zsyncfile.ErrHeader, 2, ""},
		{"line too long for zsync", base("URL: http://x/f", "URL: "+long), zsyncfile.ErrHeader, 7, ""},
		{"too many lines", base("Filename: f\n", "Safe: X-Pad\n"+manyLines(zsyncfile.MaxHeaderLines, 20)), zsyncfile.ErrHeader, zsyncfile.MaxHeaderLines + 1, ""},
		{"header too long", base("Filename: f\n", "Safe: X-Pad\n"+manyLines(70, 1000)), zsyncfile.ErrHeader, 68, ""},
		{"duplicate Length", base("Length: 5000\n", "Length: 5000\nLength: 6000\n"), zsyncfile.ErrHeader, 6, "Length"},
		{"duplicate Safe", base("Filename: f\n", "Safe: A\nSafe: B\n"), zsyncfile.ErrHeader, 3, "Safe"},

		{"missing Blocksize", base("Blocksize: 2048\n", ""), zsyncfile.ErrMissingKey, 8, "Blocksize"},
		{"missing Length", base("Length: 5000\n", ""), zsyncfile.ErrMissingKey, 8, "Length"},
		{"missing Hash-Lengths", base("Hash-Lengths: 2,2,3\n", ""), zsyncfile.ErrMissingKey, 8, "Hash-Lengths"},
		{"missing SHA-1", base("SHA-1: 1260a0e74e36143be3a2183efa2b398617a2cbff\n", ""), zsyncfile.ErrMissingKey, 8, "SHA-1"},

		{"unknown key", base("Filename: f\n", "Filename: f\nX-New: 1\n"), zsyncfile.ErrUnknownKey, 3, "X-New"},
		{"unknown key before its Safe line", base("Filename: f\n", "X-New: 1\nSafe: X-New\n"), zsyncfile.ErrUnknownKey, 2, "X-New"},
		{"Safe word only contains the key", base("Filename: f\n", "Safe: X-Newer\nX-New: 1\n"), zsyncfile.ErrUnknownKey, 3, "X-New"},
		{"key case matters", base("Length: 5000", "length: 5000"), zsyncfile.ErrUnknownKey, 5, "length"},
		{"empty key", base("Filename: f\n", "Safe: X\n: 1\n"), zsyncfile.ErrUnknownKey, 3, ""},

		{"Z-URL", base("URL: ", "Z-URL: "), zsyncfile.ErrUnsupported, 7, "Z-URL"},
		{"Z-Map2", base("SHA-1: 1260a0e74e36143be3a2183efa2b398617a2cbff\n", "SHA-1: 1260a0e74e36143be3a2183efa2b398617a2cbff\nZ-Map2: 2\n"), zsyncfile.ErrUnsupported, 9, "Z-Map2"},
		{"Recompress even if Safe", base("Filename: f\n", "Safe: Recompress\nRecompress: 1f8b 6\n"), zsyncfile.ErrUnsupported, 3, "Recompress"},
		{"Z-Filename", base("Filename: f\n", "Z-Filename: f.gz\n"), zsyncfile.ErrUnsupported, 2, "Z-Filename"},
		{"Min-Version newer", base("Filename: f\n", "Min-Version: 0.6.3\n"), zsyncfile.ErrUnsupported, 2, "Min-Version"},
		{"Min-Version much newer", base("Filename: f\n", "Min-Version: 0.10\n"), zsyncfile.ErrUnsupported, 2, "Min-Version"},
		{"Min-Version unreadable", base("Filename: f\n", "Min-Version: 0.6.2b\n"), zsyncfile.ErrUnsupported, 2, "Min-Version"},
		{"zsync 0.0.4 format", base("zsync: 0.6.2", "zsync: 0.0.4"), zsyncfile.ErrUnsupported, 1, "zsync"},

		{"Blocksize not a power of two", base("Blocksize: 2048", "Blocksize: 3000"), zsyncfile.ErrBlocksize, 4, "Blocksize"},
		{"Blocksize 0", base("Blocksize: 2048", "Blocksize: 0"), zsyncfile.ErrBlocksize, 4, "Blocksize"},
		{"Blocksize negative", base("Blocksize: 2048", "Blocksize: -2048"), zsyncfile.ErrBlocksize, 4, "Blocksize"},
		{"Blocksize too small", base("Blocksize: 2048", "Blocksize: 256"), zsyncfile.ErrBlocksize, 4, "Blocksize"},
		{"Blocksize too large", base("Blocksize: 2048", "Blocksize: 33554432"), zsyncfile.ErrBlocksize, 4, "Blocksize"},
		{"Blocksize 2^62", base("Blocksize: 2048", "Blocksize: 4611686018427387904"), zsyncfile.ErrBlocksize, 4, "Blocksize"},
		{"Blocksize overflows", base("Blocksize: 2048", "Blocksize: 99999999999999999999"), zsyncfile.ErrBlocksize, 4, "Blocksize"},
		{"Blocksize with suffix", base("Blocksize: 2048", "Blocksize: 2048k"), zsyncfile.ErrBlocksize, 4, "Blocksize"},
		{"Blocksize in hex", base("Blocksize: 2048", "Blocksize: 0x800"), zsyncfile.ErrBlocksize, 4, "Blocksize"},

		{"Length negative", base("Length: 5000", "Length: -1"), zsyncfile.ErrLength, 5, "Length"},
		{"Length not a number", base("Length: 5000", "Length: five"), zsyncfile.ErrLength, 5, "Length"},
		{"Length over MaxLength", base("Length: 5000", "Length: 1125899906842625"), zsyncfile.ErrLength, 5, "Length"},
		{"Length overflows", base("Length: 5000", "Length: 99999999999999999999"), zsyncfile.ErrLength, 5, "Length"},
		{"more blocks than zsync can count", base("Length: 5000", "Length: 4398046511104", "Blocksize: 2048", "Blocksize: 512"), zsyncfile.ErrLength, 5, "Length"},

		{"Hash-Lengths two values", base("2,2,3", "2,2"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"Hash-Lengths four values", base("2,2,3", "2,2,3,4"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"Hash-Lengths not numbers", base("2,2,3", "a,b,c"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"Hash-Lengths spaces", base("2,2,3", "2, 2, 3"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"seq_matches 0", base("2,2,3", "0,2,3"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"seq_matches 3", base("2,2,3", "3,2,3"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"rsum_bytes 0", base("2,2,3", "2,0,3"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"rsum_bytes 5", base("2,2,3", "2,5,3"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"checksum_bytes 2", base("2,2,3", "2,2,2"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},
		{"checksum_bytes 17", base("2,2,3", "2,2,17"), zsyncfile.ErrHashLengths, 6, "Hash-Lengths"},

		{"SHA-1 short", base("2cbff\n", "2cbf\n"), zsyncfile.ErrSHA1, 8, "SHA-1"},
		{"SHA-1 not hex", base("1260a0e74e", "1260a0e74g"), zsyncfile.ErrSHA1, 8, "SHA-1"},

		{"MTime not a date", base("Wed, 25 Nov 2026 14:51:54 +0000", "yesterday"), zsyncfile.ErrMTime, 3, "MTime"},
		{"MTime without zone", base(" +0000", ""), zsyncfile.ErrMTime, 3, "MTime"},
		{"MTime 31 Nov", base("Wed, 25 Nov", "Wed, 31 Nov"), zsyncfile.ErrMTime, 3, "MTime"},
		{"MTime fraction of a second", base("14:51:54", "14:51:54.5"), zsyncfile.ErrMTime, 3, "MTime"},
		{"MTime year 10000 in UTC", base("Wed, 25 Nov 2026 14:51:54 +0000", "Fri, 31 Dec 9999 23:00:00 -0200"), zsyncfile.ErrMTime, 3, "MTime"},

		{"Filename with a slash", base("Filename: f", "Filename: ../etc/f"), zsyncfile.ErrFilename, 2, "Filename"},
		{"Filename ..", base("Filename: f", "Filename: .."), zsyncfile.ErrFilename, 2, "Filename"},

		{"table empty", base(baseTable, ""), zsyncfile.ErrTruncated, 0, ""},
		{"table one byte short", base(baseTable, baseTable[:14]), zsyncfile.ErrTruncated, 0, ""},
		{"table for fewer blocks", base("Length: 5000", "Length: 6145"), zsyncfile.ErrTruncated, 0, ""},
		{"table one byte long", base(baseTable, baseTable+"\n"), zsyncfile.ErrTrailingData, 0, ""},
		{"table for more blocks", base("Length: 5000", "Length: 4096"), zsyncfile.ErrTrailingData, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := zsyncfile.Read(strings.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read = %+v, %v; want error %v", f, err, tc.want)
			}
			var pe *zsyncfile.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Line != tc.line || pe.Key != tc.key {
				t.Errorf("error %q is at line %d key %q, want line %d key %q", err, pe.Line, pe.Key, tc.line, tc.key)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{base("Blocksize: 2048", "Blocksize: 3000"), "zsync: line 4 (Blocksize): bad block size: 3000 is not a power of two from 512 to 16777216"},
		{base("Length: 5000", "Length:5000"), `zsync: line 5: malformed header: "Length:5000" is not a "Key: value" line`},
		{base("Length: 5000\n", ""), "zsync: line 8 (Length): mandatory key missing"},
		{base("URL: ", "Z-URL: "), "zsync: line 7 (Z-URL): not supported: gzip look-inside mode (Z-URL, Z-Map2, Recompress, Z-Filename) " +
			"is not supported by pkgsync; make the .zsync with zsyncmake -Z"},
		{base(baseTable, baseTable[:7]), "zsync: unexpected end of file: block table ends after 1 of 3 records (5 bytes each)"},
	}
	for _, tc := range tests {
		if _, err := zsyncfile.Read(strings.NewReader(tc.in)); err == nil || err.Error() != tc.want {
			t.Errorf("Read error = %v\nwant %s", err, tc.want)
		}
	}
}

// TestReadHeaderLimitIsWritable reads headers of exactly MaxHeaderBytes. Write lengthens an MTime
// without weekday by five bytes, so such a header could not be written back: Read refuses it
// rather than return a File that Write refuses.
func TestReadHeaderLimitIsWritable(t *testing.T) {
	// padded returns the base file with Safe-listed pad lines making the header exactly
	// MaxHeaderBytes long, after the given edits.
	padded := func(oldnew ...string) string {
		in := base(append(oldnew, "Filename: f\n", "Safe: X-Pad\nPAD")...)
		need := zsyncfile.MaxHeaderBytes - (strings.Index(in, "\n\n") + 2 - len("PAD"))
		last := 1000 + need%1000 // split in two lines that zsync can read
		pad := manyLines(need/1000-1, 1000) + manyLines(1, last/2) + manyLines(1, last-last/2)
		return strings.Replace(in, "PAD", pad, 1)
	}
	if _, err := zsyncfile.Read(strings.NewReader(padded())); err != nil {
		t.Errorf("header of MaxHeaderBytes: %v", err)
	}
	in := padded("Wed, 25 Nov", "25 Nov")
	lines := strings.Count(in[:strings.Index(in, "\n\n")+2], "\n")
	_, err := zsyncfile.Read(strings.NewReader(in))
	var pe *zsyncfile.ParseError
	if !errors.Is(err, zsyncfile.ErrHeader) || !errors.As(err, &pe) || pe.Line != lines {
		t.Errorf("header of MaxHeaderBytes that Write makes longer: error %v, want ErrHeader at the last line, %d", err, lines)
	}
}

// TestReadHugeLengthIsCheap reads headers that claim enormous files followed by a few table
// bytes: Read must fail with ErrTruncated having allocated about as much as it read, not the
// claimed table.
func TestReadHugeLengthIsCheap(t *testing.T) {
	tests := []struct{ length, blocksize string }{
		{"1000000000000000", "16777216"}, // 1 PB: 59.6 million records, 477 MB of table
		{"1099511627776", "4096"},        // 1 TiB: 268 million records, 2 GB of table
	}
	for _, tc := range tests {
		in := base("Length: 5000", "Length: "+tc.length, "Blocksize: 2048", "Blocksize: "+tc.blocksize, baseTable, baseTable[:10])
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := zsyncfile.Read(strings.NewReader(in))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, zsyncfile.ErrTruncated) {
			t.Errorf("Length %s: Read error %v, want ErrTruncated", tc.length, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("Length %s: Read allocated %d bytes for a %d-byte file", tc.length, n, len(in))
		}
	}
}

// TestReadChunking reads through readers that return little at a time and through small bufio
// buffers that split long lines: the result must not change.
func TestReadChunking(t *testing.T) {
	in := base("URL: http://x/f", "URL: http://x/"+strings.Repeat("long/", 150))
	want, err := zsyncfile.Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	readers := map[string]func() io.Reader{
		"one byte":          func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
		"half":              func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
		"data with EOF":     func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) },
		"16-byte bufio":     func() io.Reader { return bufio.NewReaderSize(strings.NewReader(in), 16) },
		"16-byte bufio, 1B": func() io.Reader { return bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16) },
	}
	for name, r := range readers {
		got, err := zsyncfile.Read(r())
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !filesEqual(got, want) {
			t.Errorf("%s: Read = %+v\nwant %+v", name, got, want)
		}
	}
	long := base("URL: http://x/f", "URL: "+strings.Repeat("u", 2000))
	if _, err := zsyncfile.Read(bufio.NewReaderSize(strings.NewReader(long), 16)); !errors.Is(err, zsyncfile.ErrHeader) {
		t.Errorf("2000-byte line through a 16-byte bufio: error %v, want ErrHeader", err)
	}
}

// TestReadIOError checks that an error from the underlying reader comes back wrapped, not as a
// ParseError, wherever it happens.
func TestReadIOError(t *testing.T) {
	boom := errors.New("disk on fire")
	in := base()
	for _, n := range []int{0, 10, len(baseHeader), len(in) - 3, len(in)} {
		r := io.MultiReader(strings.NewReader(in[:n]), iotest.ErrReader(boom))
		_, err := zsyncfile.Read(r)
		var pe *zsyncfile.ParseError
		if !errors.Is(err, boom) || errors.As(err, &pe) {
			t.Errorf("reader failing after %d bytes: error %v, want one wrapping %v", n, err, boom)
		}
	}
}

// TestReadHeaderStopsAtTable checks that ReadHeader leaves the reader at the first table byte.
func TestReadHeaderStopsAtTable(t *testing.T) {
	br := bufio.NewReader(strings.NewReader(base()))
	h, err := zsyncfile.ReadHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	if h.Length != 5000 {
		t.Errorf("Length = %d, want 5000", h.Length)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != baseTable {
		t.Errorf("after ReadHeader the reader holds %q, want the table %q", rest, baseTable)
	}
}

// filesEqual compares two files, times with ==.
func filesEqual(a, b *zsyncfile.File) bool {
	return headersEqual(a.Header, b.Header) && slices.Equal(a.Blocks, b.Blocks)
}
