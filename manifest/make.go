package manifest

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"math/bits"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// Piece size bounds for the default choice. Small pieces let a swarm pass a package on
// sooner (a node shares a piece only once it has all of it): a 16-node fan-out of 16 MiB ran
// at 0.60 of the bound with 256 KiB pieces and 0.83 with 32 KiB ones (swarmbench --short). The
// piece count cap keeps packages above about 128 MiB at their old sizes and every .torrent
// under about 80 KB.
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

// Make reads the package at path once and writes path.torrent and path.zsync (in opt.OutDir when
// set). Both are written under temporary names and renamed into place only when complete, so a
// failure leaves any earlier good output untouched.
func Make(ctx context.Context, path string, opt MakeOptions) (*MakeResult, error) {
	if err := checkURL(opt.URL); err != nil {
		return nil, fmt.Errorf("--url %w", err)
	}
	for _, t := range opt.Trackers {
		if p, err := url.Parse(t); err != nil || (p.Scheme != "http" && p.Scheme != "https" && p.Scheme != "udp") || p.Host == "" {
			return nil, fmt.Errorf("tracker %q: must be an absolute http://, https:// or udp:// URL", t)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file and the reason
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	length := st.Size()
	if length == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrEmpty)
	}
	bs := opt.BlockSize
	if bs == 0 {
		bs = zsyncfile.DefaultBlocksize(length)
	}
	if bs < zsyncfile.MinBlocksize || bs&(bs-1) != 0 || bs > 1<<20 {
		return nil, fmt.Errorf("block size %d: %w: want a power of two from %d to 1048576", bs, ErrBlockSize, zsyncfile.MinBlocksize)
	}
	ps := opt.PieceSize
	if ps == 0 {
		ps = DefaultPieceSize(length, bs, opt.Align)
	}
	if ps < 16<<10 || ps&(ps-1) != 0 || ps > 1<<30 || ps%int64(bs) != 0 {
		return nil, fmt.Errorf("piece size %d: %w: want a power of two from 16 KiB to 1 GiB and a multiple of the block size %d", ps, ErrPieceSize, bs)
	}
	if opt.Align > 0 && opt.Align%ps != 0 {
		return nil, fmt.Errorf("piece size %d: %w: pieces must not straddle --align %d boundaries", ps, ErrPieceSize, opt.Align)
	}

	dir := opt.OutDir
	if dir == "" {
		dir = filepath.Dir(path)
	}
	base := filepath.Base(path)
	torrentPath := filepath.Join(dir, base+".torrent")
	zsyncPath := filepath.Join(dir, base+".zsync")
	// Create both temporary files before reading a byte, so that an unwritable output folder fails
	// at once instead of after hashing tens of gigabytes.
	tmpT, err := newAtomicFile(torrentPath)
	if err != nil {
		return nil, err
	}
	defer tmpT.Abort()
	tmpZ, err := newAtomicFile(zsyncPath)
	if err != nil {
		return nil, err
	}
	defer tmpZ.Abort()

	zh := zsyncfile.NewHeader(base, length, bs, st.ModTime())
	if opt.URL != "" {
		zh.URLs = []string{opt.URL}
	} else {
		zh.URLs = []string{base} // relative to the .zsync's own URL: the package sits beside it
	}
	h, err := Hash(ctx, f, path, length, ps, &zh, opt.Workers, opt.OnProgress)
	if err != nil {
		return nil, err
	}
	// The file must not have moved under us: same size and mtime as when we started.
	st2, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st2.Size() != length || !st2.ModTime().Equal(st.ModTime()) || !os.SameFile(st, st2) {
		return nil, fmt.Errorf("%s: %w (size %d -> %d, mtime %s -> %s)", path, ErrChanged,
			length, st2.Size(), st.ModTime().UTC().Format(time.RFC3339Nano), st2.ModTime().UTC().Format(time.RFC3339Nano))
	}
	zh.SHA1 = h.Whole
	zf := &zsyncfile.File{Header: zh, Blocks: h.Blocks}
	var zbuf bytes.Buffer
	if err := zsyncfile.Write(&zbuf, zf); err != nil {
		return nil, fmt.Errorf("%s: %w", zsyncPath, err)
	}
	zinfo, err := ZsyncInfo(filepath.Base(zsyncPath), zbuf.Bytes())
	if err != nil {
		return nil, err
	}
	if _, err := tmpZ.Write(zbuf.Bytes()); err != nil {
		return nil, fmt.Errorf("%s: %w", zsyncPath, err)
	}

	info := metainfo.Info{Name: base, Length: length, PieceLength: ps, Pieces: h.Pieces}
	infoBytes, err := bencode.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("encoding torrent info: %w", err)
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	tf := torrentFile{
		InfoBytes:    infoBytes,
		CreationDate: now().Unix(),
		CreatedBy:    "pkgsync",
		ZsyncURL:     filepath.Base(zsyncPath),
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
	if _, err := tmpT.Write(tb); err != nil {
		return nil, fmt.Errorf("%s: %w", torrentPath, err)
	}
	if err := tmpZ.Commit(); err != nil {
		return nil, err
	}
	if err := tmpT.Commit(); err != nil {
		return nil, err
	}
	return &MakeResult{
		Package:       path,
		Torrent:       torrentPath,
		Zsync:         zsyncPath,
		InfoHash:      metainfo.HashBytes(infoBytes).HexString(),
		ZsyncInfoHash: metainfo.HashBytes(zinfo).HexString(),
		SHA1:          fmt.Sprintf("%x", h.Whole),
		Length:        length,
		PieceSize:     ps,
		Pieces:        len(h.Pieces) / sha1.Size,
		BlockSize:     bs,
		Blocks:        len(h.Blocks),
		HashLengths:   fmt.Sprintf("%d,%d,%d", zh.SeqMatches, zh.RsumBytes, zh.ChecksumBytes),
	}, nil
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
