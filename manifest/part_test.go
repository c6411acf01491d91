package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStretch checks that the stretches of every split cover the package once, in order, cut
// only at multiples of the unit, and as even as whole units allow.
func TestStretch(t *testing.T) {
	for _, size := range []int64{1, 100, 16 << 10, 16<<10 + 1, 5<<20 + 12345, 1 << 40, 1<<62 + 3} {
		for _, unit := range []int64{16 << 10, 48 << 10, 128 << 20} {
			for _, n := range []int{1, 2, 4, 7, 100, MaxParts} {
				units := (size + unit - 1) / unit
				var at int64
				for i := range n {
					off, end := Stretch(size, unit, i, n)
					if off != at || end < off || end > size {
						t.Fatalf("size %d unit %d: part %d/%d is [%d, %d), want it to start at %d", size, unit, i, n, off, end, at)
					}
					if off%unit != 0 || (end%unit != 0 && end != size) {
						t.Fatalf("size %d unit %d: part %d/%d is [%d, %d), not cut at a multiple of the unit", size, unit, i, n, off, end)
					}
					if got := (end - off + unit - 1) / unit; got < units/int64(n) || got > units/int64(n)+1 {
						t.Fatalf("size %d unit %d: part %d/%d holds %d units of %d", size, unit, i, n, got, units)
					}
					at = end
				}
				if at != size {
					t.Fatalf("size %d unit %d n %d: the parts end at %d", size, unit, n, at)
				}
			}
		}
	}
}

var fixedNow = func() time.Time { return time.Unix(1700000000, 0) }

// makeBoth runs a one-pass Make of path into dir/one and the n parts through their file
// format and Merge into dir/merged, and returns the bytes of both pairs of outputs.
func makeBoth(t testing.TB, path string, opt MakeOptions, n int) (one, merged [2][]byte) {
	t.Helper()
	dir := filepath.Dir(path)
	opt.Now = fixedNow
	for _, sub := range []string{"one", "merged", "parts"} {
		os.RemoveAll(filepath.Join(dir, sub))
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	o := opt
	o.OutDir = filepath.Join(dir, "one")
	if _, err := Make(context.Background(), path, o); err != nil {
		t.Fatal(err)
	}
	parts := writeParts(t, path, filepath.Join(dir, "parts"), opt, n)
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	m := MakeOptions{OutDir: filepath.Join(dir, "merged"), Now: fixedNow}
	if _, err := Merge(context.Background(), src, parts, m); err != nil {
		t.Fatal(err)
	}
	read := func(sub, ext string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, sub, filepath.Base(path)+ext))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return [2][]byte{read("one", ".torrent"), read("one", ".zsync")}, [2][]byte{read("merged", ".torrent"), read("merged", ".zsync")}
}

// writeParts makes the n parts of path, writes each to its part file in dir and reads it back.
func writeParts(t testing.TB, path, dir string, opt MakeOptions, n int) []*Part {
	t.Helper()
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var parts []*Part
	for i := range n {
		p, err := MakePart(context.Background(), src, opt, i, n)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, PartFileName(src.Name, i, n))
		if err := WritePartFile(f, p); err != nil {
			t.Fatal(err)
		}
		back, err := ReadPartFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, back)
	}
	return parts
}

