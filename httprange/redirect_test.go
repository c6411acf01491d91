package httprange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// signingStore is an object store behind a redirect: the redirector answers GET /pkg.bin (which
// needs Authorization) with a redirect to the store at another host name, with a token good for
// a number of requests; a used-up or unknown token gets the expired status.
type signingStore struct {
	t        *testing.T
	data     []byte
	code     int   // redirect status
	uses     int   // requests one signed URL is good for
	expired  int   // status of a used-up token
	broken   bool  // every token is refused: a store that rejects what the redirector signs
	ignoreRg bool  // the store ignores Range and sends the whole file
	flaky    int64 // 503s the store answers after its first reply with the file

	mu     sync.Mutex
	tokens map[string]int // token -> uses left
	next   int

	hits, storeOK, storeExpired, storeAuth, flakes atomic.Int64
	storeURL                                       string
}

func (s *signingStore) redirector(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	if r.URL.Path != "/pkg.bin" || r.Header.Get("Authorization") != "Bearer t" {
		http.Error(w, "no", http.StatusForbidden)
		return
	}
	s.mu.Lock()
	s.next++
	tok := fmt.Sprintf("tok%d", s.next)
	s.tokens[tok] = s.uses
	s.mu.Unlock()
	w.Header().Set("Location", s.storeURL+"/bucket/pkg.bin?token="+tok)
	w.WriteHeader(s.code)
}

func (s *signingStore) store(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		s.storeAuth.Add(1) // the redirector's credentials must not reach the store
	}
	tok := r.URL.Query().Get("token")
	s.mu.Lock()
	left, ok := s.tokens[tok]
	if ok && left > 0 && !s.broken {
		s.tokens[tok] = left - 1
	}
	s.mu.Unlock()
	if !ok || left <= 0 || s.broken {
		s.storeExpired.Add(1)
		http.Error(w, "Request has expired", s.expired)
		return
	}
	if s.storeOK.Load() > 0 && s.flaky > 0 && s.flakes.Add(1) <= s.flaky {
		http.Error(w, "slow down", http.StatusServiceUnavailable)
		return
	}
	s.storeOK.Add(1)
	w.Header().Set("Etag", `"obj1"`)
	if s.ignoreRg {
		r.Header.Del("Range")
	}
	http.ServeContent(w, r, "pkg.bin", testModTime, bytes.NewReader(s.data))
}

// start runs the store at localhost and the redirector at 127.0.0.1: two hosts, as for a real
// object store, so that Go's client drops Authorization on the way.
func (s *signingStore) start() string {
	s.tokens = map[string]int{}
	st := httptest.NewServer(http.HandlerFunc(s.store))
	s.t.Cleanup(st.Close)
	s.storeURL = strings.Replace(st.URL, "127.0.0.1", "localhost", 1)
	rd := httptest.NewServer(http.HandlerFunc(s.redirector))
	s.t.Cleanup(rd.Close)
	return rd.URL + "/pkg.bin"
}

