package manifest

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// Piece size bounds for the default choice. Small pieces let a swarm pass a package on sooner
// (a node shares a piece only once it has all of it); the piece count cap keeps every .torrent
// small (under about 80 KB) and large packages at pieces that stay cheap to track.
const (
	MinPieceSize = 32 << 10
	MaxPieceSize = 16 << 20
	// TargetMaxPieces is the piece count the default piece size stays under (above MinPieceSize).
	TargetMaxPieces = 4000
)

// MakeOptions tune Make. The zero value makes both files beside the package with defaults.
type MakeOptions struct {
	URL       string   // the package's URL on the origin: the torrent's url-list (BEP 19) and the .zsync's URL header
	Trackers  []string // announce URLs, in tiers of one
	PieceSize int64    // 0: chosen from the file size (see DefaultPieceSize)
	BlockSize int      // 0: zsyncmake's default for the file size
	Align     int64    // >0: every piece lies inside one Align-byte block (an HDFS block, say)
	OutDir    string   // "": beside the package
	Workers   int      // hashing goroutines, default runtime.NumCPU()
	// OnProgress, when set, is called from the reading goroutine with the bytes read so far.
	OnProgress func(done int64)
	// Now stamps the torrent's creation date; nil means time.Now.
	Now func() time.Time
}

// MakeResult describes what Make wrote.
type MakeResult struct {
	Package  string `json:"package"`
	Torrent  string `json:"torrent"`
	Zsync    string `json:"zsync"`
	InfoHash string `json:"info_hash"`
	// ZsyncInfoHash is the info hash of the .zsync's own torrent (see Torrent.ZsyncTorrent):
	// a tracker that serves listed hashes only must list it too.
	ZsyncInfoHash string `json:"zsync_info_hash"`
	SHA1          string `json:"sha1"`
	Length        int64  `json:"length"`
	PieceSize     int64  `json:"piece_size"`
	Pieces        int    `json:"pieces"`
	BlockSize     int    `json:"block_size"`
	Blocks        int    `json:"blocks"`
	HashLengths   string `json:"hash_lengths"`
}

// Input errors that Make reports; each is wrapped with the file's name.
var (
	ErrEmpty      = errors.New("file is empty")
	ErrNotRegular = errors.New("not a regular file")
	ErrChanged    = errors.New("file changed while it was read")
	ErrBadURL     = errors.New("URL must be absolute http:// or https://")
	ErrPieceSize  = errors.New("bad piece size")
	ErrBlockSize  = errors.New("bad block size")
)

// DefaultPieceSize picks a power-of-two piece size from MinPieceSize to MaxPieceSize that gives at
// most TargetMaxPieces pieces (about 1,000 to 4,000 for packages above 1 GiB), a multiple of
// blockSize, and, when align > 0, a divisor of align so that no piece straddles an align boundary.
func DefaultPieceSize(length int64, blockSize int, align int64) int64 {
	ps := int64(MinPieceSize)
	for ps < MaxPieceSize && (length+ps-1)/ps > TargetMaxPieces {
		ps <<= 1
	}
	for ps < int64(blockSize) {
		ps <<= 1
	}
	if align > 0 {
		// The largest power of two dividing align bounds the piece size.
		if m := int64(1) << bits.TrailingZeros64(uint64(align)); ps > m {
			ps = m
		}
	}
	return ps
}

func checkURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("%q: %w", u, ErrBadURL)
	}
	return nil
}

// checkLinks checks the URLs the outputs name: the origin's and the trackers'.
func (opt *MakeOptions) checkLinks() error {
	if err := checkURL(opt.URL); err != nil {
		return fmt.Errorf("--url %w", err)
	}
	for _, t := range opt.Trackers {
		if p, err := url.Parse(t); err != nil || (p.Scheme != "http" && p.Scheme != "https" && p.Scheme != "udp") || p.Host == "" {
			return fmt.Errorf("tracker %q: must be an absolute http://, https:// or udp:// URL", t)
		}
	}
	return nil
}

