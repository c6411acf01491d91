package bt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/anacrolix/torrent"

	"github.com/pkgsync/pkgsync/internal/byterange"
	"github.com/pkgsync/pkgsync/originplan"
)

// RangeFetcher fetches byte ranges of the torrent from its origin: httprange.Fetcher and
// store.Fetcher are ones. Fetch writes the bytes of ranges (torrent offsets) to w at their own
// offsets and nothing else, in as few requests as it can, and returns nil only when every byte
// was written. It may write in any order and from several goroutines at once.
type RangeFetcher interface {
	Fetch(ctx context.Context, ranges []Range, w io.WriterAt) error
}

// Object stores bill and throttle per request, so a node asks the origin for a run of pieces
// at once (Package.OriginFetcher): one fetch, streamed, each piece verified and announced as
// soon as its bytes are in. The planner counts a run as one fetch in flight.
//
// A node alone streams long runs. While others share the origin work a run is at most
// claimWindow pieces, claimed whole at launch: nodes whose views of the swarm differ cut
// different blocks, and a long run would hold pieces that another node fetches too, while a
// run cut short wastes the bytes already on their way (a 16-node fan-out made the origin send
// about 1.5 times the package with 16 MiB runs cut that way).
const (
	// runBytesAlone caps a run while no other node shares the origin work: httprange's
	// default MaxRequestBytes, so that a node alone sends the requests `--no-swarm` sends for
	// the same bytes.
	runBytesAlone = 64 << 20
	// runBytesShared caps a run while other nodes share the origin work (besides claimWindow).
	runBytesShared = 16 << 20
	// runPartsShared caps the ranges of a run while other nodes share the origin work:
	// httprange's default MaxRangesPerRequest, one request.
	runPartsShared = 20
)

// originRun is one fetch from the origin in flight.
//
// It claims its pieces a window at a time (claimWindow pieces ahead of the first one not yet
// in), not all at launch: a node alone that others join later leaves them the rest. Once a
// peer claims (or has) a piece of it past the window, the run is cut before that piece: the
// stream stops there and the pieces from there on go back.
type originRun struct {
	order      []int   // the pieces, in the order the stream brings them (ascending)
	start      []int64 // the first byte of each piece's ranges: where a cut stops the stream
	claimed    int     // order[:claimed] are claimed
	cut        int     // order[cut:] are given up (len(order): none)
	w          *runWriter
	left       int  // pieces whose result is still to come
	failLogged bool // a failure of the run was logged
}

// claimWindow is how many pieces a run claims ahead of its stream.
func (s *scheduler) claimWindow() int { return s.takeRun() }

