package faults

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/proclab"
)

// scene is the starting point of most rows: an origin publishing v2, the node's old version
// OLD (v1, in old/) and its output OUT (in out/), which holds v1 too, as it does on a node that
// updated before.
type scene struct {
	l          *lab
	o          *origin
	v1, v2, v3 []byte
	old, out   string
	oldSum     string
}

func newScene(t *testing.T, announce string) *scene {
	l := newLab(t)
	s := &scene{l: l, o: newOrigin(l)}
	s.v1, s.v2, s.v3 = versions()
	s.o.publish(s.v2, "v2", announce)
	s.old = l.Write(s.v1, "old", "pkg.bin")
	s.oldSum = fileSum(s.old)
	s.out = l.Path("out", "pkg.bin")
	s.resetOut()
	return s
}

// resetOut puts v1 back at OUT and removes what a run left beside it.
func (s *scene) resetOut() {
	s.l.T.Helper()
	// OUT.part, OUT.lock and the record of the last verified update (.pkg.bin.pkgsync).
	ents, _ := os.ReadDir(filepath.Dir(s.out))
	for _, e := range ents {
		os.Remove(filepath.Join(filepath.Dir(s.out), e.Name()))
	}
	if err := os.WriteFile(s.out, s.v1, 0o644); err != nil {
		s.l.T.Fatal(err)
	}
}

// args are the flags of a plain HTTP update of OUT from OLD.
func (s *scene) args(extra ...string) []string {
	return updateArgs(s.out, s.old, append(extra, "--no-swarm", s.o.torrentURL())...)
}

// checkOld checks that OLD is byte-identical to before.
func (s *scene) checkOld() {
	s.l.T.Helper()
	if fileSum(s.old) != s.oldSum {
		s.l.T.Errorf("OLD %s changed", s.old)
	}
}

// baseline runs an update to a folder of its own, unthrottled and without faults, and returns
// what a run that nothing interrupts fetches.
func (s *scene) baseline() summary {
	s.l.T.Helper()
	sum := s.l.mustUpdate("baseline", updateArgs(s.l.Path("baseline", "pkg.bin"), s.old, "--no-swarm", s.o.torrentURL())...)
	proclab.SameFile(s.l.T, s.l.Path("baseline", "pkg.bin"), s.v2)
	s.o.reset()
	return sum
}

// killRate throttles the origin so that the kills land mid-transfer: about 1.4 s for the
// missing bytes of the package.
const killRate = 1 << 20

// maxInFlight is update's --parallel default: the requests a kill can interrupt.
const maxInFlight = 4

// blockSize is the zsync block size pkgsync make picks for the package (2048 below 100 MB).
const blockSize = 2048

// TestKillMidTransfer kills update with SIGKILL after 10%, 50% and 90% of the bytes it fetches
// from the origin (counted by the origin as it sends them), then runs it again: the rerun must
// resume from OUT.part, fetching only what the first run did not get, plus at most a block (the
// one a request was in the middle of) and its multipart framing per request in flight.
func TestKillMidTransfer(t *testing.T) {
	s := newScene(t, "")
	base := s.baseline()
	t.Logf("baseline: %d total, %d reused, %d from the origin in %d requests", base.BytesTotal, base.BytesReused, base.BytesFromOrigin, base.RequestsToOrigin)
	for _, pct := range []int64{10, 50, 90} {
		t.Run(fmt.Sprintf("%d%%", pct), func(t *testing.T) {
			s.l.T = t
			defer func() { s.l.T = t }()
			s.resetOut()
			s.o.reset()
			_, sent := s.killAt(t, base.BytesFromOrigin*pct/100, fmt.Sprintf("update killed at %d%%", pct), s.args(), nil)
			s.checkOld()
			proclab.SameFile(t, s.out, s.v1)
			if _, err := os.Stat(s.out + ".part"); err != nil {
				t.Fatalf("no OUT.part after the kill: %v", err)
			}
			s.o.set(0, nil, nil)
			// The rerun must not ask for a block that OUT.part already holds in place.
			part, err := os.ReadFile(s.out + ".part")
			if err != nil {
				t.Fatal(err)
			}
			s.o.set(0, func(_ int, _ http.ResponseWriter, r *http.Request, _ *published) bool {
				if again := blocksInPlace(r.Header.Get("Range"), part, s.v2); len(again) > 0 {
					t.Errorf("the rerun asks again for %d blocks OUT.part holds: %q", len(again), again)
				}
				return false
			}, nil)
			defer s.o.set(0, nil, nil)
			re := s.l.mustUpdate("rerun", s.args()...)
			proclab.SameFile(t, s.out, s.v2)
			s.checkOld()
			left := base.BytesFromOrigin - sent
			again := re.BytesFromOrigin - left
			allow := int64(maxInFlight * (blockSize + 512))
			t.Logf("ROW kill %d%%: sent %d of %d before the kill; rerun reused %d, fetched %d in %d requests (%d left, %+d again; allowed %d)",
				pct, sent, base.BytesFromOrigin, re.BytesReused, re.BytesFromOrigin, re.RequestsToOrigin, left, again, allow)
			if again > allow {
				t.Errorf("the rerun fetched %d bytes again beyond the %d the first run had not got (allowed: %d)", again, left, allow)
			}
		})
	}
}