// layout is what the outputs' sizes are for a package: its length, the torrent's piece size,
// the zsync block size and the alignment that pieces respect.
type layout struct {
	length    int64
	pieceSize int64
	blockSize int
	align     int64
}

// layout resolves the piece and block sizes for a package of length bytes (defaults where opt
// leaves them zero) and checks that they fit together.
func (opt *MakeOptions) layout(length int64) (layout, error) {
	bs := opt.BlockSize
	if bs == 0 {
		bs = zsyncfile.DefaultBlocksize(length)
	}
	if bs < zsyncfile.MinBlocksize || bs&(bs-1) != 0 || bs > 1<<20 {
		return layout{}, fmt.Errorf("block size %d: %w: want a power of two from %d to 1048576", bs, ErrBlockSize, zsyncfile.MinBlocksize)
	}
	ps := opt.PieceSize
	if ps == 0 {
		ps = DefaultPieceSize(length, bs, opt.Align)
	}
	if ps < 16<<10 || ps&(ps-1) != 0 || ps > 1<<30 || ps%int64(bs) != 0 {
		return layout{}, fmt.Errorf("piece size %d: %w: want a power of two from 16 KiB to 1 GiB and a multiple of the block size %d", ps, ErrPieceSize, bs)
	}
	if opt.Align < 0 || (opt.Align > 0 && opt.Align%ps != 0) {
		return layout{}, fmt.Errorf("piece size %d: %w: pieces must not straddle --align %d boundaries", ps, ErrPieceSize, opt.Align)
	}
	return layout{length: length, pieceSize: ps, blockSize: bs, align: opt.Align}, nil
}

// zsyncHeader is the .zsync's header for src, without the SHA-1: the URL is the origin's, or
// the package's name, which a client resolves beside the .zsync's own URL.
func (l layout) zsyncHeader(src *Source, url string) zsyncfile.Header {
	zh := zsyncfile.NewHeader(src.Name, l.length, l.blockSize, src.ModTime)
	if url != "" {
		zh.URLs = []string{url}
	} else {
		zh.URLs = []string{src.Name}
	}
	return zh
}

// A Source is a package as Make reads it: its bytes and what the outputs say of it. Make reads
// it from a local file (OpenFile); a caller can hand MakeFrom any other ReaderAt, an object in
// a store for one.
type Source struct {
	Name     string      // base name: the torrent's name, the .zsync's Filename, the outputs' names
	Label    string      // its path or URL, for messages and MakeResult.Package
	Size     int64       // bytes, at least 1
	ModTime  time.Time   // the .zsync's MTime (to the second); zero writes none
	ReaderAt io.ReaderAt // Size bytes, read in ranges
	// Unchanged, when set, is called once the bytes are read and returns an error wrapping
	// ErrChanged if the package changed while it was read.
	Unchanged func() error
	closer    io.Closer
}

// Close releases what OpenFile opened; it does nothing for other Sources.
func (s *Source) Close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}

// OpenFile opens the package at path, which must be a non-empty regular file. Its Unchanged
// compares the file's size, mtime and identity with those at the open.
func OpenFile(path string) (*Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file and the reason
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	if st.Size() == 0 {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrEmpty)
	}
	unchanged := func() error {
		st2, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) || !os.SameFile(st, st2) {
			return fmt.Errorf("%s: %w (size %d -> %d, mtime %s -> %s)", path, ErrChanged, st.Size(), st2.Size(),
				st.ModTime().UTC().Format(time.RFC3339Nano), st2.ModTime().UTC().Format(time.RFC3339Nano))
		}
		return nil
	}
	return &Source{Name: filepath.Base(path), Label: path, Size: st.Size(), ModTime: st.ModTime(),
		ReaderAt: f, Unchanged: unchanged, closer: f}, nil
}

