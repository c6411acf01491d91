package manifest

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// Make as a map-and-merge job, for packages too large for one reader: MakePart hashes the i-th
// of n stretches of a package (`pkgsync make --part I/N`), anywhere the package can be read,
// and Merge combines the n Parts into the .torrent and .zsync that Make writes in one pass,
// byte for byte. The stretches are cut at multiples of the piece size, which the zsync block
// size divides (and of the alignment when there is one, which the piece size divides), so each
// holds whole pieces and whole blocks and no two overlap.
//
// The whole-file SHA-1 of the .zsync is the one thing that cannot be cut: SHA-1 runs over the
// bytes in order, and the state at the start of a stretch depends on every byte before it. Merge
// computes it with one sequential read of the package, so it needs read access to the package
// (at the Source the parts name); that read is the cheapest of the hashes, and the pieces and
// blocks need none of it.

// MaxParts bounds N in --part I/N.
const MaxParts = 1 << 16

// Part is the outcome of MakePart: the hashes of one stretch of a package, and everything the
// outputs depend on, so that Merge can tell whether parts belong together.
type Part struct {
	File string // the part file it was read from, for messages; not stored in it

	Name      string    // the package's base name
	Source    string    // the path or URL the stretch was read from; Merge reads the package there
	Size      int64     // the package's size
	ModTime   time.Time // the package's mtime, as its source gives it; zero for none
	PieceSize int64
	BlockSize int
	Align     int64    // 0: none
	URL       string   // MakeOptions.URL
	Trackers  []string // MakeOptions.Trackers

	Index, Count int               // I and N of --part I/N, 0 <= I < N
	Off, End     int64             // the stretch: bytes [Off, End) of the package
	Pieces       []byte            // the SHA-1 of each piece of the stretch, concatenated
	Blocks       []zsyncfile.Block // the zsync record of each block of the stretch
}

// unit is where stretches may be cut: the least common multiple of the piece size, the block
// size and the alignment, which layout makes each a multiple of the one before.
func (l layout) unit() int64 {
	if l.align > 0 {
		return l.align
	}
	return l.pieceSize
}

// Stretch returns the bytes [off, end) of part i of n of a package of size bytes cut at
// multiples of unit: the ceil(size/unit) units are dealt out in order, part i taking units
// floor(i*U/n) up to floor((i+1)*U/n). The parts cover the package exactly once; a part is empty
// (off == end) when there are fewer units than parts.
func Stretch(size, unit int64, i, n int) (off, end int64) {
	units := uint64((size + unit - 1) / unit)
	at := func(k int) int64 {
		hi, lo := bits.Mul64(units, uint64(k))
		q, _ := bits.Div64(hi, lo, uint64(n)) // k <= n, so q <= units: no overflow
		return min(int64(q)*unit, size)
	}
	return at(i), at(i + 1)
}

// checkIndex checks --part I/N.
func checkIndex(i, n int) error {
	if n < 1 || n > MaxParts {
		return fmt.Errorf("--part %d/%d: N must be from 1 to %d", i, n, MaxParts)
	}
	if i < 0 || i >= n {
		return fmt.Errorf("--part %d/%d: I must be from 0 to %d (parts count from 0, as a Kubernetes JOB_COMPLETION_INDEX)", i, n, n-1)
	}
	return nil
}

// PartStretch returns the bytes [off, end) that part i of n holds of a package of size bytes
// made with opt (see Stretch): cut at multiples of the piece size, or of opt.Align when set.
func (opt *MakeOptions) PartStretch(size int64, i, n int) (off, end int64, err error) {
	if err := checkIndex(i, n); err != nil {
		return 0, 0, err
	}
	lay, err := opt.layout(size)
	if err != nil {
		return 0, 0, err
	}
	off, end = Stretch(size, lay.unit(), i, n)
	return off, end, nil
}