// TestPartsMatchMake: merged parts are the one-pass outputs byte for byte, for sizes that are
// and are not multiples of the piece and block sizes, packages with fewer units than parts
// (some parts empty), and alignments that are not powers of two.
func TestPartsMatchMake(t *testing.T) {
	tests := []struct {
		size int
		opt  MakeOptions
	}{
		{1, MakeOptions{}},
		{2047, MakeOptions{URL: "http://o.invalid/pkg.bin"}},
		{3*32<<10 - 1, MakeOptions{Trackers: []string{"http://t.invalid/a", "udp://t2.invalid:6969"}}},
		{32 << 10, MakeOptions{}},
		{5<<20 + 12345, MakeOptions{URL: "http://o.invalid/pkg.bin", Trackers: []string{"http://t.invalid/a"}}},
		{5<<20 + 12345, MakeOptions{PieceSize: 256 << 10, BlockSize: 4096}},
		{3<<20 + 1, MakeOptions{Align: 48 << 10}},
		{3<<20 + 1, MakeOptions{Align: 1 << 20, PieceSize: 64 << 10}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		path, _ := randomFile(t, dir, uint64(tt.size), tt.size)
		for _, n := range []int{1, 4, 7} {
			t.Run(fmt.Sprintf("%d/%+v/%d", tt.size, tt.opt, n), func(t *testing.T) {
				one, merged := makeBoth(t, path, tt.opt, n)
				if !bytes.Equal(one[0], merged[0]) {
					t.Error(".torrent differs from the one-pass make's")
				}
				if !bytes.Equal(one[1], merged[1]) {
					t.Error(".zsync differs from the one-pass make's")
				}
			})
		}
	}
}

// TestPartsAlign: with --align, every piece and every stretch lies inside one align block,
// here at a small scale of the HDFS case (--align 134217728).
func TestPartsAlign(t *testing.T) {
	dir := t.TempDir()
	const size = 5<<20 + 333
	path, _ := randomFile(t, dir, 9, size)
	for _, align := range []int64{48 << 10, 128 << 10, 1 << 20} {
		opt := MakeOptions{Align: align}
		_, tor := makeParsed(t, path, opt)
		ps := tor.Info.PieceLength
		for k := int64(0); k*ps < size; k++ {
			first, last := k*ps, min((k+1)*ps, size)-1
			if first/align != last/align {
				t.Fatalf("align %d: piece %d [%d, %d] crosses an align boundary", align, k, first, last)
			}
		}
		for _, n := range []int{4, 7} {
			for _, p := range writeParts(t, path, dir, opt, n) {
				if p.Off%align != 0 || (p.End%align != 0 && p.End != size) {
					t.Fatalf("align %d: part %d/%d is [%d, %d), not cut at an align boundary", align, p.Index, n, p.Off, p.End)
				}
			}
		}
	}
}

// TestMergeRefuses: parts that do not make one package exactly once, and a package that changed
// since, are refused with an error naming the part file concerned.
func TestMergeRefuses(t *testing.T) {
	dir := t.TempDir()
	path, data := randomFile(t, dir, 3, 1<<20+99)
	partsDir := filepath.Join(dir, "parts")
	os.Mkdir(partsDir, 0o755)
	opt := MakeOptions{URL: "http://o.invalid/pkg.bin"}
	four := writeParts(t, path, partsDir, opt, 4)
	seven := writeParts(t, path, partsDir, opt, 7)
	otherURL := writeParts(t, path, partsDir, MakeOptions{URL: "http://elsewhere.invalid/pkg.bin"}, 4)
	tests := []struct {
		name  string
		parts []*Part
		opt   MakeOptions
		err   error
		want  string
	}{
		{"none", nil, MakeOptions{}, ErrPartMissing, "no part files"},
		{"missing", []*Part{four[0], four[1], four[3]}, MakeOptions{}, ErrPartMissing, "no part file for 2/4"},
		{"twice", []*Part{four[0], four[1], four[2], four[2], four[3]}, MakeOptions{}, ErrPartTwice, "pkg.bin.2-of-4.mkpart and " + four[2].File},
		{"other N", []*Part{four[0], four[1], seven[2], four[3]}, MakeOptions{}, ErrPartMismatch, "part count N 4, " + seven[2].File + " has 7"},
		{"other url", []*Part{four[0], four[1], otherURL[2], four[3]}, MakeOptions{}, ErrPartMismatch, "--url"},
		{"merge flag differs", four, MakeOptions{URL: "http://elsewhere.invalid/pkg.bin"}, ErrPartMismatch, "given to the merge"},
		{"merge piece size differs", four, MakeOptions{PieceSize: 1 << 20}, ErrPartMismatch, "--piece-size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			tt.opt.OutDir = t.TempDir()
			_, err = Merge(context.Background(), src, tt.parts, tt.opt)
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Merge: %v; want %v and %q", err, tt.err, tt.want)
			}
			if left, _ := os.ReadDir(tt.opt.OutDir); len(left) > 0 {
				t.Fatalf("a refused merge left %v", left)
			}
		})
	}
	// The package changed since the parts were made: same size, one byte and the mtime differ.
	data[500000] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now(), time.Now().Add(time.Hour))
	src, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := Merge(context.Background(), src, four, MakeOptions{OutDir: t.TempDir()}); !errors.Is(err, ErrPartMismatch) || !strings.Contains(err.Error(), four[0].File) {
		t.Fatalf("Merge over a changed package: %v, want ErrPartMismatch naming %s", err, four[0].File)
	}
}

