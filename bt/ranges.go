package bt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/RoaringBitmap/roaring"

	"github.com/anacrolix/torrent"
	pp "github.com/anacrolix/torrent/peer_protocol"

	"github.com/pkgsync/pkgsync/internal/byterange"
)

// rangeExtension is the BEP 10 extension by which pkgsync nodes ask each other for parts
// of pieces. The library can only request whole pieces: it has no way to be told that a
// chunk is already present. A piece the delta plan rebuilt in part would cost the whole
// piece; over this extension it costs its missing bytes. Clients without it are never
// asked and never answered.
//
// Every message starts with one kind byte, a request id, a piece index and an offset in
// the piece, each a 4-byte big-endian integer:
//
//	'q' id piece offset length   request length (1..rangeChunk) bytes
//	'd' id piece offset data...  the requested bytes
//	'x' id piece offset          refused: the sender does not have the piece complete
const rangeExtension pp.ExtensionName = "pkgsync_range"

const (
	msgRangeRequest byte = 'q'
	msgRangeData    byte = 'd'
	msgRangeReject  byte = 'x'

	// rangeChunk is the largest request, the usual BitTorrent chunk.
	rangeChunk = 16 << 10
	// rangePerPeer is how many range requests one connection may have outstanding.
	rangePerPeer = 8
	// rangeTimeout: a request unanswered this long is asked of another peer.
	rangeTimeout = 5 * time.Second
	// rangeServing bounds the range requests served at once by one Torrent; more are
	// dropped (the asker times out and asks elsewhere).
	rangeServing = 256
	rangeHeader  = 13
)

var errBadRange = errors.New("malformed pkgsync_range message")

// Range is a byte range of the torrent, Len bytes at torrent offset Off: the type delta and
// httprange use too.
type Range = byterange.Range

// rangeMsg is one decoded pkgsync_range message.
type rangeMsg struct {
	kind   byte
	id     uint32
	piece  int
	off    int64
	length int64  // requests
	data   []byte // replies
}

func encodeRange(m rangeMsg) []byte {
	b := make([]byte, rangeHeader, rangeHeader+4+len(m.data))
	b[0] = m.kind
	binary.BigEndian.PutUint32(b[1:], m.id)
	binary.BigEndian.PutUint32(b[5:], uint32(m.piece))
	binary.BigEndian.PutUint32(b[9:], uint32(m.off))
	switch m.kind {
	case msgRangeRequest:
		b = binary.BigEndian.AppendUint32(b, uint32(m.length))
	case msgRangeData:
		b = append(b, m.data...)
	}
	return b
}

// decodeRange parses a message; the range it names must lie in a piece of the torrent,
// pieceLength giving each piece's length.
func decodeRange(b []byte, numPieces int, pieceLength func(int) int64) (rangeMsg, error) {
	if len(b) < rangeHeader {
		return rangeMsg{}, fmt.Errorf("%w: length %d", errBadRange, len(b))
	}
	m := rangeMsg{
		kind: b[0],
		id:   binary.BigEndian.Uint32(b[1:]),
		off:  int64(binary.BigEndian.Uint32(b[9:])),
	}
	p := binary.BigEndian.Uint32(b[5:])
	if uint64(p) >= uint64(numPieces) {
		return rangeMsg{}, fmt.Errorf("%w: piece %d of %d", errBadRange, p, numPieces)
	}
	m.piece = int(p)
	switch m.kind {
	case msgRangeRequest:
		if len(b) != rangeHeader+4 {
			return rangeMsg{}, fmt.Errorf("%w: request of length %d", errBadRange, len(b))
		}
		m.length = int64(binary.BigEndian.Uint32(b[rangeHeader:]))
	case msgRangeData:
		m.data = b[rangeHeader:]
		m.length = int64(len(m.data))
	case msgRangeReject:
		if len(b) != rangeHeader {
			return rangeMsg{}, fmt.Errorf("%w: reject of length %d", errBadRange, len(b))
		}
		return m, nil
	default:
		return rangeMsg{}, fmt.Errorf("%w: kind %q", errBadRange, m.kind)
	}
	if m.length < 1 || m.length > rangeChunk || m.off+m.length > pieceLength(m.piece) {
		return rangeMsg{}, fmt.Errorf("%w: %d bytes at %d of piece %d", errBadRange, m.length, m.off, m.piece)
	}
	return m, nil
}

