package store_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/store"
	"github.com/pkgsync/pkgsync/store/webhdfstest"
)

// versioned serves one object whose bytes and ETag a test can swap.
type versioned struct {
	mu   sync.Mutex
	data []byte
	etag string
}

func (v *versioned) set(data []byte, etag string) {
	v.mu.Lock()
	v.data, v.etag = data, etag
	v.mu.Unlock()
}

func (v *versioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	data, etag := v.data, v.etag
	v.mu.Unlock()
	if r.URL.Path != "/pkgs/pkg.bin" || r.URL.Query().Get("token") != "t" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// TestHTTPStore checks Stat, ranged reads pinned by ETag, the query carried along, and the
// refusals of List and Put.
func TestHTTPStore(t *testing.T) {
	v1, v2 := versions.Random(1, 100_000), versions.Random(2, 100_000)
	obj := &versioned{}
	obj.set(v1, `"v1"`)
	ts := httptest.NewServer(obj)
	defer ts.Close()
	s, key, err := store.Open(t.Context(), ts.URL+"/pkgs/pkg.bin?token=t", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(t.Context(), key)
	if err != nil || info.Size != int64(len(v1)) || info.ETag != `"v1"` {
		t.Fatalf("Stat: %+v, %v", info, err)
	}
	got, err := readAll(t.Context(), s, key, 500, 9000, info.ETag)
	if err != nil || !bytes.Equal(got, v1[500:9500]) {
		t.Fatalf("ReadRange: %d bytes, %v", len(got), err)
	}
	if _, err := s.Stat(t.Context(), "pkgs/other.bin"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Stat of a missing object: %v", err)
	}
	obj.set(v2, `"v2"`)
	if _, err := readAll(t.Context(), s, key, 0, 10, info.ETag); !errors.Is(err, store.ErrChanged) {
		t.Fatalf("read of a changed object: %v", err)
	}
	if _, err := s.List(t.Context(), "pkgs/"); !errors.Is(err, store.ErrNoList) {
		t.Fatalf("List: %v", err)
	}
	if err := s.Put(t.Context(), "pkgs/x", strings.NewReader("x"), 1); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("Put: %v", err)
	}
	if strings.Contains(s.String(), "token") {
		t.Fatalf("String %q shows the query", s)
	}
}

// TestHTTPStoreRedirect reads through a redirect (an object store's signed URL behind a 302).
func TestHTTPStoreRedirect(t *testing.T) {
	data := versions.Random(13, 50_000)
	obj := &versioned{}
	obj.set(data, `"r"`)
	target := httptest.NewServer(obj)
	defer target.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/pkgs/pkg.bin?token=t", http.StatusFound)
	}))
	defer front.Close()
	s, key, err := store.Open(t.Context(), front.URL+"/pkg.bin", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(t.Context(), key)
	if err != nil || info.Size != int64(len(data)) || info.ETag != `"r"` {
		t.Fatalf("Stat: %+v, %v", info, err)
	}
	if got, err := readAll(t.Context(), s, key, 100, 200, info.ETag); err != nil || !bytes.Equal(got, data[100:300]) {
		t.Fatalf("ReadRange: %v", err)
	}
}

