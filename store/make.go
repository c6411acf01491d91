package store

import (
	"context"
	"fmt"
	"path"

	"github.com/pkgsync/pkgsync/manifest"
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
// parallel (makeAhead reads of makeChunk bytes in flight), and returns the .torrent and .zsync
// that manifest.Make writes for a local copy of the same name and modification time, byte for
// byte: both go through manifest.Encode. opt.OutDir is not used: the caller writes the outputs
// (beside the object with Put, or into a folder).
func Make(ctx context.Context, s Store, key string, opt manifest.MakeOptions) (*Made, error) {
	src, err := Source(ctx, s, key)
	if err != nil {
		return nil, err
	}
	ra := NewReadAhead(src.ReaderAt, src.Size, makeChunk, makeAhead)
	defer ra.Close()
	enc, err := manifest.Encode(ctx, src, ra, opt)
	if err != nil {
		return nil, err
	}
	enc.Result.Package = ""
	return &Made{Torrent: enc.Torrent, Zsync: enc.Zsync, Result: enc.Result}, nil
}

// Source opens the object key of s as a manifest.Source, for make and for make --part and
// --merge: its name, size and modification time, and its bytes through ranged reads pinned to
// its identity, so that an object replaced while it is read fails the read (ErrChanged). Its
// Label, s/key, is the URL that --merge opens the package at again.
func Source(ctx context.Context, s Store, key string) (*manifest.Source, error) {
	where := s.String() + "/" + key
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if info.Size == 0 {
		return nil, fmt.Errorf("%s: %w", where, manifest.ErrEmpty)
	}
	return &manifest.Source{Name: path.Base(key), Label: where, Size: info.Size, ModTime: info.ModTime,
		ReaderAt: NewReaderAt(ctx, s, info)}, nil
}
