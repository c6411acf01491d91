package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/originplan"
	"github.com/pkgsync/pkgsync/tracker"
	"github.com/pkgsync/pkgsync/updater"
)

// originRequests counts the requests pkgsync's origin served for path, by its own stats.
func originRequests(srv *origin.Server, path string) int64 {
	return srv.Stats().Files[path].Requests
}

// TestOriginRequestsAlone: a node alone on the swarm path asks the origin for the package in no
// more requests than --no-swarm does, as the origin counts them: with small pieces (one request
// per piece would be 61), with an old version that leaves scattered gaps, and announcing to a
// tracker that hands out origin roles, as `pkgsync serve --tracker` does (128 fetcher slots, of
// which the node holds the first).
func TestOriginRequestsAlone(t *testing.T) {
	v1 := randomBytes(60, 6<<20)
	tests := []struct {
		name      string
		v2        []byte
		old       []byte
		pieceSize string
		roles     bool
	}{
		{"everything missing, 32 KiB pieces", randomBytes(61, 1900<<10), nil, "32768", false},
		{"scattered edits", edited(v1, 62, 12), v1, "65536", false},
		{"everything missing, a tracker's origin role", randomBytes(63, 1900<<10), nil, "32768", true},
		{"scattered edits, a tracker's origin role", edited(v1, 64, 12), v1, "65536", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := t.TempDir()
			base, srv := startOrigin(t, pub)
			writeFile(t, filepath.Join(pub, "pkg.tar"), tc.v2)
			makeArgs := []string{"make", filepath.Join(pub, "pkg.tar"), "--url", base + "pkg.tar", "--piece-size", tc.pieceSize}
			if tc.roles {
				makeArgs = append(makeArgs, "--tracker", startTrackerOpts(t, tracker.Options{OriginFetchers: originplan.DefaultFetchers}))
			}
			mustPkgsync(t, makeArgs...)
			requests := map[string]int64{}
			for _, mode := range []string{"--no-swarm", "--seed-time=0"} {
				node := t.TempDir()
				args := []string{"update", mode, "--listen", "127.0.0.1:0", "--json", "-o", filepath.Join(node, "pkg.tar")}
				if tc.old != nil {
					writeFile(t, filepath.Join(node, "v1.tar"), tc.old)
					args = append(args, "--old", filepath.Join(node, "v1.tar"))
				}
				before := originRequests(srv, "/pkg.tar")
				res := parseUpdateJSON(t, mustPkgsync(t, append(args, base+"pkg.tar.torrent")...))
				sameFile(t, filepath.Join(node, "pkg.tar"), tc.v2)
				requests[mode] = originRequests(srv, "/pkg.tar") - before
				t.Logf("%s: %d bytes from the origin in %d requests (the origin counts %d)", mode, res.BytesFromOrigin, res.RequestsToOrigin, requests[mode])
				if res.RequestsToOrigin != requests[mode] {
					t.Errorf("%s: the node reports %d requests, the origin served %d", mode, res.RequestsToOrigin, requests[mode])
				}
			}
			if swarm, plain := requests["--seed-time=0"], requests["--no-swarm"]; swarm == 0 || swarm > plain {
				t.Errorf("alone on the swarm path: %d requests for the package; --no-swarm: %d", swarm, plain)
			}
		})
	}
}

