package store

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"net/url"
	"path"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// Read-ahead of Make: reads of makeChunk bytes, makeAhead of them in flight. Sixteen 4 MiB reads
// keep a store with tens of milliseconds of latency per request streaming at hundreds of MB/s.
const (
	makeChunk = 4 << 20
	makeAhead = 16
)

// Made is what Make produces for an object: the bytes of its .torrent and .zsync, and the
// summary manifest.Make gives for a local file (Package, Torrent and Zsync left for the caller,
// which knows where it puts them).
type Made struct {
	Torrent, Zsync []byte
	Result         manifest.MakeResult
}

// Make hashes the object key of s without a local copy, reading it with ranged reads in
// parallel, and returns the .torrent and .zsync that manifest.Make writes for a local copy of
// the same name and modification time, byte for byte. opt.OutDir is not used: the caller
// writes the outputs (beside the object with Put, or into a folder).
//
// manifest.Make reads a local path only, so the hashing runs through manifest.Hash and the two
// files are put together here as manifest.Make puts them together (see hashObject and
// encodeTorrent, the one place that follows manifest's format); TestMakeEqualsLocal compares
// the two.
func Make(ctx context.Context, s Store, key string, opt manifest.MakeOptions) (*Made, error) {
	where := s.String() + "/" + key
	if err := checkMakeURLs(opt); err != nil {
		return nil, err
	}
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if info.Size == 0 {
		return nil, fmt.Errorf("%s: %w", where, manifest.ErrEmpty)
	}
	bs, ps, err := makeSizes(info.Size, opt)
	if err != nil {
		return nil, err
	}
	base := path.Base(key)
	zh := zsyncfile.NewHeader(base, info.Size, bs, info.ModTime)
	zh.URLs = []string{base}
	if opt.URL != "" {
		zh.URLs = []string{opt.URL}
	}
	ra := NewReadAhead(NewReaderAt(ctx, s, info), info.Size, makeChunk, makeAhead)
	defer ra.Close()
	h, err := hashObject(ctx, ra, where, info.Size, ps, &zh, opt)
	if err != nil {
		return nil, err
	}
	zh.SHA1 = h.Whole
	var zbuf bytes.Buffer
	if err := zsyncfile.Write(&zbuf, &zsyncfile.File{Header: zh, Blocks: h.Blocks}); err != nil {
		return nil, fmt.Errorf("%s.zsync: %w", where, err)
	}
	zinfo, err := manifest.ZsyncInfo(base+".zsync", zbuf.Bytes())
	if err != nil {
		return nil, err
	}
	tb, infoBytes, err := encodeTorrent(base, info.Size, ps, h.Pieces, zinfo, opt)
	if err != nil {
		return nil, err
	}
	return &Made{Torrent: tb, Zsync: zbuf.Bytes(), Result: manifest.MakeResult{
		InfoHash:      metainfo.HashBytes(infoBytes).HexString(),
		ZsyncInfoHash: metainfo.HashBytes(zinfo).HexString(),
		SHA1:          fmt.Sprintf("%x", h.Whole),
		Length:        info.Size,
		PieceSize:     ps,
		Pieces:        len(h.Pieces) / sha1.Size,
		BlockSize:     bs,
		Blocks:        len(h.Blocks),
		HashLengths:   fmt.Sprintf("%d,%d,%d", zh.SeqMatches, zh.RsumBytes, zh.ChecksumBytes),
	}}, nil
}

// hashObject is the one call into manifest's hashing.
func hashObject(ctx context.Context, r *ReadAhead, where string, length, ps int64, zh *zsyncfile.Header, opt manifest.MakeOptions) (*manifest.Hashes, error) {
	return manifest.Hash(ctx, r, manifest.HashOptions{
		Name: where, Length: length, PieceSize: ps, Zsync: zh, Whole: true,
		Workers: opt.Workers, OnProgress: opt.OnProgress,
	})
}

// makeSizes picks and checks the block and piece sizes as manifest.Make does.
func makeSizes(length int64, opt manifest.MakeOptions) (int, int64, error) {
	bs := opt.BlockSize
	if bs == 0 {
		bs = zsyncfile.DefaultBlocksize(length)
	}
	if bs < zsyncfile.MinBlocksize || bs&(bs-1) != 0 || bs > 1<<20 {
		return 0, 0, fmt.Errorf("block size %d: %w: want a power of two from %d to 1048576", bs, manifest.ErrBlockSize, zsyncfile.MinBlocksize)
	}
	ps := opt.PieceSize
	if ps == 0 {
		ps = manifest.DefaultPieceSize(length, bs, opt.Align)
	}
	if ps < 16<<10 || ps&(ps-1) != 0 || ps > 1<<30 || ps%int64(bs) != 0 {
		return 0, 0, fmt.Errorf("piece size %d: %w: want a power of two from 16 KiB to 1 GiB and a multiple of the block size %d", ps, manifest.ErrPieceSize, bs)
	}
	if opt.Align > 0 && opt.Align%ps != 0 {
		return 0, 0, fmt.Errorf("piece size %d: %w: pieces must not straddle --align %d boundaries", ps, manifest.ErrPieceSize, opt.Align)
	}
	return bs, ps, nil
}

// checkMakeURLs checks the origin URL and trackers as manifest.Make does.
func checkMakeURLs(opt manifest.MakeOptions) error {
	if opt.URL != "" {
		p, err := url.Parse(opt.URL)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("--url %q: %w", opt.URL, manifest.ErrBadURL)
		}
	}
	for _, t := range opt.Trackers {
		if p, err := url.Parse(t); err != nil || (p.Scheme != "http" && p.Scheme != "https" && p.Scheme != "udp") || p.Host == "" {
			return fmt.Errorf("tracker %q: must be an absolute http://, https:// or udp:// URL", t)
		}
	}
	return nil
}

// torrentFile is the metainfo as manifest.Make writes it (BEP 3/12/19 keys plus "zsync-url" and
// "zsync-info"); the field order and tags follow manifest's torrentFile.
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

// encodeTorrent returns the .torrent and its info dictionary.
func encodeTorrent(name string, length, ps int64, pieces, zinfo []byte, opt manifest.MakeOptions) ([]byte, []byte, error) {
	infoBytes, err := bencode.Marshal(metainfo.Info{Name: name, Length: length, PieceLength: ps, Pieces: pieces})
	if err != nil {
		return nil, nil, fmt.Errorf("encoding torrent info: %w", err)
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	tf := torrentFile{InfoBytes: infoBytes, CreationDate: now().Unix(), CreatedBy: "pkgsync",
		ZsyncURL: name + ".zsync", ZsyncInfo: zinfo}
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
		return nil, nil, fmt.Errorf("encoding torrent: %w", err)
	}
	return tb, infoBytes, nil
}
