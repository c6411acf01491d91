package zsyncfile_test

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	xmd4 "golang.org/x/crypto/md4"

	"github.com/pkgsync/pkgsync/internal/testtool"
	"github.com/pkgsync/pkgsync/rollsum"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

func TestDefaultBlocksize(t *testing.T) {
	tests := []struct {
		length int64
		want   int
	}{
		{0, 2048},
		{1, 2048},
		{99999999, 2048},
		{100000000, 4096},
		{1 << 40, 4096},
	}
	for _, tc := range tests {
		if got := zsyncfile.DefaultBlocksize(tc.length); got != tc.want {
			t.Errorf("DefaultBlocksize(%d) = %d, want %d", tc.length, got, tc.want)
		}
	}
}

// hashLengthsGolden holds Hash-Lengths lines that the stock zsyncmake 0.6.2 (Debian 0.6.2-5) wrote
// for sparse files made with truncate -s LENGTH and "zsyncmake -b BS -u u -o out.zsync file". The
// large ones sit on either side of the points where a length changes, found by bisecting
// HashLengths, and are too slow to make in every test run; TestHashLengthsMatchZsyncmake checks
// the small ones live.
var hashLengthsGolden = []struct {
	length    int64
	blocksize int
	want      string
}{
	{0, 2048, "1,2,3"},
	{1, 2048, "1,2,3"},
	{100, 2048, "1,2,4"},
	{2048, 2048, "1,2,4"}, // (20 + ln 2048/ln 2 + ln 2/ln 2)/8 is exactly 4
	{2049, 2048, "2,2,3"},
	{100000, 1 << 20, "1,4,5"},
	{100000, 1 << 24, "1,4,5"},
	{575403519, 512, "2,2,5"},
	{575403520, 512, "2,2,6"},
	{1150807039, 1024, "2,2,5"},
	{1150807040, 1024, "2,2,6"},
	{1627488270, 1024, "2,2,6"},
	{1627488271, 1024, "2,3,6"},
	{813744135, 2048, "2,2,5"},
	{813744136, 2048, "2,3,5"},
	{2301614079, 2048, "2,3,5"},
	{2301614080, 2048, "2,3,6"},
	{406872067, 4096, "2,2,5"},
	{406872068, 4096, "2,3,5"},
	{203436033, 8192, "2,2,5"},
	{203436034, 8192, "2,3,5"},
	{287637503, 65536, "2,3,4"},
	{287637504, 65536, "2,3,5"},
	{67108863, 1 << 24, "2,3,3"},
	{67108864, 1 << 24, "2,3,4"},
	{1 << 27, 1 << 27, "1,4,6"}, // (20 + 27 + 1)/8 is exactly 6
	{1 << 30, 4096, "2,3,5"},
	{99999999, 4096, "2,2,5"},
	{100000000, 4096, "2,2,5"},
}

func hashLengthsString(length int64, blocksize int) string {
	seq, rsum, checksum := zsyncfile.HashLengths(length, blocksize)
	return fmt.Sprintf("%d,%d,%d", seq, rsum, checksum)
}

func TestHashLengthsGolden(t *testing.T) {
	for _, tc := range hashLengthsGolden {
		if got := hashLengthsString(tc.length, tc.blocksize); got != tc.want {
			t.Errorf("HashLengths(%d, %d) = %s, zsyncmake wrote %s", tc.length, tc.blocksize, got, tc.want)
		}
	}
}

func TestHashLengthsInvalid(t *testing.T) {
	for _, tc := range []struct {
		length    int64
		blocksize int
	}{{-1, 2048}, {100, 0}, {100, -4096}} {
		if seq, rsum, checksum := zsyncfile.HashLengths(tc.length, tc.blocksize); seq != 0 || rsum != 0 || checksum != 0 {
			t.Errorf("HashLengths(%d, %d) = %d,%d,%d, want zeros", tc.length, tc.blocksize, seq, rsum, checksum)
		}
	}
}