// TestFetchSignedRedirect fetches through a redirector that hands out short-lived signed URLs:
// the URL a redirect led to serves the following ranges (the redirector is asked once per
// signed URL, not once per request), an expired one is replaced by asking the original URL
// again, no byte is wrong, and the redirector's Authorization never reaches the store.
func TestFetchSignedRedirect(t *testing.T) {
	const size = 1 << 20
	data := randomData(size, 41)
	ranges := scattered(60, size, 9000, 42)
	tests := []struct {
		name      string
		code      int
		uses      int
		expired   int
		ignoreRg  bool
		parallel  int
		oneSigned bool  // one signed URL must serve everything
		flaky     int64 // the store's 503s, each of which makes the retry ask the redirector
	}{
		{name: "302, URL good for one request, 403", code: http.StatusFound, uses: 1, expired: http.StatusForbidden, parallel: 1},
		{name: "307, URL good for 3 requests, 410", code: http.StatusTemporaryRedirect, uses: 3, expired: http.StatusGone, parallel: 1},
		{name: "302, URL good for 2 requests, 404, parallel", code: http.StatusFound, uses: 2, expired: http.StatusNotFound, parallel: 4},
		{name: "307, URL that outlasts the update", code: http.StatusTemporaryRedirect, uses: 1000, expired: http.StatusForbidden, parallel: 4, oneSigned: true},
		{name: "307 to a store that answers 503 once", code: http.StatusTemporaryRedirect, uses: 1000, expired: http.StatusForbidden, parallel: 1, flaky: 1},
		{name: "302 to a store that ignores Range, 403", code: http.StatusFound, uses: 1, expired: http.StatusForbidden, ignoreRg: true, parallel: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &signingStore{t: t, data: data, code: tc.code, uses: tc.uses, expired: tc.expired, ignoreRg: tc.ignoreRg, flaky: tc.flaky}
			u := s.start()
			f := New(u, fast(Options{Header: http.Header{"Authorization": {"Bearer t"}}, MaxRangesPerRequest: 4, Parallel: tc.parallel}))
			w := newRecWriter(size)
			// Two calls, as the updater makes one per batch of pieces: the second goes on with
			// the signed URL of the first.
			for _, part := range [][]Range{ranges[:30], ranges[30:]} {
				if err := f.Fetch(context.Background(), part, w); err != nil {
					t.Fatal(err)
				}
			}
			w.check(t, data, ranges)
			hits, ok, exp := s.hits.Load(), s.storeOK.Load(), s.storeExpired.Load()
			t.Logf("redirector %d, store %d served + %d expired", hits, ok, exp)
			if n := s.storeAuth.Load(); n != 0 {
				t.Errorf("the store saw Authorization in %d requests", n)
			}
			// Each signed URL serves up to uses requests before it is replaced: the redirector is
			// asked at least ceil(ok/uses) times, and at most once per request served plus the
			// signed URLs that parallel requests found used up together.
			if min := (ok + int64(tc.uses) - 1) / int64(tc.uses); hits < min {
				t.Errorf("redirector asked %d times for %d requests served by URLs good for %d", hits, ok, tc.uses)
			}
			if hits > ok+int64(tc.parallel-1) {
				t.Errorf("redirector asked %d times for %d requests served: signed URLs are not reused", hits, ok)
			}
			// An expired URL is tried once, then replaced.
			if exp > hits {
				t.Errorf("%d requests met an expired URL, for %d signed URLs", exp, hits)
			}
			if tc.oneSigned && hits != 1 {
				t.Errorf("redirector asked %d times; one signed URL lasts the whole update", hits)
			}
			if tc.flaky > 0 && hits != 1+tc.flaky {
				t.Errorf("redirector asked %d times; want once, and again after each of the store's %d 503s", hits, tc.flaky)
			}
			if tc.uses == 1 && !tc.ignoreRg && ok < 4 {
				t.Errorf("only %d requests served: the test does not exercise expiry", ok)
			}
		})
	}
}

// TestFetchSignedRedirectRefused: a store that refuses the fresh signed URL too fails the fetch
// at once (no loop between redirector and store), with an error that names the URL and where
// it led, without the signature.
func TestFetchSignedRedirectRefused(t *testing.T) {
	data := randomData(1<<16, 43)
	s := &signingStore{t: t, data: data, code: http.StatusFound, uses: 5, expired: http.StatusForbidden, broken: true}
	u := s.start()
	f := New(u, fast(Options{Header: http.Header{"Authorization": {"Bearer t"}}}))
	err := f.Fetch(context.Background(), []Range{{Off: 0, Len: 100}, {Off: 5000, Len: 100}}, newRecWriter(len(data)))
	var he *Error
	if !errors.As(err, &he) || he.Status != http.StatusForbidden {
		t.Fatalf("err = %v, want an *Error with status 403", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, u) || !strings.Contains(msg, "redirected to "+s.storeURL+"/bucket/pkg.bin") {
		t.Errorf("error %q does not name the URL and where it was redirected", msg)
	}
	if strings.Contains(msg, "token=") {
		t.Errorf("error %q shows the signature", msg)
	}
	if h := s.hits.Load(); h != 1 {
		t.Errorf("redirector asked %d times, want 1", h)
	}
}