// MakePart hashes part i of n of src (see Stretch) with the settings of opt and returns it. It
// reads only that stretch, in ranges of src.ReaderAt.
func MakePart(ctx context.Context, src *Source, opt MakeOptions, i, n int) (*Part, error) {
	if err := opt.checkLinks(); err != nil {
		return nil, err
	}
	lay, err := opt.layout(src.Size)
	if err != nil {
		return nil, err
	}
	off, end, err := opt.PartStretch(src.Size, i, n)
	if err != nil {
		return nil, err
	}
	zh := lay.zsyncHeader(src, opt.URL)
	h, err := Hash(ctx, io.NewSectionReader(src.ReaderAt, off, end-off), HashOptions{
		Name: fmt.Sprintf("%s (bytes %d to %d)", src.Label, off, end), Length: end - off,
		PieceSize: lay.pieceSize, Zsync: &zh, Workers: opt.Workers, OnProgress: opt.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	if src.Unchanged != nil {
		if err := src.Unchanged(); err != nil {
			return nil, err
		}
	}
	return &Part{
		Name: src.Name, Source: src.Label, Size: src.Size, ModTime: src.ModTime,
		PieceSize: lay.pieceSize, BlockSize: lay.blockSize, Align: lay.align, URL: opt.URL, Trackers: opt.Trackers,
		Index: i, Count: n, Off: off, End: end, Pieces: h.Pieces, Blocks: h.Blocks,
	}, nil
}

// Errors Merge reports, wrapped with the part files concerned.
var (
	ErrPartMismatch = errors.New("parts do not belong together")
	ErrPartMissing  = errors.New("part missing")
	ErrPartTwice    = errors.New("part given twice")
)

// Merge checks that parts are all the parts of one package made with the same settings, each
// once, and that src is still that package; then it reads src once for the whole-file SHA-1
// and writes the .torrent and .zsync into opt.OutDir (which must be set), the same bytes as
// MakeFrom with the parts' settings. The settings the parts record (URL, Trackers, PieceSize,
// BlockSize, Align) come from them: set in opt, they must be the parts'.
func Merge(ctx context.Context, src *Source, parts []*Part, opt MakeOptions) (*MakeResult, error) {
	parts, err := CheckParts(parts)
	if err != nil {
		return nil, err
	}
	p := parts[0]
	if err := p.agreesWith(&opt); err != nil {
		return nil, err
	}
	if err := p.checkSource(src); err != nil {
		return nil, err
	}
	opt.URL, opt.Trackers, opt.PieceSize, opt.BlockSize, opt.Align = p.URL, p.Trackers, p.PieceSize, p.BlockSize, p.Align
	lay, err := opt.layout(p.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.File, err)
	}
	h := &Hashes{}
	for _, q := range parts {
		h.Pieces = append(h.Pieces, q.Pieces...)
		h.Blocks = append(h.Blocks, q.Blocks...)
	}
	out, err := createOutputs(opt.OutDir, src.Name)
	if err != nil {
		return nil, err
	}
	defer out.abort()
	whole, err := Hash(ctx, io.NewSectionReader(src.ReaderAt, 0, src.Size), HashOptions{
		Name: src.Label, Length: src.Size, Whole: true, Workers: 1, OnProgress: opt.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	if src.Unchanged != nil {
		if err := src.Unchanged(); err != nil {
			return nil, err
		}
	}
	h.Whole = whole.Whole
	enc, err := encode(src, lay, lay.zsyncHeader(src, opt.URL), h, opt)
	if err != nil {
		return nil, err
	}
	return out.write(enc)
}

// CheckParts returns parts ordered by index once it has checked that each is self-consistent,
// that they agree on the package and the settings, and that each index from 0 to N-1 is there
// exactly once. Merge calls it; a caller can call it first, before it opens the package.
func CheckParts(parts []*Part) ([]*Part, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: no part files given", ErrPartMissing)
	}
	for _, q := range parts {
		if err := q.check(); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", q.File, ErrPartFile, err)
		}
	}
	for _, q := range parts[1:] {
		if err := parts[0].sameJob(q); err != nil {
			return nil, err
		}
	}
	parts = slices.Clone(parts)
	sort.SliceStable(parts, func(a, b int) bool { return parts[a].Index < parts[b].Index })
	n := parts[0].Count
	var missing []string
	seen := 0
	for k, q := range parts {
		if k > 0 && parts[k-1].Index == q.Index {
			return nil, fmt.Errorf("%w: %s and %s are both part %d/%d: their stretches overlap", ErrPartTwice, parts[k-1].File, q.File, q.Index, n)
		}
		for ; seen < q.Index; seen++ {
			missing = append(missing, fmt.Sprintf("%d/%d", seen, n))
		}
		seen = q.Index + 1
	}
	for ; seen < n; seen++ {
		missing = append(missing, fmt.Sprintf("%d/%d", seen, n))
	}
	if len(missing) > 0 {
		if len(missing) > 8 {
			missing = append(missing[:8], fmt.Sprintf("and %d more", len(missing)-8))
		}
		return nil, fmt.Errorf("%w: no part file for %s of %s (given %d of %d)", ErrPartMissing, strings.Join(missing, ", "), parts[0].Name, len(parts), n)
	}
	return parts, nil
}

// sameJob reports how q differs from p in what the outputs depend on, naming both files.
func (p *Part) sameJob(q *Part) error {
	diff := func(what string, a, b any) error {
		return fmt.Errorf("%w: %s has %s %v, %s has %v", ErrPartMismatch, p.File, what, a, q.File, b)
	}
	switch {
	case p.Name != q.Name:
		return diff("package", p.Name, q.Name)
	case p.Size != q.Size:
		return diff("package size", p.Size, q.Size)
	case !p.ModTime.Equal(q.ModTime):
		return diff("package mtime", fmtTime(p.ModTime), fmtTime(q.ModTime))
	case p.Count != q.Count:
		return diff("part count N", p.Count, q.Count)
	case p.PieceSize != q.PieceSize:
		return diff("piece size", p.PieceSize, q.PieceSize)
	case p.BlockSize != q.BlockSize:
		return diff("block size", p.BlockSize, q.BlockSize)
	case p.Align != q.Align:
		return diff("--align", p.Align, q.Align)
	case p.URL != q.URL:
		return diff("--url", fmt.Sprintf("%q", p.URL), fmt.Sprintf("%q", q.URL))
	case !slices.Equal(p.Trackers, q.Trackers):
		return diff("--tracker", fmt.Sprintf("%q", p.Trackers), fmt.Sprintf("%q", q.Trackers))
	}
	return nil
}

// agreesWith checks that the settings given to the merge, where given, are the parts'.
func (p *Part) agreesWith(opt *MakeOptions) error {
	diff := func(flag string, given, made any) error {
		return fmt.Errorf("%w: %s %v given to the merge, but the parts (%s) were made with %v", ErrPartMismatch, flag, given, p.File, made)
	}
	switch {
	case opt.URL != "" && opt.URL != p.URL:
		return diff("--url", fmt.Sprintf("%q", opt.URL), fmt.Sprintf("%q", p.URL))
	case len(opt.Trackers) > 0 && !slices.Equal(opt.Trackers, p.Trackers):
		return diff("--tracker", fmt.Sprintf("%q", opt.Trackers), fmt.Sprintf("%q", p.Trackers))
	case opt.PieceSize != 0 && opt.PieceSize != p.PieceSize:
		return diff("--piece-size", opt.PieceSize, p.PieceSize)
	case opt.BlockSize != 0 && opt.BlockSize != p.BlockSize:
		return diff("--block-size", opt.BlockSize, p.BlockSize)
	case opt.Align != 0 && opt.Align != p.Align:
		return diff("--align", opt.Align, p.Align)
	}
	return nil
}

// checkSource checks that src is the package the parts hashed, as it was then.
func (p *Part) checkSource(src *Source) error {
	switch {
	case src.Name != p.Name:
		return fmt.Errorf("%w: %s is named %s, but the parts (%s) are of %s", ErrPartMismatch, src.Label, src.Name, p.File, p.Name)
	case src.Size != p.Size || !src.ModTime.Equal(p.ModTime):
		return fmt.Errorf("%s: %w: the package changed since the parts were made (%s: size %d, mtime %s; now size %d, mtime %s)", src.Label, ErrPartMismatch,
			p.File, p.Size, fmtTime(p.ModTime), src.Size, fmtTime(src.ModTime))
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// check checks that p is self-consistent: valid settings for its package, the stretch that its
// index gives (checkSettings), and one hash for each of the stretch's pieces and blocks.
func (p *Part) check() error {
	if err := p.checkSettings(); err != nil {
		return err
	}
	if want := numPieces(p.End-p.Off, p.PieceSize) * sha1.Size; len(p.Pieces) != want {
		return fmt.Errorf("%d bytes of piece hashes, want %d for bytes %d to %d", len(p.Pieces), want, p.Off, p.End)
	}
	if want := zsyncfile.NumBlocks(p.End-p.Off, p.BlockSize); len(p.Blocks) != want {
		return fmt.Errorf("%d block records, want %d for bytes %d to %d", len(p.Blocks), want, p.Off, p.End)
	}
	return nil
}

// checkSettings checks p's package, settings and stretch: what its hashes are of.
func (p *Part) checkSettings() error {
	if err := checkName(p.Name); err != nil {
		return err
	}
	if p.Size < 1 {
		return fmt.Errorf("package size %d: want at least 1 byte", p.Size)
	}
	opt := MakeOptions{URL: p.URL, Trackers: p.Trackers, PieceSize: p.PieceSize, BlockSize: p.BlockSize, Align: p.Align}
	if err := opt.checkLinks(); err != nil {
		return err
	}
	if p.PieceSize == 0 || p.BlockSize == 0 {
		return fmt.Errorf("piece size %d, block size %d: both must be set", p.PieceSize, p.BlockSize)
	}
	lay, err := opt.layout(p.Size)
	if err != nil {
		return err
	}
	if err := checkIndex(p.Index, p.Count); err != nil {
		return err
	}
	if off, end := Stretch(p.Size, lay.unit(), p.Index, p.Count); p.Off != off || p.End != end {
		return fmt.Errorf("stretch [%d, %d) is not part %d/%d of a %d-byte package cut at multiples of %d: that is [%d, %d)",
			p.Off, p.End, p.Index, p.Count, p.Size, lay.unit(), off, end)
	}
	return nil
}

// checkName checks that name can be the base name of the outputs: no folder, nothing a path
// could escape with.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00\n") {
		return fmt.Errorf("package name %q: want a file name without folders", name)
	}
	return nil
}

// numPieces is how many pieces of ps bytes cover n bytes.
func numPieces(n, ps int64) int { return int((n + ps - 1) / ps) }