// hashLengthChanges returns the lengths in [lo, hi] at which HashLengths(·, bs) differs from the
// length before. Each of the three values is monotonic on 1..bs and on bs+1.., so a range whose
// ends agree has no change inside and bisection finds every change.
func hashLengthChanges(lo, hi int64, bs int) []int64 {
	if lo >= hi || hashLengthsString(lo, bs) == hashLengthsString(hi, bs) {
		return nil
	}
	if hi-lo == 1 {
		return []int64{hi}
	}
	m := lo + (hi-lo)/2
	return append(hashLengthChanges(lo, m, bs), hashLengthChanges(m, hi, bs)...)
}

// hashLengthCases picks (length, blocksize) pairs worth asking zsyncmake about, every length at most
// limit: the edges around one block, one step either side of every point where HashLengths changes,
// and a few log-uniform random lengths.
func hashLengthCases(limit int64) map[int][]int64 {
	r := rand.New(rand.NewPCG(1, 2))
	cases := make(map[int][]int64)
	for _, bs := range []int{1, 8, 16, 512, 1024, 2048, 4096, 8192, 65536, 1 << 19, 1 << 20, 1 << 24} {
		b := int64(bs)
		lengths := []int64{0, 1, 2, 17, b - 1, b, b + 1, 2 * b, 3*b + 7}
		changes := append(hashLengthChanges(1, b, bs), hashLengthChanges(b+1, limit, bs)...)
		for _, l := range changes {
			lengths = append(lengths, l-1, l, l+1)
		}
		for range 4 {
			lengths = append(lengths, int64(math.Exp2(r.Float64()*math.Log2(float64(limit)))))
		}
		// Tiny blocks make zsyncmake slow (an MD4 per block): keep their files short.
		blockLimit := min(limit, b<<16)
		for _, l := range lengths {
			if l >= 0 && l <= blockLimit {
				cases[bs] = append(cases[bs], l)
			}
		}
		slices.Sort(cases[bs])
		cases[bs] = slices.Compact(cases[bs])
	}
	return cases
}

// TestHashLengthsMatchZsyncmake runs the stock zsyncmake on sparse files of many lengths and block
// sizes and compares its Hash-Lengths line with HashLengths.
func TestHashLengthsMatchZsyncmake(t *testing.T) {
	zsyncmake := testtool.Need(t, "zsyncmake")[0]
	limit := int64(24 << 20)
	if testing.Short() {
		limit = 1 << 20
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "sparse"), filepath.Join(dir, "sparse.zsync")
	if err := os.WriteFile(in, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	for bs, lengths := range hashLengthCases(limit) {
		for _, length := range lengths {
			if err := os.Truncate(in, 0); err != nil { // drop the old blocks so the file stays sparse zeros
				t.Fatal(err)
			}
			if err := os.Truncate(in, length); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(zsyncmake, "-b", strconv.Itoa(bs), "-u", "u", "-o", out, in)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("zsyncmake -b %d on %d bytes: %v\n%s", bs, length, err, msg)
			}
			want, err := headerValue(out, "Hash-Lengths")
			if err != nil {
				t.Fatal(err)
			}
			if got := hashLengthsString(length, bs); got != want {
				t.Errorf("HashLengths(%d, %d) = %s, zsyncmake wrote %s", length, bs, got, want)
			}
			n++
		}
	}
	t.Logf("compared %d (length, blocksize) pairs with zsyncmake", n)
}