// rangeReply is a reply (data or reject) received from a peer, queued for the scheduler.
type rangeReply struct {
	pc  *torrent.PeerConn
	msg rangeMsg
}

// onRangeMessage handles a pkgsync_range message. It runs in a library callback with the
// client lock held: requests are served in goroutines of their own, replies are queued for
// the running Download.
func (t *Torrent) onRangeMessage(pc *torrent.PeerConn, payload []byte) {
	m, err := decodeRange(payload, t.info.NumPieces(), t.store.pieceLength)
	if err != nil {
		t.node.log.Debug("bt: ignoring message", "torrent", t.name, "peer", pc.RemoteAddr.String(), "err", err)
		return
	}
	if m.kind == msgRangeRequest {
		select {
		case t.serving <- struct{}{}:
		default:
			return // too many at once: the asker will ask elsewhere
		}
		go func() {
			defer func() { <-t.serving }()
			t.serveRange(pc, m)
		}()
		return
	}
	if !t.downloading.Load() {
		return // no Download asked for it
	}
	t.mu.Lock()
	t.rangeInbox = append(t.rangeInbox, rangeReply{pc: pc, msg: m})
	t.mu.Unlock()
	t.poke()
}

// serveRange answers a range request from storage: the bytes when the piece is complete,
// a reject otherwise. The reply passes the Node's upload rate limit.
func (t *Torrent) serveRange(pc *torrent.PeerConn, m rangeMsg) {
	reply := rangeMsg{kind: msgRangeReject, id: m.id, piece: m.piece, off: m.off}
	if t.store.closed.Load() {
		return
	}
	if t.store.isComplete(m.piece) {
		buf := make([]byte, m.length)
		off := int64(m.piece)*t.info.PieceLength + m.off
		if _, err := t.pkg.Data.ReadAt(buf, off); err == nil {
			reply.kind, reply.data = msgRangeData, buf
		} else {
			t.node.log.Info("bt: serving a range", "torrent", t.name, "file", t.pkg.Data.Name(),
				"offset", off, "length", m.length, "err", err)
		}
	}
	if reply.kind == msgRangeData {
		if err := t.node.upLimit.WaitN(t.ctx, len(reply.data)); err != nil {
			return // the torrent is closing
		}
	}
	if err := pc.WriteExtendedMessage(rangeExtension, encodeRange(reply)); err != nil {
		return // the connection closed or never spoke the extension
	}
	if n := int64(len(reply.data)); n > 0 {
		t.rangeUp.Add(n)
		t.mu.Lock()
		t.peerLocked(pc).rangeUp += n
		t.mu.Unlock()
	}
}

// rangeChunks cuts the missing ranges of piece p (torrent offsets, clipped to the piece)
// into requests of at most rangeChunk bytes, as offsets in the piece. whole reports that
// nothing is known to be present (no ranges, or ranges covering the whole piece).
func rangeChunks(missing []Range, pieceOff, pieceLen int64) (chunks []Range, whole bool) {
	var total int64
	for _, r := range missing {
		lo, hi := max(r.Off, pieceOff), min(r.Off+r.Len, pieceOff+pieceLen)
		for ; lo < hi; lo += rangeChunk {
			n := min(rangeChunk, hi-lo)
			chunks = append(chunks, Range{Off: lo - pieceOff, Len: n})
			total += n
		}
	}
	return chunks, len(chunks) == 0 || total >= pieceLen
}

// isWhole reports whether missing leaves nothing of the piece at pieceOff known present.
func isWhole(missing []Range, pieceOff, pieceLen int64) bool {
	_, whole := rangeChunks(missing, pieceOff, pieceLen)
	return whole
}

// rangePiece is a partial piece being completed over rangeExtension.
type rangePiece struct {
	piece   int
	pending []Range                    // chunks not asked for yet (offsets in the piece)
	left    int                        // chunks not written yet
	refused map[*torrent.PeerConn]bool // peers that refused or did not answer
	out     map[uint32]*rangeRequest   // outstanding requests by id
	verify  bool                       // all written, being verified
	got     []rangeGot                 // the chunks written, by sender
}

// rangeGot is a chunk a peer sent for a rangePiece: kept so that, if the piece fails
// verification, the sender can be judged once the piece is complete (judgeRanges).
type rangeGot struct {
	peer  netip.Addr
	chunk Range // offsets in the piece
	sum   [sha256.Size]byte
}

