package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pkgsync/pkgsync/httprange"
)

// Fetcher writes byte ranges of one object into a file: the origin side of an update. An
// httprange.Fetcher is one; NewFetcher gives one for any store.
type Fetcher interface {
	// Fetch writes the bytes of ranges to w at their own offsets, and returns nil only when
	// every byte was written. A changed object fails with an error matching ErrChanged (or
	// httprange.ErrChanged).
	Fetch(ctx context.Context, ranges []httprange.Range, w io.WriterAt) error
	Stats() httprange.Stats
}

// FetchOptions tune NewFetcher.
type FetchOptions struct {
	Length   int64  // the object's expected size; <= 0: taken from Stat
	ETag     string // the identity to pin; "": the one Stat gives first
	Parallel int    // reads in flight (default 4)
}

// RangeFetcherMaker is implemented by stores with a better way to fetch many ranges than one
// ReadRange each (HTTP's multi-range requests).
type RangeFetcherMaker interface {
	NewFetcher(key string, opt FetchOptions) Fetcher
}

// BlockSizer is implemented by stores whose objects lie in fixed-size blocks (HDFS): make aligns
// pieces to them by default.
type BlockSizer interface {
	BlockSize(ctx context.Context, key string) (int64, error)
}

// Parts of the generic fetcher.
const (
	fetchChunk   = 8 << 20 // the most one ReadRange asks for
	fetchRetries = 3
)

// NewFetcher returns a Fetcher for key in s.
func NewFetcher(s Store, key string, opt FetchOptions) Fetcher {
	if m, ok := s.(RangeFetcherMaker); ok {
		return m.NewFetcher(key, opt)
	}
	if opt.Parallel <= 0 {
		opt.Parallel = httprange.DefaultParallel
	}
	return &storeFetcher{s: s, key: key, opt: opt}
}

// storeFetcher fetches with one ReadRange per range (split at fetchChunk), opt.Parallel at a
// time. The first Fetch pins the identity and size with Stat unless opt gives them.
type storeFetcher struct {
	s   Store
	key string
	opt FetchOptions

	pinned   atomic.Bool
	pinMu    sync.Mutex
	etag     string
	length   int64
	requests atomic.Int64
	bytes    atomic.Int64
}

func (s *storeFetcher) Stats() httprange.Stats {
	return httprange.Stats{Requests: s.requests.Load(), Bytes: s.bytes.Load()}
}

func (s *storeFetcher) where() string { return s.s.String() + "/" + s.key }

// pin learns the identity and size once.
func (s *storeFetcher) pin(ctx context.Context) error {
	if s.pinned.Load() {
		return nil
	}
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	if s.pinned.Load() {
		return nil
	}
	s.etag, s.length = s.opt.ETag, s.opt.Length
	if s.etag == "" || s.length <= 0 {
		s.requests.Add(1)
		info, err := s.s.Stat(ctx, s.key)
		if err != nil {
			return err
		}
		if s.opt.Length > 0 && info.Size != s.opt.Length {
			return fmt.Errorf("%s: %w: %d bytes, expected %d", s.where(), ErrChanged, info.Size, s.opt.Length)
		}
		if s.etag != "" && info.ETag != s.etag {
			return fmt.Errorf("%s: %w: identity %s, expected %s", s.where(), ErrChanged, info.ETag, s.etag)
		}
		s.etag, s.length = info.ETag, info.Size
	}
	s.pinned.Store(true)
	return nil
}

// Fetch reads every range (coalesced, split at fetchChunk) with up to Parallel reads in flight.
func (s *storeFetcher) Fetch(ctx context.Context, ranges []httprange.Range, w io.WriterAt) error {
	rs := httprange.Coalesce(ranges)
	if len(rs) == 0 {
		return nil
	}
	if err := s.pin(ctx); err != nil {
		return err
	}
	for _, r := range rs {
		if r.Off < 0 || r.End() > s.length {
			return fmt.Errorf("%s %s: ends past the %d bytes of the object", s.where(), r, s.length)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opt.Parallel)
	for _, r := range rs {
		for off := r.Off; off < r.End(); off += fetchChunk {
			piece := httprange.Range{Off: off, Len: min(fetchChunk, r.End()-off)}
			g.Go(func() error { return s.fetchOne(gctx, piece, w) })
		}
	}
	return g.Wait()
}

// fetchOne reads one range, asking again for the rest after a failure that may pass.
func (s *storeFetcher) fetchOne(ctx context.Context, r httprange.Range, w io.WriterAt) error {
	var last error
	for try := 0; try <= fetchRetries && r.Len > 0; try++ {
		if try > 0 {
			if err := sleepCtx(ctx, time.Duration(200<<try)*time.Millisecond); err != nil {
				return fmt.Errorf("%s %s: %w (while retrying after: %w)", s.where(), r, err, last)
			}
		}
		s.requests.Add(1)
		n, err := s.readInto(ctx, r, w)
		r.Off, r.Len = r.Off+n, r.Len-n
		if err == nil {
			return nil
		}
		last = err
		var we *writeAtError
		if errors.As(err, &we) || errors.Is(err, ErrChanged) || errors.Is(err, ErrNotExist) || ctx.Err() != nil {
			return err
		}
	}
	return last
}

// writeAtError is a failure of the destination, which another read cannot fix.
type writeAtError struct{ err error }

func (e *writeAtError) Error() string { return e.err.Error() }
func (e *writeAtError) Unwrap() error { return e.err }

// readInto copies r's bytes to w and reports how many were written.
func (s *storeFetcher) readInto(ctx context.Context, r httprange.Range, w io.WriterAt) (int64, error) {
	rc, err := s.s.ReadRange(ctx, s.key, r.Off, r.Len, s.etag)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	buf := make([]byte, min(r.Len, 256<<10))
	var done int64
	for done < r.Len {
		k, rerr := rc.Read(buf[:min(int64(len(buf)), r.Len-done)])
		if k > 0 {
			s.bytes.Add(int64(k))
			if _, werr := w.WriteAt(buf[:k], r.Off+done); werr != nil {
				return done, &writeAtError{fmt.Errorf("writing %s %s: %w", s.where(), httprange.Range{Off: r.Off + done, Len: int64(k)}, werr)}
			}
			done += int64(k)
		}
		if rerr == io.EOF && done == r.Len {
			break
		}
		if rerr == io.EOF {
			rerr = io.ErrUnexpectedEOF
		}
		if rerr != nil {
			return done, fmt.Errorf("%s %s: %w", s.where(), r, rerr)
		}
	}
	return done, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
