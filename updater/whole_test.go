package updater

import (
	"bytes"
	"context"
	"crypto/sha1"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeCompletion is a download whose pieces the test completes by hand.
type fakeCompletion struct {
	mu       sync.Mutex
	complete []bool
	losses   int64
	missed   chan int // pieces asked for while not complete, in order of asking
}

func (f *fakeCompletion) NumPieces() int { return len(f.complete) }

func (f *fakeCompletion) PieceComplete(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.complete[i] && f.missed != nil {
		select {
		case f.missed <- i:
		default:
		}
	}
	return f.complete[i]
}

// prefix returns how many pieces from the first are complete.
func (f *fakeCompletion) prefix() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for n < len(f.complete) && f.complete[n] {
		n++
	}
	return n
}

// waitHashed waits until the hasher has hashed every complete piece from the first: it asked
// for the first incomplete one, or, with all complete, it ended. The deadline only guards
// against a hung hasher; no result depends on how long this takes.
func waitHashed(t *testing.T, f *fakeCompletion, w *wholeHasher) {
	t.Helper()
	k := f.prefix()
	deadline := time.After(10 * time.Second)
	for {
		if k == len(f.complete) {
			select {
			case <-w.done:
				return
			case <-deadline:
				t.Fatal("the hasher did not end with every piece complete")
			}
		}
		select {
		case i := <-f.missed:
			if i == k {
				return
			}
		case <-deadline:
			t.Fatalf("the hasher never asked for piece %d", k)
		}
	}
}

func (f *fakeCompletion) CompletionLosses() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.losses
}

func (f *fakeCompletion) set(i int, c bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.complete[i] && !c {
		f.losses++
	}
	f.complete[i] = c
}

func TestWholeHasher(t *testing.T) {
	const plen = 1000
	data := make([]byte, 5*plen+123) // 6 pieces, the last one short
	for i := range data {
		data[i] = byte(i * 7)
	}
	want := sha1.Sum(data)
	tests := []struct {
		name string
		// have: pieces complete when the hasher starts; then, while it runs, arrive are
		// completed one by one, and lose loses its completion and gets it back.
		have   []int
		arrive []int
		lose   int // -1: none
		// finishEarly finishes before the last arrival (a caller bug: the download is not done).
		finishEarly bool
		wantOK      bool
		wantDuring  int // at least this many pieces hashed before finish
	}{
		{name: "all there", have: []int{0, 1, 2, 3, 4, 5}, lose: -1, wantOK: true, wantDuring: 6},
		{name: "prefix, then the rest", have: []int{0, 1, 2}, arrive: []int{4, 3, 5}, lose: -1, wantOK: true, wantDuring: 3},
		{name: "nothing at first", arrive: []int{5, 4, 3, 2, 1, 0}, lose: -1, wantOK: true},
		{name: "a piece lost its completion", have: []int{0, 1, 2, 3, 4, 5}, lose: 1, wantOK: false},
		{name: "finish before the end", have: []int{0, 1}, arrive: []int{3}, lose: -1, finishEarly: true, wantOK: false, wantDuring: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.part")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fc := &fakeCompletion{complete: make([]bool, 6), missed: make(chan int, 1024)}
			for _, i := range tc.have {
				fc.set(i, true)
			}
			w := startWholeHasher(fc, f, path, plen, int64(len(data)))
			// Let the hasher take what is there before anything changes, and each arrival.
			waitHashed(t, fc, w)
			for _, i := range tc.arrive {
				fc.set(i, true)
				waitHashed(t, fc, w)
			}
			if tc.lose >= 0 {
				fc.set(tc.lose, false)
				fc.set(tc.lose, true)
			}
			if !tc.finishEarly {
				for i := range fc.complete {
					fc.set(i, true)
				}
			}
			sum, ok, err := w.finish(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if ok && !bytes.Equal(sum[:], want[:]) {
				t.Fatalf("sum %x, want %x", sum, want)
			}
			if w.during < tc.wantDuring {
				t.Errorf("%d pieces hashed before finish, want at least %d", w.during, tc.wantDuring)
			}
		})
	}
}

func TestWholeHasherReadError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "short.part")
	if err := os.WriteFile(path, make([]byte, 1500), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fc := &fakeCompletion{complete: []bool{true, true, true}}
	// The torrent says 3000 bytes; the file holds 1500: the third piece cannot be read.
	w := startWholeHasher(fc, f, path, 1000, 3000)
	if _, _, err := w.finish(context.Background()); err == nil {
		t.Fatal("finish hashed a file shorter than the torrent without an error")
	}
}
