package bt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/RoaringBitmap/roaring"
	g "github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/pkgsync/pkgsync/internal/directio"
)

// errPieceBusy is what a peer's chunk write gets while the origin owns the piece. The
// library then leaves the chunk pending instead of marking it written, so nobody is blamed
// for the piece and peers may fill it again if the origin fails.
var errPieceBusy = errors.New("piece is being fetched from the origin")

// errNoStorage is returned for torrents that reach the Client's default storage: every
// torrent a Node adds brings its own fileStorage, and the library's file storage (which
// would leave a piece-completion database on disk) must never be used.
var errNoStorage = errors.New("bt: torrent added without storage")

// dataFile is what fileStorage needs of Package.Data.
type dataFile interface {
	io.ReaderAt
	io.WriterAt
	Name() string
}

// fileStorage stores one torrent's data in one file laid out as the torrent's byte
// sequence (the concatenation of its files), so piece i lives at i*PieceLength. Piece
// completion is an in-memory bitmap seeded from Package.Have: no database, nothing
// persisted. It implements storage.ClientImpl for exactly one torrent.
type fileStorage struct {
	f         dataFile
	length    int64
	pieceLen  int64
	numPieces int

	mu        sync.Mutex
	complete  []bool
	busy      []bool      // piece owned by an origin fetch, the range path or the fast path: peer writes are refused
	fast      []bool      // piece owned by the fast path (fast.go)
	lastWrite []time.Time // last accepted peer write per piece
	nComplete int
	allDone   chan struct{} // closed when every piece is complete
	onChange  func()        // called (without locks) when a piece's completion changes
	losses    int64         // times a complete piece became incomplete again
	// onFree is called (without locks) when an incomplete piece stops being owned by the origin
	// or the range path, or a complete piece becomes incomplete: the fast path may take it now.
	onFree func()

	peerBytes atomic.Int64 // bytes accepted from peers

	// direct writes through Package.Direct (none when nil) until O_DIRECT is refused.
	direct directio.Writer

	// closed is set when the library drops the torrent. Goroutines of the library may
	// still read afterwards (serving requests of connections it already closed, or after
	// the caller closed the file), and v1.59.1 panics on a read error once the torrent is
	// closed: PeerConn.servePeerRequest (peerconn.go) defers a check that the request left
	// peerRequests, and peerRequestDataReadFailed returns early for a closed torrent without
	// removing it. Such reads get zeros instead, which nobody receives.
	closed atomic.Bool
}

var _ storage.ClientImpl = (*fileStorage)(nil)

func newFileStorage(f dataFile, info *metainfo.Info, have []bool) *fileStorage {
	s := &fileStorage{
		f:         f,
		length:    info.TotalLength(),
		pieceLen:  info.PieceLength,
		numPieces: info.NumPieces(),
		allDone:   make(chan struct{}),
	}
	s.complete = make([]bool, s.numPieces)
	s.busy = make([]bool, s.numPieces)
	s.fast = make([]bool, s.numPieces)
	s.lastWrite = make([]time.Time, s.numPieces)
	for i, h := range have {
		if h && i < s.numPieces {
			s.complete[i] = true
			s.nComplete++
		}
	}
	if s.nComplete == s.numPieces {
		close(s.allDone)
	}
	return s
}

// OpenTorrent implements storage.ClientImpl.
func (s *fileStorage) OpenTorrent(_ context.Context, info *metainfo.Info, _ metainfo.Hash) (storage.TorrentImpl, error) {
	if info.TotalLength() != s.length || info.PieceLength != s.pieceLen || info.NumPieces() != s.numPieces {
		return storage.TorrentImpl{}, fmt.Errorf("bt: storage for %s was made for other info (length %d, piece length %d)",
			s.f.Name(), s.length, s.pieceLen)
	}
	piece := func(p metainfo.Piece) storage.PieceImpl {
		return filePiece{s: s, index: p.Index(), off: p.Offset(), length: p.Length()}
	}
	return storage.TorrentImpl{
		Piece: piece,
		PieceWithHash: func(p metainfo.Piece, _ g.Option[[]byte]) storage.PieceImpl {
			return piece(p)
		},
		// The file belongs to the caller; dropping the torrent leaves it open.
		Close: func() error {
			s.closed.Store(true)
			return nil
		},
	}, nil
}