// goodPartFile returns the bytes of a valid part file (part 1 of 3 of a 200 KB package).
func goodPartFile(t testing.TB) []byte {
	t.Helper()
	data := make([]byte, 200000)
	r := rand.New(rand.NewPCG(5, 5))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	src := &Source{Name: "pkg.bin", Label: "/srv/pkg.bin", Size: int64(len(data)), ModTime: time.Unix(1700000000, 123), ReaderAt: bytes.NewReader(data)}
	p, err := MakePart(context.Background(), src, MakeOptions{URL: "http://o.invalid/pkg.bin", Trackers: []string{"http://t.invalid/a"}}, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePart(&buf, p); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withHeader rewrites the JSON header of a part file and its trailing SHA-256 to match, so
// that the reader's checks of the header's content are reached.
func withHeader(t *testing.T, file []byte, edit func(map[string]any)) []byte {
	t.Helper()
	first := bytes.IndexByte(file, '\n')
	second := first + 1 + bytes.IndexByte(file[first+1:], '\n')
	var h map[string]any
	if err := json.Unmarshal(file[first+1:second], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := append(append(append([]byte{}, file[:first+1]...), hj...), file[second:len(file)-sha256.Size]...)
	s := sha256.Sum256(out)
	return append(out, s[:]...)
}

func TestReadPartRefuses(t *testing.T) {
	good := goodPartFile(t)
	p, err := ReadPart(bytes.NewReader(good))
	if err != nil {
		t.Fatalf("a good part file: %v", err)
	}
	if p.Index != 1 || p.Count != 3 || p.Name != "pkg.bin" || p.Source != "/srv/pkg.bin" || !p.ModTime.Equal(time.Unix(1700000000, 123)) {
		t.Fatalf("read back %+v", p)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-100] ^= 1
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "first line"},
		{"not a part file", []byte("d8:announce"), "first line"},
		{"other magic", append([]byte("pkgsync-make-parts 1\n"), good[20:]...), "does not start with"},
		{"newer version", append([]byte("pkgsync-make-part 2\n"), good[20:]...), "format version \"2\""},
		{"damaged", flipped, "SHA-256 does not match"},
		{"truncated", good[:len(good)-1], "bytes after the header"},
		{"trailing bytes", append(bytes.Clone(good), 0), "bytes after the header"},
		{"unknown field", withHeader(t, good, func(h map[string]any) { h["colour"] = "red" }), "unknown field"},
		{"stretch moved", withHeader(t, good, func(h map[string]any) { h["offset"] = 32768.0 }), "is not part 1/3"},
		{"other part index", withHeader(t, good, func(h map[string]any) { h["part"] = 0.0 }), "is not part 0/3"},
		{"index past N", withHeader(t, good, func(h map[string]any) { h["part"] = 3.0 }), "I must be from 0 to 2"},
		{"piece count", withHeader(t, good, func(h map[string]any) { h["pieces"] = 1.0 }), "pieces 1, want"},
		{"hash lengths", withHeader(t, good, func(h map[string]any) { h["hash_lengths"] = "2,4,16" }), "hash_lengths"},
		{"bad piece size", withHeader(t, good, func(h map[string]any) { h["piece_length"] = 1.0 }), "bad piece size"},
		{"name with a folder", withHeader(t, good, func(h map[string]any) { h["package"] = "../etc/passwd" }), "without folders"},
		{"bad url", withHeader(t, good, func(h map[string]any) { h["url"] = "ftp://x/y" }), "--url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadPart(bytes.NewReader(tt.file))
			if !errors.Is(err, ErrPartFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadPart: %v; want ErrPartFile and %q", err, tt.want)
			}
		})
	}
}

// TestWritePartErrors: a write error reaches the caller, and WritePart refuses a Part that is
// not self-consistent instead of writing a file that no merge would take.
func TestWritePartErrors(t *testing.T) {
	p, err := ReadPart(bytes.NewReader(goodPartFile(t)))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	if err := WritePart(failWriter{boom}, p); !errors.Is(err, boom) {
		t.Fatalf("WritePart to a failing writer: %v", err)
	}
	p.Blocks = p.Blocks[1:]
	if err := WritePart(io.Discard, p); !errors.Is(err, ErrPartFile) {
		t.Fatalf("WritePart of a part missing a block: %v", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// BenchmarkMakeParts compares a one-pass make of a 4 GiB file in the page cache with the same
// make as 4 and 7 parts run one after the other and merged (the merge's sequential SHA-1 read
// included), and checks once that the outputs are the same bytes. It is too large for CI;
// -short runs it on 64 MiB, and PKGSYNC_BENCH_SIZE (bytes) sets any size.
func BenchmarkMakeParts(b *testing.B) {
	size := int64(4 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	if s := os.Getenv("PKGSYNC_BENCH_SIZE"); s != "" {
		if _, err := fmt.Sscan(s, &size); err != nil {
			b.Fatalf("PKGSYNC_BENCH_SIZE %q: %v", s, err)
		}
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "pkg.bin")
	writeRandom(b, path, size)
	opt := MakeOptions{URL: "http://o.invalid/pkg.bin"}
	for _, n := range []int{4, 7} {
		one, merged := makeBoth(b, path, opt, n)
		if !bytes.Equal(one[0], merged[0]) || !bytes.Equal(one[1], merged[1]) {
			b.Fatalf("%d parts merged differ from the one-pass make", n)
		}
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	b.Run("one-pass", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			o := opt
			o.OutDir = out
			if _, err := Make(context.Background(), path, o); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{4, 7} {
		b.Run(fmt.Sprintf("%d-parts-in-turn", n), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				parts := writeParts(b, path, out, opt, n)
				src, err := OpenFile(path)
				if err != nil {
					b.Fatal(err)
				}
				_, err = Merge(context.Background(), src, parts, MakeOptions{OutDir: out})
				src.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// writeRandom writes size pseudo-random bytes (no runs of zeros: nothing sparse) to path.
func writeRandom(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 4<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		r.Read(buf)
		if _, err := f.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			b.Fatal(err)
		}
	}
}
