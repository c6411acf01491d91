package faults

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/proclab"
	"github.com/pkgsync/pkgsync/manifest"
)

// newSwarmScene is newScene for a swarm update: v2 published with the origin as the torrent's
// web seed and no tracker, and an origin that also counts the package requests it is serving
// (active), the requests a kill interrupts.
func newSwarmScene(t *testing.T) (s *scene, active *atomic.Int64, pieceLen int64) {
	l := newLab(t)
	o := &origin{l: l}
	active = new(atomic.Int64)
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/pkg.bin" {
			active.Add(1)
			defer active.Add(-1)
		}
		o.ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	o.base = o.srv.URL + "/"
	s = &scene{l: l, o: o}
	s.v1, s.v2, s.v3 = versions()
	v := o.publish(s.v2, "v2", "")
	tor, err := manifest.ParseTorrent(v.torrent)
	if err != nil {
		t.Fatal(err)
	}
	s.old = l.Write(s.v1, "old", "pkg.bin")
	s.oldSum = fileSum(s.old)
	s.out = l.Path("out", "pkg.bin")
	s.resetOut()
	return s, active, tor.Info.PieceLength
}

// swarmArgs are the flags of a swarm update of out from OLD: no tracker, no peer, the origin
// (the torrent's url-list) fetched through the swarm's origin path; no seeding afterwards.
func (s *scene) swarmArgs(out string) []string {
	return updateArgs(out, s.old, "--seed-time", "0", "--listen", "127.0.0.1:0", s.o.torrentURL())
}

// swarmRE is the -v record of an update joining the package's swarm.
var swarmRE = regexp.MustCompile(`msg="update: joined the swarm" .* pieces_rebuilt=\d+ pieces=\d+ `)

// TestKillMidSwarm is TestKillMidTransfer for a swarm update (no --no-swarm): update of the
// .torrent, whose pieces no peer has, so that the swarm's origin path (bt.Config.
// OriginConcurrency pieces at a time, each written into OUT.part as its bytes arrive) fetches
// every one from the origin, is killed with SIGKILL after 10%, 50% and 90% of the bytes it
// fetches, then run again. The rerun finds what the first run wrote in OUT.part by its InPlace
// scan, so over both runs the origin sends at most the bytes the node was missing plus one
// piece per package request it was serving at the kill; the rerun ends with exactly v2 and
// asks for no block OUT.part holds.
func TestKillMidSwarm(t *testing.T) {
	s, active, pieceLen := newSwarmScene(t)
	base := s.l.mustUpdate("baseline", s.swarmArgs(s.l.Path("baseline", "pkg.bin"))...)
	proclab.SameFile(t, s.l.Path("baseline", "pkg.bin"), s.v2)
	baseSent := s.o.sent.Load()
	missing := base.missing()
	t.Logf("baseline: %d total, %d missing, %d from the origin in %d requests (origin counted %d), piece %d",
		base.BytesTotal, missing, base.BytesFromOrigin, base.RequestsToOrigin, baseSent, pieceLen)
	if base.BytesFromPeers != 0 || base.BytesFromOrigin == 0 {
		t.Fatalf("the baseline took %d bytes from peers and %d from the origin: not the swarm's origin path alone", base.BytesFromPeers, base.BytesFromOrigin)
	}
	for _, pct := range []int64{10, 50, 90} {
		t.Run(fmt.Sprintf("%d%%", pct), func(t *testing.T) {
			s.l.T = t
			defer func() { s.l.T = t }()
			s.resetOut()
			s.o.reset()
			var flight int64
			p, sent1 := s.killAt(t, baseSent*pct/100, fmt.Sprintf("swarm update killed at %d%%", pct), s.swarmArgs(s.out),
				func() { flight = active.Load() }) // the requests still being served
			if !swarmRE.MatchString(p.Stderr.String()) {
				t.Fatalf("the killed update did not fetch over the swarm:\n%s", proclab.Tail(p.Stderr.String()))
			}
			s.checkOld()
			proclab.SameFile(t, s.out, s.v1)
			part, err := os.ReadFile(s.out + ".part")
			if err != nil {
				t.Fatalf("no OUT.part after the kill: %v", err)
			}
			// The handlers of the killed run's requests go on once the origin thaws, into
			// connections that are gone: they end before the rerun starts, and what they
			// wrote (no byte of it reached the node) stays out of the rerun's count.
			for active.Load() > 0 {
				select {
				case <-s.l.Ctx.Done():
					t.Fatalf("%d requests of the killed run still served", active.Load())
				case <-time.After(10 * time.Millisecond):
				}
			}
			dead := s.o.sent.Load() - sent1
			s.o.reset()
			s.o.set(0, func(_ int, _ http.ResponseWriter, r *http.Request, _ *published) bool {
				if again := blocksInPlace(r.Header.Get("Range"), part, s.v2); len(again) > 0 {
					t.Errorf("the rerun asks again for %d blocks OUT.part holds: %q", len(again), again)
				}
				return false
			}, nil)
			defer s.o.set(0, nil, nil)
			re := s.l.mustUpdate("rerun", s.swarmArgs(s.out)...)
			proclab.SameFile(t, s.out, s.v2)
			s.checkOld()
			sent2 := s.o.sent.Load()
			total := sent1 + sent2
			excess := total - missing
			allow := flight * pieceLen
			t.Logf("ROW swarm kill %d%%: %d missing; origin sent %d before the kill (%d requests in flight; %d more into the dead connections) + %d to the rerun (%d requests, %d received; it reused %d) = %d, %+d = %+.2f pieces (allowed %d = %d pieces)",
				pct, missing, sent1, flight, dead, sent2, re.RequestsToOrigin, re.BytesFromOrigin, re.BytesReused, total, excess, float64(excess)/float64(pieceLen), allow, flight)
			if re.BytesFromPeers != 0 {
				t.Errorf("the rerun took %d bytes from peers: there are none", re.BytesFromPeers)
			}
			if excess > allow {
				t.Errorf("the origin sent %d bytes over both runs, %d beyond the %d missing: more than a piece (%d) for each of the %d requests in flight at the kill",
					total, excess, missing, pieceLen, flight)
			}
		})
	}
}