// claimedPieces lists the pieces this node claims: those of its runs' windows not yet done.
func (s *scheduler) claimedPieces() []int {
	var out []int
	for r := range s.active {
		for _, p := range r.order[:r.claimed] {
			if s.inflight[p] != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// advanceRuns moves the claim window of every run on (claimWindow), and cuts a run before the
// first of its unclaimed pieces that a peer claims or has.
func (s *scheduler) advanceRuns(peers []*torrent.PeerConn, avail interface{ Contains(uint32) bool }) {
	for r := range s.active {
		for i := r.claimed; i < r.cut; i++ {
			if p := r.order[i]; s.claimed[p] || avail.Contains(uint32(p)) {
				r.cut = i
				r.w.stop(r.start[i])
				break
			}
		}
		in := 0
		for in < r.claimed && s.inflight[r.order[in]] == nil {
			in++
		}
		if to := min(r.cut, in+s.claimWindow()); to > r.claimed {
			s.broadcast(peers, msgClaim, r.order[r.claimed:to])
			r.claimed = to
		}
	}
}

// originRanges returns the bytes of piece p to ask the origin for: the whole piece after it
// failed verification (a bad peer may have overwritten bytes assumed in place), else its
// missing ranges (Package.Missing), else the whole piece.
func (s *scheduler) originRanges(p int) []Range {
	off, n := int64(p)*s.t.info.PieceLength, s.t.store.pieceLength(p)
	whole := []Range{{Off: off, Len: n}}
	m := s.t.missing[p]
	if m == nil || s.badData[p] {
		return whole
	}
	var out []Range
	for _, r := range m {
		if lo, hi := max(r.Off, off), min(r.End(), off+n); lo < hi {
			out = append(out, Range{Off: lo, Len: hi - lo})
		}
	}
	if len(out) == 0 {
		return whole
	}
	return out
}

// sharing reports whether other nodes share the origin work with this one: connected members,
// or other fetchers a coordinating tracker named.
func sharing(members []originplan.Member, role *originplan.Role) bool {
	if len(members) > 0 {
		return true
	}
	if role == nil {
		return false
	}
	for i, id := range role.Fetchers {
		if i != role.Slot && id != (originplan.PeerID{}) {
			return true
		}
	}
	return false
}

// ownBlock returns the positions [lo, hi) of s.todo that make this node's block of the origin
// work, cut as the planner cuts it: by the tracker's fetcher slots under a Role, else among
// this node and the members by peer ID. A node with a Role that is not a fetcher has no block.
// The only holder of a Role's slots has all of todo for its block: every other slot's block is
// its inheritance (originplan.VacantHeirs). Cut by the slots (a tracker has 128 unless told
// otherwise), its own was a sliver or nothing, and it fetched the rest as another's, a piece
// or a few at a time: a node alone under `pkgsync serve --tracker` asked for 1 MiB of 32 KiB
// pieces in 32 requests, where --no-swarm asks once.
func (s *scheduler) ownBlock(members []originplan.Member, role *originplan.Role) (lo, hi int) {
	nt := len(s.todo)
	if role != nil {
		if !role.Fetcher() {
			return 0, 0
		}
		if !sharing(nil, role) {
			return 0, nt
		}
		nm := len(role.Fetchers)
		return originplan.BlockStart(role.Slot, nt, nm), originplan.BlockStart(role.Slot+1, nt, nm)
	}
	ids := make([][20]byte, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	sorted, rank := originplan.SortedMembers(s.t.node.cl.PeerID(), ids)
	return originplan.BlockStart(rank, nt, len(sorted)), originplan.BlockStart(rank+1, nt, len(sorted))
}

// runPlanner turns the planner's picks of one round into runs. A pick in this node's own block
// is followed by the next open pieces of the block, in the order of todo, up to capBytes of
// ranges. A pick in another node's block (this node ran out of work) is followed by the pieces
// the planner would pick next, were more fetches allowed, while they lie next to the run, at
// most takeRun pieces: the planner walks other blocks backwards from their ends, and takers
// that pick before each other's claims arrive overlap by no more than that. A failed recheck
// (a piece not in todo) runs alone.
type runPlanner struct {
	s        *scheduler
	pieces   *roundPieces
	now      time.Time
	lo, hi   int // own block, positions in s.todo
	capBytes int64
	// maxParts caps the ranges of a run (0: no cap), so that it is one request whose bytes
	// arrive in order, which a cut stops cleanly (originRun).
	maxParts int
	// maxPieces caps the pieces of a run (0: no cap).
	maxPieces int
	taken     map[int]bool // pieces put into a run this round (roundPieces.inRun)
	next      func() []int // the planner's picks with the runs so far taken
}

// takeRun is the most pieces a run taken from another node's block holds: the open pieces the
// planner leaves between a working owner's frontier and what others take.
func (s *scheduler) takeRun() int { return 2 * max(s.cfg.OriginConcurrency, 1) }

// open reports whether piece q may join a run: nobody has, claims or is sending it, and its
// backoff after a failure is over. The planner would also take pieces peers have once the swarm
// stalls; a run leaves those to later rounds.
func (rp *runPlanner) open(q int) bool {
	r := rp.pieces
	if rp.taken[q] || r.Taken(q) || r.Available(q) {
		return false
	}
	notBefore, lastWrite := r.Timers(q)
	return !rp.now.Before(notBefore) && rp.now.Sub(lastWrite) >= originplan.Defaults.PeerWriteGrace
}

// run returns the run that starts at the picked piece p, or nil when p is in a run already.
func (rp *runPlanner) run(p int) []int {
	if rp.taken[p] {
		return nil
	}
	rp.taken[p] = true
	run := []int{p}
	i := rp.s.todoPos[p]
	if rp.s.t.pkg.OriginFetcher == nil || i < 0 {
		return run
	}
	if i < rp.lo || i >= rp.hi {
		return rp.taking(run)
	}
	rs := rp.s.originRanges(p)
	bytes, parts, end := byterange.Sum(rs), len(rs), rs[len(rs)-1].End()
	for j := i + 1; j < rp.hi; j++ {
		q := rp.s.todo[j]
		if !rp.open(q) {
			continue
		}
		rs := rp.s.originRanges(q)
		n, more := byterange.Sum(rs), len(rs)
		if rs[0].Off == end {
			more-- // it continues the run's last range
		}
		if bytes+n > rp.capBytes || (rp.maxParts > 0 && parts+more > rp.maxParts) || (rp.maxPieces > 0 && len(run) >= rp.maxPieces) {
			break
		}
		bytes, parts, end = bytes+n, parts+more, rs[len(rs)-1].End()
		rp.taken[q] = true
		run = append(run, q)
	}
	return run
}

// taking grows a run that starts at a pick in another node's block with the planner's next
// picks, while each is the first open piece below the run in todo.
func (rp *runPlanner) taking(run []int) []int {
	s := rp.s
	bytes := byterange.Sum(s.originRanges(run[0]))
	for len(run) < s.takeRun() {
		low := s.todoPos[run[len(run)-1]]
		j := low - 1
		for j >= 0 && !rp.open(s.todo[j]) {
			j--
		}
		picks := rp.next()
		if j < 0 || len(picks) == 0 || picks[0] != s.todo[j] {
			break
		}
		n := byterange.Sum(s.originRanges(s.todo[j]))
		if bytes+n > rp.capBytes {
			break
		}
		bytes += n
		rp.taken[s.todo[j]] = true
		run = append(run, s.todo[j])
	}
	return run
}

// launchRun claims the first window of run (all of it when it goes backwards: pieces taken
// from another block, at most claimWindow), takes its pieces out of peer requesting and fetches
// them from the origin as one fetch: with Package.OriginFetcher when set, else (a run of one
// piece) with Origin.
func (s *scheduler) launchRun(ctx context.Context, run []int, peers []*torrent.PeerConn) {
	t := s.t
	fctx, cancel := context.WithCancel(ctx)
	r := &originRun{order: run, start: make([]int64, len(run)), cut: len(run), left: len(run)}
	r.claimed = min(len(run), s.claimWindow())
	if len(run) > 1 && run[1] < run[0] {
		r.claimed = len(run)
	}
	s.broadcast(peers, msgClaim, run[:r.claimed])
	t.node.log.Debug("bt: origin run", "torrent", t.name, "pieces", run, "claimed", r.claimed, "members_seen", len(peers))
	ranges := make([][]Range, len(run))
	for i, p := range run {
		// Refuse peer writes first, then stop asking peers for the piece.
		t.store.setBusy(p, true)
		t.lt.Piece(p).SetPriority(torrent.PiecePriorityNone)
		s.inflight[p] = cancel
		ranges[i] = s.originRanges(p)
		r.start[i] = ranges[i][0].Off
	}
	if t.pkg.OriginFetcher != nil {
		r.w = newRunWriter(t.store.f, t.info.PieceLength, len(run))
		for i, p := range run {
			r.w.expect(p, ranges[i])
		}
	}
	s.active[r] = true
	s.runs++
	t.originRequests.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		if r.w != nil {
			s.fetchRun(fctx, r, ranges)
			return
		}
		p := run[0]
		fn, refetch := t.pkg.Origin, false
		if s.badData[p] && t.pkg.Refetch != nil {
			fn, refetch = t.pkg.Refetch, true
		}
		res := originResult{piece: p, refetch: refetch, run: r}
		res.bytes, res.err = fn(fctx, p)
		if res.err == nil {
			// Hash the piece now; if it passes, the library marks it complete and sends
			// HAVE to every peer.
			res.verified, res.err = t.verify(fctx, p)
		}
		s.results <- res
	}()
}

// fetchRun fetches the ranges of the pieces of run in one Fetch call and verifies each piece
// as soon as its bytes are in, while the rest are still arriving: the library then announces
// it and peers take it at once. Every piece of the run gets one result; those whose bytes did
// not all arrive get the fetch's error and go back, as a failed fetch of one piece does.
func (s *scheduler) fetchRun(ctx context.Context, r *originRun, ranges [][]Range) {
	t, w, run := s.t, r.w, r.order
	var all []Range
	for _, rs := range ranges {
		all = append(all, rs...)
	}
	verified := make(chan struct{})
	go func() {
		defer close(verified)
		for p := range w.done {
			res := originResult{piece: p, bytes: w.written(p), run: r}
			res.verified, res.err = t.verify(ctx, p)
			s.results <- res
		}
	}()
	err := t.pkg.OriginFetcher.Fetch(ctx, all, w)
	w.close()
	<-verified
	first, last := run[0], run[len(run)-1]
	for i, p := range run {
		if w.complete(p) {
			continue
		}
		if w.stopped(r.start[i]) {
			s.results <- originResult{piece: p, bytes: w.written(p), run: r, cut: true}
			continue
		}
		cause := err
		if cause == nil {
			cause = fmt.Errorf("the origin fetcher returned without writing %d bytes of it", w.left(p))
		}
		s.results <- originResult{piece: p, bytes: w.written(p), run: r,
			err: fmt.Errorf("piece %d of the run of %d pieces %d-%d from the origin: %w", p, len(run), first, last, cause)}
	}
}

// runWriter writes a run's bytes into the package's file and tells, on done, of each piece
// whose expected bytes have all been written. Fetchers may write from several goroutines.
type runWriter struct {
	f        io.WriterAt
	pieceLen int64
	done     chan int // buffered for every piece of the run: a write never waits

	mu     sync.Mutex
	want   map[int][]Range // per piece: expected bytes not written yet
	got    map[int]int64   // per piece: expected bytes written
	stopAt int64           // bytes from here on are refused: the run was cut
	closed bool
}

// errRunCut ends the stream of a run that was cut (originRun).
var errRunCut = errors.New("the run was cut: a peer claims the rest")

func newRunWriter(f io.WriterAt, pieceLen int64, pieces int) *runWriter {
	return &runWriter{f: f, pieceLen: pieceLen, done: make(chan int, pieces), stopAt: math.MaxInt64,
		want: make(map[int][]Range, pieces), got: make(map[int]int64, pieces)}
}

// stop refuses the bytes from off on.
func (w *runWriter) stop(off int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopAt = min(w.stopAt, off)
}

// stopped reports whether the byte at off is refused.
func (w *runWriter) stopped(off int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return off >= w.stopAt
}

// expect records the ranges (inside piece p, sorted, disjoint) the run fetches for p.
func (w *runWriter) expect(p int, rs []Range) {
	w.want[p] = append([]Range(nil), rs...)
	w.got[p] = 0
}

// WriteAt writes b at off and marks the bytes written; once a piece has all its bytes it is
// sent on done. Bytes past a stop (a cut) are refused with errRunCut.
func (w *runWriter) WriteAt(b []byte, off int64) (int, error) {
	w.mu.Lock()
	closed, stopAt := w.closed, w.stopAt
	w.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("writing %d bytes at %d: the fetch of the run is over", len(b), off)
	}
	var cut error
	if off+int64(len(b)) > stopAt {
		b, cut = b[:max(0, stopAt-off)], errRunCut
	}
	n, err := w.f.WriteAt(b, off)
	if err == nil {
		err = cut
	}
	if n <= 0 {
		return n, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	end := off + int64(n)
	for p := int(off / w.pieceLen); int64(p)*w.pieceLen < end; p++ {
		rs, ok := w.want[p]
		if !ok || len(rs) == 0 {
			continue
		}
		seg := Range{Off: max(off, int64(p)*w.pieceLen), Len: 0}
		seg.Len = min(end, int64(p+1)*w.pieceLen) - seg.Off
		left := byterange.Subtract(rs, seg)
		w.got[p] += byterange.Sum(rs) - byterange.Sum(left)
		w.want[p] = left
		if len(left) == 0 && !w.closed {
			w.done <- p
		}
	}
	return n, err
}

// close ends the run: later writes fail, and done is closed.
func (w *runWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.done)
	}
}

func (w *runWriter) written(p int) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got[p]
}

func (w *runWriter) left(p int) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return byterange.Sum(w.want[p])
}

// complete reports whether every expected byte of p was written.
func (w *runWriter) complete(p int) bool { return w.left(p) == 0 }