// Make reads the package at path once and writes path.torrent and path.zsync (in opt.OutDir when
// set). Both are written under temporary names and renamed into place only when complete, so a
// failure leaves any earlier good output untouched.
func Make(ctx context.Context, path string, opt MakeOptions) (*MakeResult, error) {
	if err := opt.checkLinks(); err != nil {
		return nil, err
	}
	src, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if opt.OutDir == "" {
		opt.OutDir = filepath.Dir(path)
	}
	return MakeFrom(ctx, src, opt)
}

// MakeFrom is Make for any Source: it reads src once and writes its .torrent and .zsync into
// opt.OutDir, which must be set.
func MakeFrom(ctx context.Context, src *Source, opt MakeOptions) (*MakeResult, error) {
	if err := opt.checkLinks(); err != nil {
		return nil, err
	}
	if _, err := opt.layout(src.Size); err != nil {
		return nil, err
	}
	// Both temporary files exist before a byte is read, so that an unwritable output folder
	// fails at once instead of after hashing tens of gigabytes.
	out, err := createOutputs(opt.OutDir, src.Name)
	if err != nil {
		return nil, err
	}
	defer out.abort()
	enc, err := Encode(ctx, src, io.NewSectionReader(src.ReaderAt, 0, src.Size), opt)
	if err != nil {
		return nil, err
	}
	return out.write(enc)
}

// Encoded is a package's .torrent and .zsync, encoded, and the summary of a make (Torrent and
// Zsync, the paths, left empty: the caller puts the bytes where it wants them).
type Encoded struct {
	Torrent, Zsync []byte
	Result         MakeResult
}