// headerValue returns the value of key in the control file at path, read as plain text lines so as
// not to depend on the package under test.
func headerValue(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() && s.Text() != "" {
		if v, ok := strings.CutPrefix(s.Text(), key+": "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: no %s line in the header", path, key)
}

func TestNewHeader(t *testing.T) {
	local := time.Date(2026, 11, 25, 15, 51, 54, 999999999, time.FixedZone("CET", 3600))
	tests := []struct {
		name      string
		length    int64
		blocksize int
		mtime     time.Time
		want      zsyncfile.Header
	}{
		{
			"default block size, mtime to UTC seconds", 5000, 0, local,
			zsyncfile.Header{Version: "0.6.2", Filename: "f", MTime: time.Date(2026, 11, 25, 14, 51, 54, 0, time.UTC),
				Blocksize: 2048, Length: 5000, SeqMatches: 2, RsumBytes: 2, ChecksumBytes: 3},
		},
		{
			"large file", 1 << 30, 0, time.Time{},
			zsyncfile.Header{Version: "0.6.2", Filename: "f", Blocksize: 4096, Length: 1 << 30,
				SeqMatches: 2, RsumBytes: 3, ChecksumBytes: 5},
		},
		{
			"explicit block size", 100000, 1 << 20, time.Time{},
			zsyncfile.Header{Version: "0.6.2", Filename: "f", Blocksize: 1 << 20, Length: 100000,
				SeqMatches: 1, RsumBytes: 4, ChecksumBytes: 5},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := zsyncfile.NewHeader("f", tc.length, tc.blocksize, tc.mtime)
			if !headersEqual(got, tc.want) {
				t.Errorf("NewHeader = %+v\nwant %+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("NewHeader result does not validate: %v", err)
			}
		})
	}
}

// headersEqual compares headers field by field, times with ==, so that a location that differs
// only in name (UTC against a fixed zone of offset 0) counts.
func headersEqual(a, b zsyncfile.Header) bool {
	return a.Version == b.Version && a.Filename == b.Filename && a.MTime == b.MTime &&
		a.Blocksize == b.Blocksize && a.Length == b.Length && a.SeqMatches == b.SeqMatches &&
		a.RsumBytes == b.RsumBytes && a.ChecksumBytes == b.ChecksumBytes &&
		slices.Equal(a.URLs, b.URLs) && a.SHA1 == b.SHA1 && slices.Equal(a.Extra, b.Extra)
}

// TestSum checks Header.Sum against the definition: both sums over the block padded with zeros to
// Blocksize, the weak one masked to RsumBytes, the strong one (x/crypto's MD4) cut to ChecksumBytes.
func TestSum(t *testing.T) {
	data := testData(3, 3<<20)
	tests := []struct {
		blocksize, rsum, checksum int
		lengths                   []int
	}{
		{2048, 2, 3, []int{0, 1, 100, 2047, 2048, 2049, 5000}},
		{4096, 3, 5, []int{1, 4095, 4096}},
		{512, 4, 16, []int{7, 511, 512}},
		{1 << 17, 1, 8, []int{1, 70000, 1 << 17}}, // padding longer than 65535 bytes: the weights wrap mod 2^16
		{1 << 20, 4, 4, []int{3 << 19, 1 << 20}},
	}
	for _, tc := range tests {
		h := zsyncfile.Header{Blocksize: tc.blocksize, RsumBytes: tc.rsum, ChecksumBytes: tc.checksum}
		for _, n := range tc.lengths {
			block := data[:n]
			padded := make([]byte, tc.blocksize)
			copy(padded, block)
			var want zsyncfile.Block
			want.Weak = rollsum.Sum32(padded) & rollsum.Mask(tc.rsum)
			m := xmd4.New()
			m.Write(padded)
			copy(want.Strong[:tc.checksum], m.Sum(nil))
			if got := h.Sum(block); got != want {
				t.Errorf("blocksize %d, hash lengths %d,%d, block of %d bytes: Sum = %+v, want %+v",
					tc.blocksize, tc.rsum, tc.checksum, n, got, want)
			}
		}
	}
}

func TestSumNoAllocs(t *testing.T) {
	h := zsyncfile.NewHeader("f", 1<<20, 2048, time.Time{})
	full, short := testData(4, 2048), testData(5, 1000)
	if n := testing.AllocsPerRun(100, func() { h.Sum(full); h.Sum(short) }); n != 0 {
		t.Errorf("Sum allocates %v times per call, want 0", n)
	}
}
