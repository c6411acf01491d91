package httprange

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// stallingServer serves data, but its first `stalls` replies stop: with header "body" they send
// the header and half the body, with "header" nothing at all; then they wait until the client
// hangs up.
func stallingServer(t *testing.T, data []byte, stalls int32, where string) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	serve := contentHandler(nil, func() file { return file{data, `"v1"`, testModTime} })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > stalls {
			serve(w, r)
			return
		}
		if where == "body" {
			rec := httptest.NewRecorder()
			serve(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
			http.NewResponseController(w).Flush()
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestStallTimeoutRetries(t *testing.T) {
	data := randomData(1<<20, 7)
	for _, where := range []string{"body", "header"} {
		t.Run(where, func(t *testing.T) {
			srv, n := stallingServer(t, data, 2, where)
			c := WithStallTimeout(&http.Client{Transport: newTransport(nil, 0, 4)}, 100*time.Millisecond)
			f := New(srv.URL, fast(Options{Client: c, Parallel: 1}))
			want := []Range{{Off: 1000, Len: 300000}, {Off: 500000, Len: 200000}}
			w := newRecWriter(len(data))
			start := time.Now()
			if err := f.Fetch(context.Background(), want, w); err != nil {
				t.Fatal(err)
			}
			w.check(t, data, want)
			if n.Load() < 3 {
				t.Errorf("%d requests, want the 2 stalled ones and at least one more", n.Load())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v for two stalls of 100 ms", d)
			}
		})
	}
}

func TestStallTimeoutGivesUp(t *testing.T) {
	data := randomData(64<<10, 8)
	srv, _ := stallingServer(t, data, 1000, "body")
	c := WithStallTimeout(&http.Client{Transport: newTransport(nil, 0, 4)}, 50*time.Millisecond)
	f := New(srv.URL, fast(Options{Client: c, Retries: 2}))
	err := f.Fetch(context.Background(), []Range{{Off: 0, Len: 60000}}, newRecWriter(len(data)))
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("Fetch: %v, want ErrStalled", err)
	}
	t.Log(err)
	if _, err := Get(context.Background(), c, srv.URL, nil, 1<<20); !errors.Is(err, ErrStalled) {
		t.Fatalf("Get: %v, want ErrStalled", err)
	}
}

// A slow body that keeps moving is not a stall, however long it takes.
func TestStallTimeoutSlowBody(t *testing.T) {
	data := randomData(64<<10, 9)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "65536")
		for i := 0; i < len(data); i += 4096 {
			w.Write(data[i : i+4096])
			http.NewResponseController(w).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	c := WithStallTimeout(&http.Client{Transport: newTransport(nil, 0, 4)}, 100*time.Millisecond)
	got, err := Get(context.Background(), c, srv.URL, nil, 1<<20)
	if err != nil || len(got) != len(data) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
}