var (
	builtRE  = regexp.MustCompile(`msg="update: built and verified"`)
	syncedRE = regexp.MustCompile(`msg="update: synced and renamed into place"`)
)

// TestKillInRenameWindow kills update at random moments between the end of its verification
// (the -v record "update: built and verified") and its exit, a span that holds the fsync of OUT.part, the
// rename over OUT and the fsync of the folder: OUT must always be either the old version or
// the complete new one, never anything else, and a rerun must finish it without fetching the
// package again.
func TestKillInRenameWindow(t *testing.T) {
	s := newScene(t, "")
	// How long the window lasts here: from the log line to the one after the rename ("synced
	// and renamed into place") in undisturbed runs, as the test sees them.
	var window time.Duration
	for range 3 {
		s.resetOut()
		p := s.l.pkgsync("timing", s.args()...)
		if _, err := p.WaitOutput(s.l.Ctx, builtRE, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := p.WaitOutput(s.l.Ctx, syncedRE, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		window = max(window, time.Since(start))
		if code, err := p.ExitCode(s.l.Ctx); err != nil || code != 0 {
			t.Fatalf("exit status %d, %v\n%s", code, err, proclab.Tail(p.Stderr.String()))
		}
	}
	const runs = 20
	outcomes := map[string]int{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := range runs {
		s.resetOut()
		p := s.l.pkgsync(fmt.Sprintf("update %d", i), s.args()...)
		if _, err := p.WaitOutput(s.l.Ctx, builtRE, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(window) * 3 / 2)))
		p.Kill()
		s.checkOld()
		switch fileSum(s.out) {
		case fileSum(s.old):
			outcomes["old"]++
		case sumOf(s.v2):
			outcomes["new"]++
		default:
			t.Fatalf("kill %d: OUT is neither the old version nor the new one", i)
		}
	}
	// The last kill's leftovers: a rerun finishes from OUT.part or finds OUT up to date.
	re := s.l.mustUpdate("rerun", s.args()...)
	proclab.SameFile(t, s.out, s.v2)
	t.Logf("ROW rename window: window %v; %d kills: OUT old %d times, new %d times; last rerun fetched %d bytes (up to date: %v)",
		window.Round(time.Millisecond), runs, outcomes["old"], outcomes["new"], re.BytesFromOrigin, re.UpToDate)
}

// blocksInPlace returns the zsync blocks of a Range header's ranges that part already holds as
// they are in want.
func blocksInPlace(header string, part, want []byte) []string {
	var again []string
	for _, rg := range strings.Split(strings.TrimPrefix(header, "bytes="), ",") {
		var a, b int
		if _, err := fmt.Sscanf(rg, "%d-%d", &a, &b); err != nil {
			continue
		}
		for off := a / blockSize * blockSize; off <= b && off < len(part); off += blockSize {
			end := min(off+blockSize, len(part), len(want))
			if bytes.Equal(part[off:end], want[off:end]) {
				again = append(again, fmt.Sprintf("block %d in %s", off/blockSize, rg))
			}
		}
	}
	return again
}

// settle waits until the bytes of want that path holds in place stop changing (for 100 ms, at
// most 5 s).
func settle(path string, want []byte) {
	prev := -1
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		b, _ := os.ReadFile(path)
		n := 0
		for off := 0; off+blockSize <= min(len(b), len(want)); off += blockSize {
			if bytes.Equal(b[off:off+blockSize], want[off:off+blockSize]) {
				n++
			}
		}
		if n == prev {
			return
		}
		prev = n
	}
}

// killAt runs pkgsync with args (as name) and SIGKILLs it once the origin has sent threshold
// bytes of the package: the origin stops sending, the client gets time to write what it got
// (until OUT.part stops changing), atKill (if not nil) takes its counts, and the kill comes; so
// the killed run has exactly what the origin counted, however loaded the machine. It returns the
// process and the bytes the origin had sent at the kill, and fails the test when the update
// ended before it.
func (s *scene) killAt(t *testing.T, threshold int64, name string, args []string, atKill func()) (*proclab.Proc, int64) {
	t.Helper()
	var (
		p      atomic.Pointer[proclab.Proc]
		sentAt atomic.Int64
		once   sync.Once
		killed = make(chan struct{})
	)
	s.o.set(killRate, nil, func(sent int64) {
		if sent >= threshold {
			once.Do(func() {
				thaw := s.o.freeze()
				defer thaw()
				settle(s.out+".part", s.v2)
				sentAt.Store(s.o.sent.Load())
				if atKill != nil {
					atKill()
				}
				close(killed)
				p.Load().Kill()
			})
		}
	})
	p.Store(s.l.pkgsync(name, args...))
	select {
	case <-p.Load().Exited():
	case <-s.l.Ctx.Done():
		t.Fatal("no kill")
	}
	select {
	case <-killed:
	default:
		t.Fatalf("%s: the update exited before the kill:\n%s", name, proclab.Tail(p.Load().Stderr.String()))
	}
	return p.Load(), sentAt.Load()
}