// TestFetcher checks NewFetcher on both paths (HTTP's multi-range fetcher, and the generic one
// over ReadRange for WebHDFS): scattered ranges land in place and nothing else is written.
func TestFetcher(t *testing.T) {
	data := versions.Random(3, 20<<20+333)
	srv := webhdfstest.New(webhdfstest.Options{})
	defer srv.Close()
	srv.Put("/p/pkg.bin", data, time.Now())
	obj := &versioned{}
	obj.set(data, `"x"`)
	ts := httptest.NewServer(obj)
	defer ts.Close()
	ranges := []httprange.Range{{Off: 0, Len: 10}, {Off: 5, Len: 100}, {Off: 1 << 20, Len: 9 << 20}, {Off: int64(len(data)) - 1, Len: 1}}
	for name, raw := range map[string]string{"webhdfs": srv.URL("/p/pkg.bin"), "http": ts.URL + "/pkgs/pkg.bin?token=t"} {
		t.Run(name, func(t *testing.T) {
			s, key, err := store.Open(t.Context(), raw, store.Options{User: "u"})
			if err != nil {
				t.Fatal(err)
			}
			f := store.NewFetcher(s, key, store.FetchOptions{Length: int64(len(data))})
			dst := make([]byte, len(data))
			if err := f.Fetch(t.Context(), ranges, byteWriter(dst)); err != nil {
				t.Fatal(err)
			}
			want := make([]byte, len(data))
			for _, r := range ranges {
				copy(want[r.Off:r.End()], data[r.Off:r.End()])
			}
			if !bytes.Equal(dst, want) {
				t.Fatal("fetched bytes differ")
			}
			if st := f.Stats(); st.Bytes < 9<<20+106 || st.Requests == 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

type byteWriter []byte

func (b byteWriter) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(b)) {
		return 0, io.ErrShortWrite
	}
	return copy(b[off:], p), nil
}

// gatedReaderAt holds its first read until a second one has started: a reader that keeps
// one read in flight at a time never gets past it.
type gatedReaderAt struct {
	data    []byte
	started atomic.Int64
	second  chan struct{}
}

func (g *gatedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	switch g.started.Add(1) {
	case 1:
		select {
		case <-g.second:
		case <-time.After(30 * time.Second):
			return 0, errors.New("no second read started while the first was in flight")
		}
	case 2:
		close(g.second)
	}
	if off >= int64(len(g.data)) {
		return 0, io.EOF
	}
	k := copy(p, g.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

// TestReadAhead checks that ReadAhead returns the bytes in order with several reads in
// flight, for sizes that do and do not end on a chunk.
func TestReadAhead(t *testing.T) {
	for _, size := range []int{0, 1, 4096, 4096*10 + 7} {
		data := versions.Random(uint64(size), size)
		r := &gatedReaderAt{data: data, second: make(chan struct{})}
		if size <= 4096 {
			close(r.second) // one chunk: one read
			r.started.Store(2)
		}
		ra := store.NewReadAhead(r, int64(size), 4096, 4)
		got, err := io.ReadAll(ra)
		ra.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: %d bytes, %v", size, len(got), err)
		}
	}
}

// TestFetcherChanged checks that the generic fetcher pins the object's identity on its first
// Fetch: after the file is replaced in HDFS, the next Fetch fails with ErrChanged and writes
// nothing of the new version.
func TestFetcherChanged(t *testing.T) {
	v1, v2 := versions.Random(11, 1<<20), versions.Random(12, 1<<20)
	srv := webhdfstest.New(webhdfstest.Options{})
	defer srv.Close()
	srv.Put("/p/pkg.bin", v1, time.UnixMilli(1000))
	s, key := openHDFS(t, srv, "/p/pkg.bin", store.Options{User: "u"})
	f := store.NewFetcher(s, key, store.FetchOptions{})
	dst := make([]byte, len(v1))
	if err := f.Fetch(t.Context(), []httprange.Range{{Off: 0, Len: 1000}}, byteWriter(dst)); err != nil {
		t.Fatal(err)
	}
	srv.Put("/p/pkg.bin", v2, time.UnixMilli(2000))
	err := f.Fetch(t.Context(), []httprange.Range{{Off: 1000, Len: 5000}}, byteWriter(dst))
	if !errors.Is(err, store.ErrChanged) || !strings.Contains(err.Error(), "p/pkg.bin") {
		t.Fatalf("Fetch after a replacement: %v", err)
	}
	if !bytes.Equal(dst[1000:6000], make([]byte, 5000)) {
		t.Fatal("bytes of the new version were written")
	}
}
