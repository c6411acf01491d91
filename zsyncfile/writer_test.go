package zsyncfile_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

func TestRoundTrip(t *testing.T) {
	mtime := time.Date(2026, 11, 25, 14, 51, 54, 0, time.UTC)
	withExtra := makeFile("pkg.deb", testData(1, 5000), 2048, mtime, "http://origin/pkg.deb")
	withExtra.Extra = []zsyncfile.Field{{"X-B", "2"}, {"Min-Version", "0.6"}, {"X-A", "1"}, {"X-B", "3 with spaces"}}
	bare := &zsyncfile.File{Header: zsyncfile.Header{Blocksize: 512, Length: 0, SeqMatches: 1, RsumBytes: 2, ChecksumBytes: 3}}
	wide := makeFile("w", testData(2, 3*4096), 4096, time.Time{}, "a", "../b", "http://c:8080/d?e=f")
	wide.RsumBytes, wide.ChecksumBytes = 4, 16
	narrow := makeFile("n", testData(3, 100000), 1024, mtime)
	narrow.SeqMatches, narrow.RsumBytes, narrow.ChecksumBytes = 1, 1, 3
	for i := range narrow.Blocks {
		narrow.Blocks[i].Weak &= 0xff
		clear(narrow.Blocks[i].Strong[3:])
	}
	tests := []struct {
		name string
		f    *zsyncfile.File
	}{
		{"with extra fields", withExtra},
		{"no optional fields, empty file", bare},
		{"widest records, several URLs", wide},
		{"narrowest records, no URL", narrow},
		{"one byte", makeFile("b", []byte{7}, 2048, mtime, "u")},
		{"exact multiple of the block size", makeFile("m", testData(4, 4*2048), 2048, mtime, "u")},
		{"largest block size", makeFile("l", testData(5, 1<<24+1), 1<<24, mtime, "u")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := zsyncfile.Write(&buf, tc.f); err != nil {
				t.Fatal(err)
			}
			first := bytes.Clone(buf.Bytes())
			got, err := zsyncfile.Read(&buf)
			if err != nil {
				t.Fatalf("Read of Write output: %v\n%s", err, first)
			}
			if !filesEqual(got, tc.f) {
				t.Fatalf("Read(Write(f)) = %+v\nwant %+v", got.Header, tc.f.Header)
			}
			buf.Reset()
			if err := zsyncfile.Write(&buf, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), first) {
				t.Errorf("second Write differs from the first:\n%q\n%q", buf.Bytes(), first)
			}
		})
	}
}

// TestWriteLayout pins the header text: zsyncmake's order, the Safe line right after zsync (where
// zsyncmake puts its own), Extra after SHA-1, MTime in UTC.
func TestWriteLayout(t *testing.T) {
	f := &zsyncfile.File{
		Header: zsyncfile.Header{
			Version: "0.6.2", Filename: "f", MTime: time.Date(2026, 11, 25, 15, 51, 54, 0, time.FixedZone("CET", 3600)),
			Blocksize: 2048, Length: 5000, SeqMatches: 2, RsumBytes: 2, ChecksumBytes: 3,
			URLs:  []string{"http://x/f", "f"},
			SHA1:  [20]byte{0x12, 0x60, 0xa0, 0xe7, 0x4e, 0x36, 0x14, 0x3b, 0xe3, 0xa2, 0x18, 0x3e, 0xfa, 0x2b, 0x39, 0x86, 0x17, 0xa2, 0xcb, 0xff},
			Extra: []zsyncfile.Field{{"X-B", "2"}, {"Min-Version", "0.6"}, {"X-A", "1"}, {"X-B", "3"}},
		},
		Blocks: []zsyncfile.Block{{Weak: 0x0102, Strong: [16]byte{'A', 'B', 'C'}}, {Weak: 0x0304, Strong: [16]byte{'D', 'E', 'F'}}, {Weak: 0x0506, Strong: [16]byte{'G', 'H', 'I'}}},
	}
	want := `zsync: 0.6.2
Safe: X-B X-A
Filename: f
MTime: Wed, 25 Nov 2026 14:51:54 +0000
Blocksize: 2048
Length: 5000
Hash-Lengths: 2,2,3
URL: http://x/f
URL: f
SHA-1: 1260a0e74e36143be3a2183efa2b398617a2cbff
X-B: 2
Min-Version: 0.6
X-A: 1
X-B: 3

` + baseTable
	var buf bytes.Buffer
	if err := zsyncfile.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Errorf("Write =\n%q\nwant\n%q", buf.String(), want)
	}
	var hdr bytes.Buffer
	if err := zsyncfile.WriteHeader(&hdr, &f.Header); err != nil {
		t.Fatal(err)
	}
	if hdr.String() != strings.TrimSuffix(want, baseTable) {
		t.Errorf("WriteHeader =\n%q\nwant the header of Write", hdr.String())
	}
}