// rangeRequest is one outstanding request.
type rangeRequest struct {
	rp    *rangePiece
	chunk Range
	pc    *torrent.PeerConn
	at    time.Time
}

// rangeRound runs the range part of a scheduling round: it gives back requests that timed
// out or whose connection closed, takes partial pieces that a pkgsync peer has complete
// away from the library, hands partial pieces that only other clients have to the library
// (whole), and sends requests for pending chunks.
func (s *scheduler) rangeRound(conns []connView, rangePeers map[*torrent.PeerConn]bool, settled bool, now time.Time) {
	t := s.t
	s.judgeRanges()
	if len(s.partial) == 0 {
		return
	}
	open := make(map[*torrent.PeerConn]*roaring.Bitmap, len(conns))
	for _, cv := range conns {
		open[cv.pc] = cv.bm
	}
	for id, rq := range s.rangeReqs {
		if _, ok := open[rq.pc]; ok && now.Sub(rq.at) < rangeTimeout {
			continue
		}
		s.dropRequest(id, rq)
		rq.rp.refused[rq.pc] = true
		rq.rp.pending = append(rq.rp.pending, rq.chunk)
	}
	hasIt := func(p int, rangeOnly bool) bool {
		for pc, bm := range open {
			if (!rangeOnly || rangePeers[pc]) && bm.Contains(uint32(p)) {
				return true
			}
		}
		return false
	}
	patient := settled || now.Sub(s.start) >= s.cfg.PeerWait
	for _, p := range s.partial {
		switch {
		case s.complete[p], s.ranging[p] != nil, s.inflight[p] != nil, s.rangeFailed[p], s.libOn[p]:
			continue
		case hasIt(p, true):
			chunks, _ := rangeChunks(t.missing[p], int64(p)*t.info.PieceLength, t.store.pieceLength(p))
			// Refuse peer writes first, then keep the library from asking for it (it
			// may have been asked for it after a failed origin fetch).
			t.store.setBusy(p, true)
			t.lt.Piece(p).SetPriority(torrent.PiecePriorityNone)
			s.ranging[p] = &rangePiece{
				piece:   p,
				pending: chunks,
				left:    len(chunks),
				refused: make(map[*torrent.PeerConn]bool),
				out:     make(map[uint32]*rangeRequest),
			}
		case patient && hasIt(p, false):
			// Only clients without the extension have it: they send whole pieces.
			s.libOn[p] = true
			t.lt.DownloadPieces(p, p+1)
		}
	}
	for _, p := range s.partial {
		rp := s.ranging[p]
		if rp == nil || rp.verify {
			continue
		}
		for len(rp.pending) > 0 {
			var best *torrent.PeerConn
			anyone := false
			for pc := range rangePeers {
				bm := open[pc]
				if bm == nil || rp.refused[pc] || !bm.Contains(uint32(p)) {
					continue
				}
				anyone = true
				if s.perPeer[pc] < rangePerPeer && (best == nil || s.perPeer[pc] < s.perPeer[best]) {
					best = pc
				}
			}
			if !anyone && len(rp.out) == 0 {
				t.node.log.Info("bt: no peer gives the missing ranges", "torrent", t.name, "piece", p)
				s.rangeFallback(p)
				break
			}
			if best == nil {
				break
			}
			c := rp.pending[len(rp.pending)-1]
			rp.pending = rp.pending[:len(rp.pending)-1]
			s.nextID++
			msg := rangeMsg{kind: msgRangeRequest, id: s.nextID, piece: p, off: c.Off, length: c.Len}
			if err := best.WriteExtendedMessage(rangeExtension, encodeRange(msg)); err != nil {
				rp.refused[best] = true
				rp.pending = append(rp.pending, c)
				continue
			}
			rq := &rangeRequest{rp: rp, chunk: c, pc: best, at: now}
			rp.out[s.nextID] = rq
			s.rangeReqs[s.nextID] = rq
			s.perPeer[best]++
		}
	}
}

// dropRequest forgets an outstanding request.
func (s *scheduler) dropRequest(id uint32, rq *rangeRequest) {
	delete(s.rangeReqs, id)
	delete(rq.rp.out, id)
	if s.perPeer[rq.pc]--; s.perPeer[rq.pc] <= 0 {
		delete(s.perPeer, rq.pc)
	}
}