// Encode hashes the package src describes, read in order from r (src.Size bytes: a reader of
// its own, such as one with reads in flight ahead of the hashing), and returns its .torrent and
// .zsync, byte for byte what Make writes for the same bytes, name, modification time and opt.
func Encode(ctx context.Context, src *Source, r io.Reader, opt MakeOptions) (*Encoded, error) {
	if err := opt.checkLinks(); err != nil {
		return nil, err
	}
	lay, err := opt.layout(src.Size)
	if err != nil {
		return nil, err
	}
	zh := lay.zsyncHeader(src, opt.URL)
	h, err := Hash(ctx, r, HashOptions{
		Name: src.Label, Length: src.Size, PieceSize: lay.pieceSize, Zsync: &zh, Whole: true,
		Workers: opt.Workers, OnProgress: opt.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	if src.Unchanged != nil {
		if err := src.Unchanged(); err != nil {
			return nil, err
		}
	}
	return encode(src, lay, zh, h, opt)
}

// encode puts the .torrent and .zsync together from the package's hashes (h.Whole becomes the
// .zsync's SHA-1).
func encode(src *Source, lay layout, zh zsyncfile.Header, h *Hashes, opt MakeOptions) (*Encoded, error) {
	zh.SHA1 = h.Whole
	var zbuf bytes.Buffer
	if err := zsyncfile.Write(&zbuf, &zsyncfile.File{Header: zh, Blocks: h.Blocks}); err != nil {
		return nil, fmt.Errorf("%s.zsync: %w", src.Label, err)
	}
	zsyncName := src.Name + ".zsync"
	zinfo, err := ZsyncInfo(zsyncName, zbuf.Bytes())
	if err != nil {
		return nil, err
	}
	info := metainfo.Info{Name: src.Name, Length: src.Size, PieceLength: lay.pieceSize, Pieces: h.Pieces}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("encoding torrent info: %w", err)
	}
	tb, err := encodeTorrent(infoBytes, zsyncName, zinfo, opt)
	if err != nil {
		return nil, err
	}
	return &Encoded{Torrent: tb, Zsync: zbuf.Bytes(), Result: MakeResult{
		Package:       src.Label,
		InfoHash:      metainfo.HashBytes(infoBytes).HexString(),
		ZsyncInfoHash: metainfo.HashBytes(zinfo).HexString(),
		SHA1:          fmt.Sprintf("%x", h.Whole),
		Length:        src.Size,
		PieceSize:     lay.pieceSize,
		Pieces:        len(h.Pieces) / sha1.Size,
		BlockSize:     lay.blockSize,
		Blocks:        len(h.Blocks),
		HashLengths:   fmt.Sprintf("%d,%d,%d", zh.SeqMatches, zh.RsumBytes, zh.ChecksumBytes),
	}}, nil
}

// outputs are the .torrent and .zsync of one make, under temporary names until commit.
type outputs struct {
	torrentPath, zsyncPath string
	tmpT, tmpZ             *atomicFile
}

func createOutputs(dir, name string) (*outputs, error) {
	if dir == "" {
		return nil, errors.New("manifest: no output folder given")
	}
	o := &outputs{torrentPath: filepath.Join(dir, name+".torrent"), zsyncPath: filepath.Join(dir, name+".zsync")}
	var err error
	if o.tmpT, err = newAtomicFile(o.torrentPath); err != nil {
		return nil, err
	}
	if o.tmpZ, err = newAtomicFile(o.zsyncPath); err != nil {
		o.tmpT.Abort()
		return nil, err
	}
	return o, nil
}

// abort removes the temporary files that commit has not renamed into place.
func (o *outputs) abort() {
	o.tmpT.Abort()
	o.tmpZ.Abort()
}

// write writes the encoded files and renames them into place, the .zsync first: a .torrent
// never names a .zsync that is not there yet.
func (o *outputs) write(enc *Encoded) (*MakeResult, error) {
	if _, err := o.tmpZ.Write(enc.Zsync); err != nil {
		return nil, fmt.Errorf("%s: %w", o.zsyncPath, err)
	}
	if _, err := o.tmpT.Write(enc.Torrent); err != nil {
		return nil, fmt.Errorf("%s: %w", o.torrentPath, err)
	}
	if err := o.tmpZ.Commit(); err != nil {
		return nil, err
	}
	if err := o.tmpT.Commit(); err != nil {
		return nil, err
	}
	res := enc.Result
	res.Torrent, res.Zsync = o.torrentPath, o.zsyncPath
	return &res, nil
}

// encodeTorrent returns the .torrent around infoBytes: the origin as web seed, the trackers in
// tiers of one, the .zsync's name and its own info dictionary, and the creation date from opt.Now.
func encodeTorrent(infoBytes []byte, zsyncName string, zinfo []byte, opt MakeOptions) ([]byte, error) {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	tf := torrentFile{
		InfoBytes:    infoBytes,
		CreationDate: now().Unix(),
		CreatedBy:    "pkgsync",
		ZsyncURL:     zsyncName,
		ZsyncInfo:    zinfo,
	}
	if opt.URL != "" {
		tf.URLList = []string{opt.URL}
	}
	if len(opt.Trackers) > 0 {
		tf.Announce = opt.Trackers[0]
		for _, t := range opt.Trackers {
			tf.AnnounceList = append(tf.AnnounceList, []string{t})
		}
	}
	tb, err := bencode.Marshal(tf)
	if err != nil {
		return nil, fmt.Errorf("encoding torrent: %w", err)
	}
	return tb, nil
}

// torrentFile is the metainfo as pkgsync writes it: BEP 3/12/19 keys plus "zsync-url" and
// "zsync-info" (see ZsyncTorrent).
type torrentFile struct {
	Announce     string        `bencode:"announce,omitempty"`
	AnnounceList [][]string    `bencode:"announce-list,omitempty"`
	Comment      string        `bencode:"comment,omitempty"`
	CreatedBy    string        `bencode:"created by,omitempty"`
	CreationDate int64         `bencode:"creation date,omitempty"`
	InfoBytes    bencode.Bytes `bencode:"info"`
	URLList      []string      `bencode:"url-list,omitempty"`
	ZsyncURL     string        `bencode:"zsync-url,omitempty"`
	ZsyncInfo    bencode.Bytes `bencode:"zsync-info,omitempty"`
}