// TestWriteRejects checks that Write refuses what Read would refuse or could not give back, and
// writes nothing then.
func TestWriteRejects(t *testing.T) {
	good := func() *zsyncfile.File {
		return makeFile("f", testData(6, 5000), 2048, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "http://x/f")
	}
	tests := []struct {
		name   string
		change func(f *zsyncfile.File)
		want   error
	}{
		{"block size not a power of two", func(f *zsyncfile.File) { f.Blocksize = 3000 }, zsyncfile.ErrBlocksize},
		{"block size too small", func(f *zsyncfile.File) { f.Blocksize = 256 }, zsyncfile.ErrBlocksize},
		{"negative length", func(f *zsyncfile.File) { f.Length = -1 }, zsyncfile.ErrLength},
		{"too many blocks", func(f *zsyncfile.File) { f.Blocksize, f.Length = 512, 1<<40 }, zsyncfile.ErrLength},
		{"no hash lengths", func(f *zsyncfile.File) { f.SeqMatches, f.RsumBytes, f.ChecksumBytes = 0, 0, 0 }, zsyncfile.ErrHashLengths},
		{"checksum_bytes 17", func(f *zsyncfile.File) { f.ChecksumBytes = 17 }, zsyncfile.ErrHashLengths},
		{"one block missing", func(f *zsyncfile.File) { f.Blocks = f.Blocks[:2] }, zsyncfile.ErrBlocks},
		{"one block too many", func(f *zsyncfile.File) { f.Blocks = append(f.Blocks, zsyncfile.Block{}) }, zsyncfile.ErrBlocks},
		{"weak sum wider than rsum_bytes", func(f *zsyncfile.File) { f.Blocks[1].Weak |= 1 << 16 }, zsyncfile.ErrBlocks},
		{"strong sum longer than checksum_bytes", func(f *zsyncfile.File) { f.Blocks[2].Strong[3] = 1 }, zsyncfile.ErrBlocks},
		{"path as Filename", func(f *zsyncfile.File) { f.Filename = "dir/f" }, zsyncfile.ErrFilename},
		{"MTime with nanoseconds", func(f *zsyncfile.File) { f.MTime = f.MTime.Add(1) }, zsyncfile.ErrMTime},
		{"MTime in year 10000", func(f *zsyncfile.File) { f.MTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, zsyncfile.ErrMTime},
		{"zsync 0.0.4", func(f *zsyncfile.File) { f.Version = "0.0.4" }, zsyncfile.ErrUnsupported},
		{"empty URL", func(f *zsyncfile.File) { f.URLs = append(f.URLs, "") }, zsyncfile.ErrHeader},
		{"URL with newline", func(f *zsyncfile.File) { f.URLs[0] = "http://x/\nLength: 1" }, zsyncfile.ErrHeader},
		{"URL with trailing space", func(f *zsyncfile.File) { f.URLs[0] = "http://x/f " }, zsyncfile.ErrHeader},
		{"URL too long for zsync", func(f *zsyncfile.File) { f.URLs[0] = strings.Repeat("u", 1018) }, zsyncfile.ErrHeader},
		{"extra key of a field", func(f *zsyncfile.File) { f.Extra = []zsyncfile.Field{{"URL", "x"}} }, zsyncfile.ErrHeader},
		{"extra key Safe", func(f *zsyncfile.File) { f.Extra = []zsyncfile.Field{{"Safe", "x"}} }, zsyncfile.ErrHeader},
		{"extra key with space", func(f *zsyncfile.File) { f.Extra = []zsyncfile.Field{{"X Y", "x"}} }, zsyncfile.ErrHeader},
		{"extra key with colon", func(f *zsyncfile.File) { f.Extra = []zsyncfile.Field{{"X:Y", "x"}} }, zsyncfile.ErrHeader},
		{"empty extra key", func(f *zsyncfile.File) { f.Extra = []zsyncfile.Field{{"", "x"}} }, zsyncfile.ErrHeader},
		{"empty extra value", func(f *zsyncfile.File) { f.Extra = []zsyncfile.Field{{"X", ""}} }, zsyncfile.ErrHeader},
		{"gzip key", func(f *zsyncfile.File) { f.Extra = []zsyncfile.Field{{"Z-URL", "x"}} }, zsyncfile.ErrUnsupported},
		{"Min-Version too new", func(f *zsyncfile.File) { f.Extra = []zsyncfile.Field{{"Min-Version", "0.7"}} }, zsyncfile.ErrUnsupported},
		{"too many lines", func(f *zsyncfile.File) {
			for range zsyncfile.MaxHeaderLines {
				f.Extra = append(f.Extra, zsyncfile.Field{"X", "x"})
			}
		}, zsyncfile.ErrHeader},
		{"header too long", func(f *zsyncfile.File) {
			for range 70 {
				f.URLs = append(f.URLs, strings.Repeat("u", 1000))
			}
		}, zsyncfile.ErrHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.change(f)
			var buf bytes.Buffer
			if err := zsyncfile.Write(&buf, f); !errors.Is(err, tc.want) {
				t.Errorf("Write error %v, want %v", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes of an invalid file", buf.Len())
			}
			if err := f.Validate(); !errors.Is(err, tc.want) {
				t.Errorf("Validate error %v, want %v", err, tc.want)
			}
		})
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriteError(t *testing.T) {
	boom := errors.New("disk full")
	f := makeFile("f", testData(7, 5000), 2048, time.Time{}, "u")
	if err := zsyncfile.Write(failWriter{boom}, f); !errors.Is(err, boom) || !strings.Contains(err.Error(), `"f"`) {
		t.Errorf("Write error %v, want one wrapping %v and naming the file", err, boom)
	}
	if err := zsyncfile.WriteHeader(failWriter{boom}, &f.Header); !errors.Is(err, boom) {
		t.Errorf("WriteHeader error %v, want one wrapping %v", err, boom)
	}
}

// TestAppendRecord checks the record layout by hand: the last RsumBytes bytes of the big-endian
// weak sum, then the first ChecksumBytes bytes of the strong sum; and DecodeRecord's inverse.
func TestAppendRecord(t *testing.T) {
	b := zsyncfile.Block{Weak: 0x11223344, Strong: [16]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf}}
	tests := []struct {
		rsum, checksum int
		want           string
	}{
		{4, 16, "\x11\x22\x33\x44\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf"},
		{3, 5, "\x22\x33\x44\xa0\xa1\xa2\xa3\xa4"},
		{2, 3, "\x33\x44\xa0\xa1\xa2"},
		{1, 3, "\x44\xa0\xa1\xa2"},
	}
	for _, tc := range tests {
		h := zsyncfile.Header{RsumBytes: tc.rsum, ChecksumBytes: tc.checksum}
		if got := h.AppendRecord([]byte("p"), b); string(got) != "p"+tc.want {
			t.Errorf("hash lengths %d,%d: AppendRecord = %x, want %x", tc.rsum, tc.checksum, got, "p"+tc.want)
		}
		// DecodeRecord reads back what the record keeps: the masked weak sum, the cut strong sum.
		want := zsyncfile.Block{Weak: b.Weak & (1<<(8*tc.rsum) - 1)}
		copy(want.Strong[:tc.checksum], b.Strong[:])
		if got := h.DecodeRecord([]byte(tc.want)); got != want {
			t.Errorf("hash lengths %d,%d: DecodeRecord = %+v, want %+v", tc.rsum, tc.checksum, got, want)
		}
	}
}

func TestValidateMessage(t *testing.T) {
	h := zsyncfile.NewHeader("f", 5000, 3000, time.Time{})
	want := "zsync: invalid header (Blocksize): bad block size: 3000 is not a power of two from 512 to 16777216"
	if err := h.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %s", err, want)
	}
	h = zsyncfile.NewHeader("f", 5000, 2048, time.Time{})
	h.URLs = make([]string, zsyncfile.MaxHeaderLines)
	for i := range h.URLs {
		h.URLs[i] = "u"
	}
	want = "zsync: invalid header: malformed header: header of 1007 lines is over 1000"
	if err := h.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %s", err, want)
	}
}
