package updater

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/manifest"
)

// syncBuffer is a bytes.Buffer safe for the swarm's goroutines and the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSeedSaysWhatItWaitsFor: after a swarm update the node seeds for --seed-time and says so,
// with how long and how to skip it; a node that no other node can find (its tracker never
// answers, no --peer, no peer connects) does not seed at all and says why.
func TestSeedSaysWhatItWaitsFor(t *testing.T) {
	pkgData := versions.Random(7, 300<<10+123)
	pub := t.TempDir()
	if err := os.WriteFile(filepath.Join(pub, "pkg.bin"), pkgData, 0o644); err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(http.FileServer(http.Dir(pub)))
	defer origin.Close()
	// A tracker that answers every announce with an empty peer list: this node is the first.
	tracker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("d8:intervali60e5:peers0:e"))
	}))
	defer tracker.Close()
	// A tracker that is gone: its port refuses connections.
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL + "/announce"
	gone.Close()

	for _, tc := range []struct {
		name     string
		tracker  string
		peers    []netip.AddrPort
		seedTime time.Duration
		seeds    bool
	}{
		{"tracker answers", tracker.URL + "/announce", nil, 400 * time.Millisecond, true},
		{"no tracker answers", goneURL, nil, time.Hour, false},
		{"no tracker answers, a peer given", goneURL, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}, 400 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			res, err := manifest.Make(t.Context(), filepath.Join(pub, "pkg.bin"), manifest.MakeOptions{
				URL: origin.URL + "/pkg.bin", Trackers: []string{tc.tracker}, PieceSize: 64 << 10, OutDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			cfg := bt.DefaultConfig()
			cfg.ListenAddr = "127.0.0.1:0"
			// Alone with a tracker, the node waits PeerWait before it asks the origin: long
			// enough for the local tracker's answer to be in before the node completes.
			cfg.PeerWait = 500 * time.Millisecond
			var notice syncBuffer
			out := filepath.Join(dir, "pkg.bin")
			start := time.Now()
			r, err := Run(t.Context(), Options{Source: res.Torrent, Out: out, Swarm: true, BT: cfg,
				Peers: tc.peers, SeedTime: tc.seedTime, Notice: slog.New(slog.NewTextHandler(&notice, nil))})
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, pkgData) || r.BytesFromOrigin != int64(len(pkgData)) {
				t.Fatalf("the update went wrong: %d bytes in %s, %+v", len(got), out, r)
			}
			msg := notice.String()
			t.Logf("%.2fs; notice: %s", took.Seconds(), msg)
			if tc.seeds {
				if !strings.Contains(msg, "seeding it to peers") || !strings.Contains(msg, " seed_time="+tc.seedTime.String()+" ") ||
					!strings.Contains(msg, "--seed-time 0 skips this") {
					t.Errorf("notice %q does not say that it seeds, how long and how to skip it", msg)
				}
				if took < tc.seedTime {
					t.Errorf("Run returned after %s, before the seed time of %s", took, tc.seedTime)
				}
				return
			}
			if !strings.Contains(msg, "not seeding it: no tracker answered, no --peer was given and no peer connected") {
				t.Errorf("notice %q does not say that it does not seed, and why", msg)
			}
			if took > time.Minute {
				t.Errorf("Run took %s: it seeded", took)
			}
		})
	}
}