func (s *fileStorage) isComplete(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.complete[i]
}

// inFlight reports whether piece i is being fetched (by the origin, the range path or the fast
// path) and not complete yet.
func (s *fileStorage) inFlight(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[i] && !s.complete[i]
}

// completionLosses returns how often a complete piece became incomplete again.
func (s *fileStorage) completionLosses() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.losses
}

// completed returns how many pieces are complete.
func (s *fileStorage) completed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nComplete
}

// snapshot copies the completion bitmap and the last peer write times.
func (s *fileStorage) snapshot(complete []bool, lastWrite []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(complete, s.complete)
	copy(lastWrite, s.lastWrite)
}

// missingBytes is the length of the incomplete pieces.
func (s *fileStorage) missingBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for i, c := range s.complete {
		if !c {
			n += s.pieceLength(i)
		}
	}
	return n
}

func (s *fileStorage) pieceLength(i int) int64 {
	return min(s.pieceLen, s.length-int64(i)*s.pieceLen)
}

func (s *fileStorage) setBusy(i int, busy bool) {
	s.mu.Lock()
	freed := s.busy[i] && !busy && !s.complete[i]
	s.busy[i] = busy
	onFree := s.onFree
	s.mu.Unlock()
	if freed && onFree != nil {
		onFree()
	}
}

// claimFast takes for the fast path the first piece of among from from on (wrapping around)
// that is neither complete nor owned by any path and that want accepts, and returns it, or -1.
// Peer writes to it are refused from now on, until releaseFast. It visits only among's pieces:
// a connection asks after every piece its peer announces, so the cost follows what the peer
// has, not the torrent's size.
func (s *fileStorage) claimFast(from int, among *roaring.Bitmap, want func(int) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	from = min(max(from, 0), s.numPieces)
	if p := s.claimFastIn(from, s.numPieces, among, want); p >= 0 {
		return p
	}
	return s.claimFastIn(0, from, among, want)
}

// claimFastIn is claimFast over the pieces of among in [lo, hi). s.mu is held.
func (s *fileStorage) claimFastIn(lo, hi int, among *roaring.Bitmap, want func(int) bool) int {
	it := among.Iterator()
	it.AdvanceIfNeeded(uint32(lo))
	for it.HasNext() {
		p := int(it.Next())
		if p >= hi {
			break
		}
		if s.complete[p] || s.busy[p] || !want(p) {
			continue
		}
		s.busy[p], s.fast[p] = true, true
		return p
	}
	return -1
}

// releaseFast ends the fast path's hold on piece i, and reports whether it had one.
func (s *fileStorage) releaseFast(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fast[i] {
		return false
	}
	s.busy[i], s.fast[i] = false, false
	return true
}

// noteWrite records that bytes of piece i arrived from a peer now, outside the library (the
// fast path): the origin leaves a piece alone while it moves.
func (s *fileStorage) noteWrite(i int) {
	now := time.Now()
	s.mu.Lock()
	s.lastWrite[i] = now
	s.mu.Unlock()
}

func (s *fileStorage) setComplete(i int, c bool) {
	s.mu.Lock()
	changed := s.complete[i] != c
	if changed {
		s.complete[i] = c
		if c {
			s.nComplete++
			if s.nComplete == s.numPieces {
				close(s.allDone)
			}
		} else {
			if s.nComplete == s.numPieces {
				// A complete torrent lost a piece (a forced recheck failed).
				s.allDone = make(chan struct{})
			}
			s.nComplete--
			s.losses++
		}
	}
	onChange, onFree := s.onChange, s.onFree
	s.mu.Unlock()
	if changed && onChange != nil {
		onChange()
	}
	if changed && !c && onFree != nil {
		onFree()
	}
}

// done returns a channel closed once every piece is complete.
func (s *fileStorage) done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allDone
}

// filePiece is one piece of a fileStorage. The library clamps reads and writes to the
// piece; offsets here are relative to the piece.
type filePiece struct {
	s      *fileStorage
	index  int
	off    int64
	length int64
}

var _ interface {
	storage.PieceImpl
	io.WriterTo
} = filePiece{}

