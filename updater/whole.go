package updater

import (
	"context"
	"crypto/sha1"
	"fmt"
	"hash"
	"os"
	"time"

	"github.com/pkgsync/pkgsync/bt"
)

// wholeHasher computes the whole-file SHA-1 of OUT.part while the swarm fills it: it hashes the
// complete (verified) pieces from the start, in order, as far as they reach, and waits for the
// next one. A swarm update then ends with only the pieces completed last left to hash, not with
// a read of the whole file: in a delta fan-out most pieces are rebuilt before the swarm starts,
// so nearly all the hashing overlaps the wait for the network.
type wholeHasher struct {
	tt     completion
	f      *os.File
	name   string
	pieces int
	plen   int64
	length int64
	h      hash.Hash
	next   int   // the next piece to hash
	during int   // pieces hashed before finish was called
	losses int64 // tt.CompletionLosses() when hashing began
	buf    []byte
	stop   chan struct{}
	done   chan struct{}
	err    error
}

// completion is what the hasher needs of a download (bt.Torrent has it).
type completion interface {
	NumPieces() int
	PieceComplete(i int) bool
	CompletionLosses() int64
}

var _ completion = (*bt.Torrent)(nil)

// wholePoll is how often the hasher looks for the next piece while it waits.
const wholePoll = 20 * time.Millisecond

// startWholeHasher starts hashing f (named name in errors), which tt is filling.
func startWholeHasher(tt completion, f *os.File, name string, pieceLen, length int64) *wholeHasher {
	w := &wholeHasher{
		tt: tt, f: f, name: name, pieces: tt.NumPieces(), plen: pieceLen, length: length,
		h: sha1.New(), losses: tt.CompletionLosses(), buf: make([]byte, pieceLen),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go w.follow()
	return w
}

func (w *wholeHasher) follow() {
	defer close(w.done)
	tick := time.NewTicker(wholePoll)
	defer tick.Stop()
	for {
		for w.next < w.pieces && w.tt.PieceComplete(w.next) {
			select {
			case <-w.stop: // finish takes over
				return
			default:
			}
			if w.err = w.hashNext(); w.err != nil {
				return
			}
		}
		if w.next == w.pieces {
			return
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

func (w *wholeHasher) hashNext() error {
	off := int64(w.next) * w.plen
	b := w.buf[:min(w.plen, w.length-off)]
	if _, err := w.f.ReadAt(b, off); err != nil {
		return fmt.Errorf("%s: reading piece %d: %w", w.name, w.next, err)
	}
	w.h.Write(b)
	w.next++
	return nil
}

// abort stops the hasher without a result (the download failed).
func (w *wholeHasher) abort() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// finish stops following and hashes the pieces left; the download must be complete. ok is
// false, with no error, when a piece is not complete or one lost its completion while the
// hasher ran (the bytes it read may have been replaced since): the caller hashes the file again.
func (w *wholeHasher) finish(ctx context.Context) (sum [sha1.Size]byte, ok bool, err error) {
	w.abort()
	if w.err != nil {
		return sum, false, w.err
	}
	w.during = w.next
	for w.next < w.pieces {
		if err := ctx.Err(); err != nil {
			return sum, false, err
		}
		if !w.tt.PieceComplete(w.next) {
			return sum, false, nil
		}
		if err := w.hashNext(); err != nil {
			return sum, false, err
		}
	}
	if w.tt.CompletionLosses() != w.losses {
		return sum, false, nil
	}
	w.h.Sum(sum[:0])
	return sum, true, nil
}