// rangeFallback gives partial piece p up for the range path: its outstanding requests are
// forgotten and the piece goes back to the existing paths, whole from peers through the
// library or its missing ranges from the origin.
func (s *scheduler) rangeFallback(p int) {
	t := s.t
	if rp := s.ranging[p]; rp != nil {
		for id, rq := range rp.out {
			s.dropRequest(id, rq)
		}
		if len(rp.got) > 0 {
			if s.rangeSuspects == nil {
				s.rangeSuspects = make(map[int][]rangeGot)
			}
			s.rangeSuspects[p] = append(s.rangeSuspects[p], rp.got...)
		}
		delete(s.ranging, p)
	}
	s.rangeFailed[p] = true
	t.store.setBusy(p, false)
	t.fastWhole(p)
	if !s.libOn[p] {
		s.libOn[p] = true
		t.lt.DownloadPieces(p, p+1)
	}
}

// takeReplies applies the range replies received since the last call: data is written
// into the piece, a refusal sends the chunk to another peer, and a piece whose chunks are
// all written is verified in a goroutine that reports on s.results.
func (s *scheduler) takeReplies(ctx context.Context) error {
	t := s.t
	t.mu.Lock()
	inbox := t.rangeInbox
	t.rangeInbox = nil
	t.mu.Unlock()
	for _, r := range inbox {
		rq := s.rangeReqs[r.msg.id]
		if rq == nil || rq.pc != r.pc || rq.rp.piece != r.msg.piece || rq.chunk.Off != r.msg.off {
			continue // late (timed out), or not ours
		}
		s.dropRequest(r.msg.id, rq)
		rp := rq.rp
		if r.msg.kind != msgRangeData || int64(len(r.msg.data)) != rq.chunk.Len {
			rp.refused[r.pc] = true
			rp.pending = append(rp.pending, rq.chunk)
			continue
		}
		off := int64(rp.piece)*t.info.PieceLength + rq.chunk.Off
		n, err := t.store.f.WriteAt(r.msg.data, off)
		t.store.peerBytes.Add(int64(n))
		if err != nil {
			return fmt.Errorf("bt: %q: writing %d bytes from a peer at %d (piece %d): %w",
				t.name, len(r.msg.data), off, rp.piece, err)
		}
		t.mu.Lock()
		t.peerLocked(r.pc).down += int64(n)
		t.mu.Unlock()
		if ap, err := netip.ParseAddrPort(r.pc.RemoteAddr.String()); err == nil {
			rp.got = append(rp.got, rangeGot{peer: ap.Addr().Unmap(), chunk: rq.chunk, sum: sha256.Sum256(r.msg.data)})
		}
		if rp.left--; rp.left == 0 {
			rp.verify = true
			s.launchVerify(ctx, rp.piece)
		}
	}
	return nil
}

// launchVerify hashes a piece completed over rangeExtension; the library announces it if
// it passes.
func (s *scheduler) launchVerify(ctx context.Context, p int) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		r := originResult{piece: p, ranged: true}
		r.verified, r.err = s.t.verify(ctx, p)
		s.results <- r
	}()
}

// judgeRanges is the library's smart ban for the range path. A partial piece that failed
// verification proves nothing against any one sender of its chunks (another may have lied,
// or the plan was wrong about the present part), so what each peer sent is kept until the
// piece is complete by another path; then every peer whose chunk differs from the verified
// bytes is banned (Node.ban), and -v logs it.
func (s *scheduler) judgeRanges() {
	t := s.t
	var buf []byte
	for p, got := range s.rangeSuspects {
		if !t.store.isComplete(p) {
			continue
		}
		delete(s.rangeSuspects, p)
		pieceOff := int64(p) * t.info.PieceLength
		for _, g := range got {
			if int64(cap(buf)) < g.chunk.Len {
				buf = make([]byte, g.chunk.Len)
			}
			buf = buf[:g.chunk.Len]
			if _, err := t.store.f.ReadAt(buf, pieceOff+g.chunk.Off); err != nil {
				continue // the download fails on this file anyway
			}
			if sha256.Sum256(buf) != g.sum && t.node.ban(g.peer) && t.node.bans.firstLog(g.peer) {
				t.node.log.Info("bt: banned peer", "torrent", t.name, "peer", g.peer,
					"reason", "sent wrong bytes over pkgsync_range", "piece", p, "offset", g.chunk.Off)
			}
		}
	}
}