// ReadAt implements io.ReaderAt over the piece.
func (p filePiece) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off > p.length {
		return 0, fmt.Errorf("bt: read at %d outside piece %d of %s (length %d)", off, p.index, p.s.f.Name(), p.length)
	}
	if rest := p.length - off; int64(len(b)) > rest {
		b = b[:rest]
	}
	if p.s.closed.Load() {
		clear(b)
		return len(b), nil
	}
	n, err := p.s.f.ReadAt(b, p.off+off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("bt: reading %s at %d+%d (piece %d): %w", p.s.f.Name(), p.off+off, len(b), p.index, err)
	}
	return n, err
}

// WriteAt implements io.WriterAt over the piece. Writes come only from peers: the origin
// callback writes the file itself. They are refused while the origin owns the piece.
func (p filePiece) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > p.length {
		return 0, fmt.Errorf("bt: write of %d bytes at %d outside piece %d of %s (length %d)",
			len(b), off, p.index, p.s.f.Name(), p.length)
	}
	if p.s.closed.Load() {
		return len(b), nil // dropped: the torrent is gone
	}
	p.s.mu.Lock()
	busy := p.s.busy[p.index]
	p.s.mu.Unlock()
	if busy {
		return 0, fmt.Errorf("bt: piece %d of %s: %w", p.index, p.s.f.Name(), errPieceBusy)
	}
	n, err := p.s.f.WriteAt(b, p.off+off)
	p.s.peerBytes.Add(int64(n))
	p.s.mu.Lock()
	p.s.lastWrite[p.index] = time.Now()
	p.s.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("bt: writing %s at %d+%d (piece %d): %w", p.s.f.Name(), p.off+off, len(b), p.index, err)
	}
	return n, nil
}

// WriteTo implements io.WriterTo: the library hashes pieces through it.
func (p filePiece) WriteTo(w io.Writer) (int64, error) {
	if p.s.closed.Load() {
		return 0, fmt.Errorf("bt: piece %d of %s: torrent closed", p.index, p.s.f.Name())
	}
	n, err := io.Copy(w, io.NewSectionReader(p.s.f, p.off, p.length))
	if err == nil && n != p.length {
		err = fmt.Errorf("bt: piece %d of %s: read %d of %d bytes: %w", p.index, p.s.f.Name(), n, p.length, io.ErrUnexpectedEOF)
	}
	return n, err
}

// MarkComplete implements storage.PieceImpl; the library calls it once the piece's hash
// matched.
func (p filePiece) MarkComplete() error {
	p.s.setComplete(p.index, true)
	return nil
}

// MarkNotComplete implements storage.PieceImpl.
func (p filePiece) MarkNotComplete() error {
	p.s.setComplete(p.index, false)
	return nil
}

// Completion implements storage.PieceImpl: the state is always known, it is what the
// caller said (Package.Have) or what verification found since.
func (p filePiece) Completion() storage.Completion {
	return storage.Completion{Ok: true, Complete: p.s.isComplete(p.index)}
}

// noStorage is the Client's default storage: it refuses every torrent (see errNoStorage).
type noStorage struct{}

func (noStorage) OpenTorrent(context.Context, *metainfo.Info, metainfo.Hash) (storage.TorrentImpl, error) {
	return storage.TorrentImpl{}, errNoStorage
}

// writeWhole writes b, a whole verified piece, at off: with O_DIRECT when the storage has a
// direct descriptor, b is no shorter than directio.MinWrite and off, len(b) and b's memory are
// aligned (directio.Align), else through the page cache, holding buffered meanwhile. After
// O_DIRECT refused a write (EINVAL) every write goes through the page cache.
//
// Direct writes take no lock: ext4 lets aligned direct writes into allocated blocks (the part
// file is fallocated) run side by side, so two checkers keep two writes in the device's queue,
// where through the page cache a second write spins in the kernel while it waits for the
// first. Nor do they go to Package.Written, which pushes the page cache's dirty pages to the
// disk as the download goes on: a direct write is on the device when it returns, and a flush
// forced meanwhile would hold the next direct writes behind its journal commit.
func (s *fileStorage) writeWhole(b []byte, off int64, buffered sync.Locker) error {
	if len(b) >= directio.MinWrite && off%directio.Align == 0 && len(b)%directio.Align == 0 &&
		uintptr(unsafe.Pointer(&b[0]))%directio.Align == 0 {
		if ok, err := s.direct.WriteDirect(b, off); ok {
			return err
		}
	}
	buffered.Lock()
	defer buffered.Unlock()
	_, err := s.f.WriteAt(b, off)
	return err
}