// breakOnce wraps an origin so that the first range request for path gets only cut bytes of its
// body, then a broken connection. It counts the range requests for path in requests (the
// origin's own stats leave out a reply that broke off).
func breakOnce(h http.Handler, path string, cut int64, requests *atomic.Int64) http.Handler {
	var done atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path && r.Header.Get("Range") != "" {
			requests.Add(1)
			if done.CompareAndSwap(false, true) {
				w = &cutWriter{ResponseWriter: w, left: cut}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// cutWriter passes left bytes of a body on, then aborts the reply mid-body.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) < c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	c.ResponseWriter.Write(p[:c.left])
	http.NewResponseController(c.ResponseWriter).Flush()
	panic(http.ErrAbortHandler)
}

// TestOriginRunBreaksOff: the one request of a node alone breaks off a third of the way; the
// rest is asked for again (one more request), the package ends exact, and the origin sends it
// about once.
func TestOriginRunBreaksOff(t *testing.T) {
	v2 := randomBytes(63, 3<<20+500)
	pub := t.TempDir()
	srv, err := origin.New(pub, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var requests atomic.Int64
	ts := httptest.NewServer(breakOnce(srv, "/pkg.tar", int64(len(v2))/3, &requests))
	defer ts.Close()
	writeFile(t, filepath.Join(pub, "pkg.tar"), v2)
	mustPkgsync(t, "make", filepath.Join(pub, "pkg.tar"), "--url", ts.URL+"/pkg.tar", "--piece-size", "65536")
	out := filepath.Join(t.TempDir(), "pkg.tar")
	res := parseUpdateJSON(t, mustPkgsync(t, "update", "--seed-time=0", "--listen", "127.0.0.1:0", "--json", "-o", out, ts.URL+"/pkg.tar.torrent"))
	sameFile(t, out, v2)
	t.Logf("the origin was asked %d times for a package of %d bytes; the node reports %d bytes in %d requests",
		requests.Load(), len(v2), res.BytesFromOrigin, res.RequestsToOrigin)
	if requests.Load() != 2 || res.RequestsToOrigin != 2 {
		t.Errorf("%d requests for the package (the node reports %d), want 2: the run and its rest", requests.Load(), res.RequestsToOrigin)
	}
	if res.BytesFromOrigin > int64(len(v2))+64<<10 {
		t.Errorf("%d bytes from the origin for a package of %d", res.BytesFromOrigin, len(v2))
	}
}

// TestOriginRequestsSwarm: nodes updating at once through a tracker share the origin work and
// each asks for its share in runs of up to 8 pieces (twice the default OriginConcurrency), or
// longer while it is alone (a run a later node cuts short costs one request more), where one request per piece would be 96 in all. The origin counts
// the requests; the nodes' reports must add up to its count.
func TestOriginRequestsSwarm(t *testing.T) {
	for _, nodes := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) {
			v2 := randomBytes(64, 6<<20)
			announce := startTracker(t)
			pub := t.TempDir()
			base, srv := startOrigin(t, pub)
			writeFile(t, filepath.Join(pub, "pkg.tar"), v2)
			mustPkgsync(t, "make", filepath.Join(pub, "pkg.tar"), "--url", base+"pkg.tar", "--tracker", announce,
				"--piece-size", "65536")
			results := make([]*updater.Result, nodes)
			errs := make([]error, nodes)
			var wg sync.WaitGroup
			for i := range nodes {
				opt := updater.Options{Source: base + "pkg.tar.torrent", Out: filepath.Join(t.TempDir(), "pkg.tar"), Swarm: true}
				opt.BT = bt.DefaultConfig()
				opt.BT.ListenAddr = fmt.Sprintf("127.0.0.%d:0", 2+i)
				wg.Go(func() { results[i], errs[i] = updater.Run(t.Context(), opt) })
			}
			wg.Wait()
			var reported int64
			for i, res := range results {
				if errs[i] != nil {
					t.Fatalf("node %d: %v", i, errs[i])
				}
				sameFile(t, res.Output, v2)
				reported += res.RequestsToOrigin
				// One request per run of 8 pieces, and one more for each node that may cut
				// a run short: a run begun while alone stops before a piece a later node
				// claims, and the rest is asked for again.
				const pieceLen, takeRun = 64 << 10, 8
				allowed := (res.BytesFromOrigin/pieceLen+takeRun-1)/takeRun + int64(nodes)
				t.Logf("node %d: %d bytes from the origin in %d requests, %d from peers", i, res.BytesFromOrigin, res.RequestsToOrigin, res.BytesFromPeers)
				if res.RequestsToOrigin > allowed {
					t.Errorf("node %d: %d requests for %d bytes from the origin, want at most %d", i, res.RequestsToOrigin, res.BytesFromOrigin, allowed)
				}
			}
			st := srv.Stats().Files["/pkg.tar"]
			t.Logf("the origin served %d requests, %d body bytes for a package of %d to %d nodes", st.Requests, st.BodyBytes, len(v2), nodes)
			if st.Requests != reported {
				t.Errorf("the origin served %d requests; the nodes report %d", st.Requests, reported)
			}
		})
	}
}
