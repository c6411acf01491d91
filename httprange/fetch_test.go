package httprange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/byterange"
)

func TestCoalesce(t *testing.T) {
	tests := []struct {
		name string
		in   []Range
		want []Range
	}{
		{"nil", nil, []Range{}},
		{"empty ranges dropped", []Range{{Off: 5, Len: 0}, {Off: 7, Len: 0}}, []Range{}},
		{"sorted", []Range{{Off: 20, Len: 5}, {Off: 0, Len: 5}, {Off: 10, Len: 5}}, []Range{{Off: 0, Len: 5}, {Off: 10, Len: 5}, {Off: 20, Len: 5}}},
		{"adjacent", []Range{{Off: 0, Len: 10}, {Off: 10, Len: 10}, {Off: 20, Len: 5}}, []Range{{Off: 0, Len: 25}}},
		{"overlap", []Range{{Off: 0, Len: 10}, {Off: 5, Len: 10}}, []Range{{Off: 0, Len: 15}}},
		{"contained", []Range{{Off: 0, Len: 100}, {Off: 10, Len: 5}, {Off: 50, Len: 50}}, []Range{{Off: 0, Len: 100}}},
		{"gap of one byte kept", []Range{{Off: 0, Len: 10}, {Off: 11, Len: 1}}, []Range{{Off: 0, Len: 10}, {Off: 11, Len: 1}}},
		{"duplicates", []Range{{Off: 3, Len: 4}, {Off: 3, Len: 4}, {Off: 3, Len: 2}}, []Range{{Off: 3, Len: 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := Coalesce(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("Coalesce(%v) = %v, want %v", tt.in, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("Coalesce modified its input")
			}
		})
	}
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name      string
		in        []Range
		maxRanges int
		maxBytes  int64
		want      [][]Range
	}{
		{"one", []Range{{Off: 0, Len: 10}}, 16, 100, [][]Range{{{Off: 0, Len: 10}}}},
		{"by count", []Range{{Off: 0, Len: 1}, {Off: 2, Len: 1}, {Off: 4, Len: 1}}, 2, 100, [][]Range{{{Off: 0, Len: 1}, {Off: 2, Len: 1}}, {{Off: 4, Len: 1}}}},
		{"by bytes", []Range{{Off: 0, Len: 60}, {Off: 100, Len: 60}}, 16, 100, [][]Range{{{Off: 0, Len: 60}}, {{Off: 100, Len: 60}}}},
		{"big range cut", []Range{{Off: 0, Len: 250}, {Off: 300, Len: 10}}, 16, 100, [][]Range{{{Off: 0, Len: 100}}, {{Off: 100, Len: 100}}, {{Off: 200, Len: 50}, {Off: 300, Len: 10}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := split(tt.in, tt.maxRanges, tt.maxBytes)
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("split = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSubtract(t *testing.T) {
	rs := []Range{{Off: 0, Len: 10}, {Off: 20, Len: 10}, {Off: 40, Len: 10}}
	tests := []struct {
		cut  Range
		want []Range
	}{
		{Range{Off: 100, Len: 5}, rs},
		{Range{Off: 0, Len: 10}, []Range{{Off: 20, Len: 10}, {Off: 40, Len: 10}}},
		{Range{Off: 5, Len: 20}, []Range{{Off: 0, Len: 5}, {Off: 25, Len: 5}, {Off: 40, Len: 10}}},
		{Range{Off: 42, Len: 2}, []Range{{Off: 0, Len: 10}, {Off: 20, Len: 10}, {Off: 40, Len: 2}, {Off: 44, Len: 6}}},
		{Range{Off: 0, Len: 100}, []Range{}},
	}
	for _, tt := range tests {
		if got := byterange.Subtract(rs, tt.cut); !slices.Equal(got, tt.want) {
			t.Errorf("byterange.Subtract(%v) = %v, want %v", tt.cut, got, tt.want)
		}
	}
}

// TestFetchServeContent fetches from http.ServeContent, the server side of net/http.
func TestFetchServeContent(t *testing.T) {
	const size = 1 << 20
	data := randomData(size, 1)
	many := make([]Range, 40)
	for i := range many {
		many[i] = Range{Off: int64(i) * 20000, Len: 100 + int64(i)}
	}
	tests := []struct {
		name         string
		ranges       []Range
		opts         Options
		wantRequests int64
		wantRange    string // Range header of the first request, if checked
	}{
		{name: "single", ranges: []Range{{Off: 1000, Len: 5000}}, wantRequests: 1, wantRange: "bytes=1000-5999"},
		{name: "first byte", ranges: []Range{{Off: 0, Len: 1}}, wantRequests: 1, wantRange: "bytes=0-0"},
		{name: "last byte", ranges: []Range{{Off: size - 1, Len: 1}}, wantRequests: 1, wantRange: "bytes=1048575-1048575"},
		{name: "whole file", ranges: []Range{{Off: 0, Len: size}}, wantRequests: 1, wantRange: "bytes=0-1048575"},
		{name: "multi", ranges: []Range{{Off: 500000, Len: 10}, {Off: 10, Len: 20}, {Off: 9000, Len: 3000}}, wantRequests: 1,
			wantRange: "bytes=10-29,9000-11999,500000-500009"},
		{name: "adjacent and overlapping merged", ranges: []Range{{Off: 100, Len: 50}, {Off: 150, Len: 50}, {Off: 120, Len: 100}, {Off: 400, Len: 1}},
			wantRequests: 1, wantRange: "bytes=100-219,400-400"},
		{name: "empty", ranges: []Range{{Off: 10, Len: 0}}, wantRequests: 0},
		{name: "40 ranges in batches of 20", ranges: many, wantRequests: 2},
		{name: "40 ranges, 7 per request, serial", ranges: many, opts: Options{MaxRangesPerRequest: 7, Parallel: 1}, wantRequests: 6},
		{name: "big range split", ranges: []Range{{Off: 1, Len: 300000}}, opts: Options{MaxRequestBytes: 100000}, wantRequests: 3,
			wantRange: "bytes=1-100000"},
		{name: "one range per request", ranges: []Range{{Off: 0, Len: 1}, {Off: 5, Len: 1}, {Off: 9, Len: 1}}, opts: Options{MaxRangesPerRequest: 1}, wantRequests: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, log := newContentServer(t, data)
			var progress atomic.Int64
			tt.opts.OnProgress = func(n int64) { progress.Add(n) }
			f := New(srv.URL+"/file.bin", fast(tt.opts))
			w := newRecWriter(size)
			if err := f.Fetch(context.Background(), tt.ranges, w); err != nil {
				t.Fatal(err)
			}
			w.check(t, data, tt.ranges)
			st := f.Stats()
			if st.Requests != tt.wantRequests || int64(log.len()) != tt.wantRequests {
				t.Errorf("Stats.Requests = %d, server saw %d, want %d", st.Requests, log.len(), tt.wantRequests)
			}
			want := byterange.Sum(Coalesce(tt.ranges))
			if progress.Load() != want {
				t.Errorf("OnProgress summed %d, want %d", progress.Load(), want)
			}
			if st.Bytes < want {
				t.Errorf("Stats.Bytes = %d, below the %d bytes written", st.Bytes, want)
			}
			if tt.wantRange != "" {
				if got := log.get("Range")[0]; got != tt.wantRange {
					t.Errorf("first Range header %q, want %q", got, tt.wantRange)
				}
			}
			if tt.wantRequests > 0 && f.Length() != size {
				t.Errorf("Length() = %d, want %d", f.Length(), size)
			}
		})
	}
}

// TestPinning checks which validator is pinned and sent as If-Range, and that a change is caught.
func TestPinning(t *testing.T) {
	data := randomData(100000, 2)
	later := testModTime.Add(time.Hour)
	ranges := []Range{{Off: 0, Len: 10}, {Off: 100, Len: 10}, {Off: 200, Len: 10}, {Off: 300, Len: 10}}
	tests := []struct {
		name      string
		validator string // Options.Validator
		first     file   // served to the first request
		later     file   // served to the others
		wantPin   string // Validator() after the fetch
		wantErr   error
	}{
		{name: "strong ETag", first: file{data, `"a"`, testModTime}, later: file{data, `"a"`, testModTime}, wantPin: `"a"`},
		{name: "Last-Modified without ETag", first: file{data, "", testModTime}, later: file{data, "", testModTime},
			wantPin: testModTime.Format(http.TimeFormat)},
		{name: "weak ETag falls back to Last-Modified", first: file{data, `W/"a"`, testModTime}, later: file{data, `W/"a"`, testModTime},
			wantPin: testModTime.Format(http.TimeFormat)},
		{name: "no validator", first: file{data, "", time.Time{}}, later: file{data, "", time.Time{}}, wantPin: ""},
		{name: "ETag changes", first: file{data, `"a"`, testModTime}, later: file{randomData(100000, 3), `"b"`, testModTime}, wantErr: ErrChanged},
		{name: "Last-Modified changes", first: file{data, "", testModTime}, later: file{randomData(100000, 3), "", later}, wantErr: ErrChanged},
		{name: "length changes", first: file{data, "", time.Time{}}, later: file{data[:99000], "", time.Time{}}, wantErr: ErrChanged},
		{name: "given ETag", validator: `"a"`, first: file{data, `"a"`, testModTime}, later: file{data, `"a"`, testModTime}, wantPin: `"a"`},
		{name: "given ETag differs", validator: `"old"`, first: file{data, `"a"`, testModTime}, later: file{data, `"a"`, testModTime}, wantErr: ErrChanged},
		{name: "given zsync MTime", validator: "Tue, 24 Nov 2026 23:49:02 +0000", first: file{data, "", testModTime},
			later: file{data, "", testModTime}, wantPin: testModTime.Format(http.TimeFormat)},
		{name: "given date differs", validator: later.Format(http.TimeFormat), first: file{data, "", testModTime},
			later: file{data, "", testModTime}, wantErr: ErrChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			log := &reqLog{}
			srv := httptest.NewServer(contentHandler(log, func() file {
				if n.Add(1) == 1 {
					return tt.first
				}
				return tt.later
			}))
			defer srv.Close()
			f := New(srv.URL, fast(Options{MaxRangesPerRequest: 1, Validator: tt.validator}))
			w := newRecWriter(len(data))
			err := f.Fetch(context.Background(), ranges, w)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Fetch error %v, want %v", err, tt.wantErr)
				}
				// Only bytes of the first version may have been written.
				for _, r := range w.coverage() {
					if !bytes.Equal(w.buf[r.Off:r.End()], tt.first.data[r.Off:r.End()]) {
						t.Fatalf("bytes %v of the new version were written", r)
					}
				}
				if tt.validator == "" && len(w.coverage()) == 0 {
					t.Errorf("the first reply's bytes were not written")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w.check(t, data, ranges)
			if got := f.Validator(); got != tt.wantPin {
				t.Errorf("Validator() = %q, want %q", got, tt.wantPin)
			}
			ifr := log.get("If-Range")
			for i, got := range ifr {
				want := tt.wantPin
				if i == 0 && tt.validator == "" {
					want = "" // nothing pinned before the first reply
				}
				if got != want {
					t.Errorf("request %d: If-Range %q, want %q", i, got, want)
				}
			}
		})
	}
}

// TestChangedServerIgnoresIfRange: a server that answers 206 for a new version despite If-Range.
func TestChangedServerIgnoresIfRange(t *testing.T) {
	v1, v2 := randomData(50000, 4), randomData(50000, 5)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, etag := v1, `"1"`
		if n.Add(1) > 1 {
			data, etag = v2, `"2"`
		}
		r.Header.Del("If-Range")
		w.Header().Set("Etag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	f := New(srv.URL, fast(Options{MaxRangesPerRequest: 1}))
	w := newRecWriter(len(v1))
	err := f.Fetch(context.Background(), []Range{{Off: 0, Len: 100}, {Off: 1000, Len: 100}}, w)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("Fetch error %v, want ErrChanged", err)
	}
	if got := w.coverage(); !slices.Equal(got, []Range{{Off: 0, Len: 100}}) {
		t.Errorf("wrote %v, want only the first reply's [0,100)", got)
	}
	if !bytes.Equal(w.buf[:100], v1[:100]) {
		t.Errorf("first reply's bytes wrong")
	}
	var e *Error
	if !errors.As(err, &e) || e.Range != (Range{Off: 1000, Len: 100}) || e.Status != http.StatusPartialContent {
		t.Errorf("error %#v does not name the range and status", err)
	}
}

// ignoreRangeHandler sends the whole file with a 200 whatever the request asks.
func ignoreRangeHandler(log *reqLog, data []byte, chunked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		w.Header().Set("Etag", `"full"`)
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		}
		for i := 0; i < len(data); i += 10000 {
			w.Write(data[i:min(i+10000, len(data))])
			if chunked {
				w.(http.Flusher).Flush()
			}
		}
	}
}

func TestServerIgnoresRange(t *testing.T) {
	const size = 300000
	data := randomData(size, 6)
	for _, tc := range []struct {
		chunked   bool
		validator string
	}{{false, ""}, {true, ""}, {false, `"full"`}} {
		t.Run(fmt.Sprintf("chunked=%v,validator=%s", tc.chunked, tc.validator), func(t *testing.T) {
			log := &reqLog{}
			srv := httptest.NewServer(ignoreRangeHandler(log, data, tc.chunked))
			defer srv.Close()
			f := New(srv.URL, fast(Options{MaxRangesPerRequest: 2, Validator: tc.validator}))
			ranges := scattered(20, size, 5000, 7)
			w := newRecWriter(size)
			if err := f.Fetch(context.Background(), ranges, w); err != nil {
				t.Fatal(err)
			}
			w.check(t, data, ranges)
			if st := f.Stats(); st.Requests != 1 || st.Bytes != size {
				t.Errorf("Stats %+v after one Fetch, want 1 request and %d bytes", st, size)
			}
			// A later call sends a single plain GET.
			ranges2 := []Range{{Off: 0, Len: 10}, {Off: size - 10, Len: 10}, {Off: size / 2, Len: 1}}
			w2 := newRecWriter(size)
			if err := f.Fetch(context.Background(), ranges2, w2); err != nil {
				t.Fatal(err)
			}
			w2.check(t, data, ranges2)
			if st := f.Stats(); st.Requests != 2 || st.Bytes != 2*size {
				t.Errorf("Stats %+v after two Fetches, want 2 requests and %d bytes", st, 2*size)
			}
			if got := log.get("Range"); got[1] != "" {
				t.Errorf("second request sent Range %q", got[1])
			}
		})
	}
}

func TestServerIgnoresRangeWrongLength(t *testing.T) {
	data := randomData(10000, 8)
	tests := []struct {
		name    string
		length  int64
		chunked bool
		want    error
	}{
		{"Content-Length differs", 20000, false, ErrChanged},
		{"chunked body longer", 5000, true, ErrChanged},
		{"chunked body shorter", 20000, true, ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(ignoreRangeHandler(&reqLog{}, data, tt.chunked))
			defer srv.Close()
			f := New(srv.URL, fast(Options{Length: tt.length, Retries: 1}))
			err := f.Fetch(context.Background(), []Range{{Off: 0, Len: 10}}, newRecWriter(int(tt.length)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Fetch error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestBadContentRange: replies whose Content-Range lies are rejected and retried at most Retries times.
func TestBadContentRange(t *testing.T) {
	const size = 10000
	data := randomData(size, 9)
	tests := []struct {
		name         string
		contentRange string
		body         []byte
		want         error
		wantRequests int64
	}{
		{"other range", "bytes 0-99/10000", data[:100], ErrBadContentRange, 3},
		{"shifted by one", "bytes 101-200/10000", data[101:201], ErrBadContentRange, 3},
		{"end before start", "bytes 199-100/10000", data[100:200], ErrBadContentRange, 3},
		{"end past total", "bytes 100-199/150", data[100:200], ErrBadContentRange, 3},
		{"unknown total", "bytes 100-199/*", data[100:200], ErrBadContentRange, 3},
		{"garbage", "lies", data[100:200], ErrBadContentRange, 3},
		{"missing", "", data[100:200], ErrBadContentRange, 3},
		{"unsatisfied form", "bytes */10000", data[100:200], ErrBadContentRange, 3},
		{"length differs", "bytes 100-199/20000", data[100:200], ErrChanged, 1},
		{"body longer", "bytes 100-199/10000", data[100:300], ErrBadContentRange, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentRange != "" {
					w.Header().Set("Content-Range", tt.contentRange)
				}
				w.WriteHeader(http.StatusPartialContent)
				w.Write(tt.body)
			}))
			defer srv.Close()
			f := New(srv.URL, fast(Options{Length: size, Retries: 2}))
			err := f.Fetch(context.Background(), []Range{{Off: 100, Len: 100}}, newRecWriter(size))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Fetch error %v, want %v", err, tt.want)
			}
			if got := f.Stats().Requests; got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
			if !strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "bytes 100-199") {
				t.Errorf("error %q does not name the URL and range", err)
			}
		})
	}
}

// truncating wraps a handler so that each of the first fails requests (or all, if fails < 0)
// breaks off after cut body bytes.
func truncating(h http.Handler, fails int64, cut int) (http.Handler, *atomic.Int64) {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := n.Add(1); fails >= 0 && i > fails {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&cutWriter{ResponseWriter: w, left: cut}, r)
	}), &n
}

type cutWriter struct {
	http.ResponseWriter
	left int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) > c.left {
		c.ResponseWriter.Write(p[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	c.left -= len(p)
	return c.ResponseWriter.Write(p)
}

func TestTruncatedBodies(t *testing.T) {
	const size = 200000
	data := randomData(size, 10)
	tests := []struct {
		name         string
		ranges       []Range
		fails        int64
		cut          int
		wantErr      error
		wantRequests int64
	}{
		{"single part, two failures", []Range{{Off: 1000, Len: 50000}}, 2, 1000, nil, 3},
		{"multipart, two failures", []Range{{Off: 1000, Len: 50000}, {Off: 100000, Len: 50000}}, 2, 20000, nil, 3},
		{"multipart cut in the headers", []Range{{Off: 10, Len: 10}, {Off: 100, Len: 10}}, 1, 50, nil, 2},
		{"single part always cut", []Range{{Off: 1000, Len: 50000}}, -1, 1000, ErrShort, 3},
		{"multipart always cut", []Range{{Off: 0, Len: 10}, {Off: 100000, Len: 90000}}, -1, 20000, ErrShort, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &reqLog{}
			h, _ := truncating(contentHandler(log, func() file { return file{data, `"t"`, time.Time{}} }), tt.fails, tt.cut)
			srv := httptest.NewServer(h)
			defer srv.Close()
			f := New(srv.URL, fast(Options{Retries: 2}))
			w := newRecWriter(size)
			err := f.Fetch(context.Background(), tt.ranges, w)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Fetch error %v, want %v", err, tt.wantErr)
			}
			if got := f.Stats().Requests; got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
			if err == nil {
				w.check(t, data, tt.ranges)
				return
			}
			// The prefixes that arrived are right, and nothing else was written.
			for _, r := range w.coverage() {
				if !bytes.Equal(w.buf[r.Off:r.End()], data[r.Off:r.End()]) {
					t.Fatalf("wrong bytes written at %v", r)
				}
			}
		})
	}
	t.Run("only the rest is asked for again", func(t *testing.T) {
		log := &reqLog{}
		h, _ := truncating(contentHandler(log, func() file { return file{data, `"t"`, time.Time{}} }), 1, 1000)
		srv := httptest.NewServer(h)
		defer srv.Close()
		f := New(srv.URL, fast(Options{}))
		w := newRecWriter(size)
		if err := f.Fetch(context.Background(), []Range{{Off: 5000, Len: 10000}}, w); err != nil {
			t.Fatal(err)
		}
		w.check(t, data, []Range{{Off: 5000, Len: 10000}})
		got := log.get("Range")
		if len(got) != 2 || got[0] != "bytes=5000-14999" || got[1] != "bytes=6000-14999" {
			t.Errorf("Range headers %q, want the whole range then its last 9000 bytes", got)
		}
	})
}

func TestStatusErrors(t *testing.T) {
	data := randomData(1000, 11)
	tests := []struct {
		name         string
		handler      http.HandlerFunc
		opts         Options
		ranges       []Range
		wantErr      error
		wantStatus   int
		wantRequests int64
	}{
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, Options{},
			[]Range{{Off: 0, Len: 10}}, ErrStatus, 404, 1},
		{"403", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 403) }, Options{},
			[]Range{{Off: 0, Len: 10}}, ErrStatus, 403, 1},
		{"416 from ServeContent", contentHandler(nil, func() file { return file{data, "", time.Time{}} }), Options{},
			[]Range{{Off: 5000, Len: 10}}, ErrNoRange, 416, 1},
		{"past the end, clamped by the server", contentHandler(nil, func() file { return file{data, "", time.Time{}} }), Options{},
			[]Range{{Off: 995, Len: 10}}, ErrNoRange, 206, 1},
		{"past the given length", contentHandler(nil, func() file { return file{data, "", time.Time{}} }), Options{Length: 1000},
			[]Range{{Off: 995, Len: 10}}, ErrNoRange, 0, 0},
		{"503 always", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", 503) }, Options{Retries: 3},
			[]Range{{Off: 0, Len: 10}}, ErrStatus, 503, 4},
		{"gzip not asked for", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Range", "bytes 0-9/1000")
			w.WriteHeader(206)
			w.Write(data[:10])
		}, Options{}, []Range{{Off: 0, Len: 10}}, ErrStatus, 206, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			f := New(srv.URL+"/x", fast(tt.opts))
			err := f.Fetch(context.Background(), tt.ranges, newRecWriter(2000))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Fetch error %v, want %v", err, tt.wantErr)
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != tt.wantStatus || e.URL != srv.URL+"/x" {
				t.Errorf("error %#v, want *Error with status %d and the URL", err, tt.wantStatus)
			}
			if got := f.Stats().Requests; got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestRetryThenSuccess(t *testing.T) {
	data := randomData(5000, 12)
	var n atomic.Int64
	content := contentHandler(nil, func() file { return file{data, `"r"`, time.Time{}} })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		content(w, r)
	}))
	defer srv.Close()
	f := New(srv.URL, fast(Options{}))
	w := newRecWriter(len(data))
	if err := f.Fetch(context.Background(), []Range{{Off: 10, Len: 100}, {Off: 200, Len: 300}}, w); err != nil {
		t.Fatal(err)
	}
	w.check(t, data, []Range{{Off: 10, Len: 100}, {Off: 200, Len: 300}})
	if got := f.Stats().Requests; got != 3 {
		t.Errorf("%d requests, want 3", got)
	}
}

func TestInvalidInput(t *testing.T) {
	tests := []struct {
		name   string
		url    string
		opts   Options
		ranges []Range
	}{
		{"negative offset", "http://127.0.0.1:1/", Options{}, []Range{{Off: -1, Len: 5}}},
		{"negative length", "http://127.0.0.1:1/", Options{}, []Range{{Off: 0, Len: -5}}},
		{"overflow", "http://127.0.0.1:1/", Options{}, []Range{{Off: 1 << 62, Len: 1 << 62}}},
		{"weak validator", "http://127.0.0.1:1/", Options{Validator: `W/"x"`}, []Range{{Off: 0, Len: 1}}},
		{"bad validator", "http://127.0.0.1:1/", Options{Validator: "yesterday"}, []Range{{Off: 0, Len: 1}}},
		{"ftp URL", "ftp://127.0.0.1/x", Options{}, []Range{{Off: 0, Len: 1}}},
		{"no host", "http:///x", Options{}, []Range{{Off: 0, Len: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(tt.url, tt.opts)
			if err := f.Fetch(context.Background(), tt.ranges, newRecWriter(10)); err == nil {
				t.Fatal("Fetch succeeded")
			}
			if got := f.Stats().Requests; got != 0 {
				t.Errorf("%d requests sent", got)
			}
		})
	}
}

// TestContextCancel: a cancelled context ends the backoff sleep and the fetch.
func TestContextCancel(t *testing.T) {
	first := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(first) })
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	f := New(srv.URL, Options{RetryDelay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-first
		cancel()
	}()
	err := f.Fetch(ctx, []Range{{Off: 0, Len: 10}}, newRecWriter(10))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch error %v, want context.Canceled", err)
	}
	if got := f.Stats().Requests; got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
	err = f.Fetch(ctx, []Range{{Off: 0, Len: 10}}, newRecWriter(10))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch with a done context: error %v, want context.Canceled", err)
	}
}

// parseRangeHeader parses "bytes=a-b,c-d" as this package sends it.
func parseRangeHeader(t *testing.T, s string) []Range {
	t.Helper()
	spec, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		t.Errorf("Range header %q", s)
		return nil
	}
	var out []Range
	for _, p := range strings.Split(spec, ",") {
		a, b, _ := strings.Cut(p, "-")
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil {
			t.Errorf("Range header %q", s)
			return nil
		}
		out = append(out, Range{Off: first, Len: last - first + 1})
	}
	return out
}

// writeParts answers 206 multipart/byteranges with the given parts, in that order.
func writeParts(w http.ResponseWriter, data []byte, parts []Range) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, p := range parts {
		pw, _ := mw.CreatePart(textproto.MIMEHeader{
			"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", p.Off, p.End()-1, len(data))},
			"Content-Type":  {"application/octet-stream"},
		})
		pw.Write(data[p.Off:p.End()])
	}
	mw.Close()
	w.Header().Set("Content-Type", "multipart/byteranges; boundary="+mw.Boundary())
	w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
	w.WriteHeader(http.StatusPartialContent)
	w.Write(body.Bytes())
}

// TestMergingServer: servers may merge, reorder, repeat or leave out parts of a multipart reply.
func TestMergingServer(t *testing.T) {
	const size = 100000
	data := randomData(size, 13)
	ranges := []Range{{Off: 100, Len: 100}, {Off: 300, Len: 100}, {Off: 5000, Len: 10}, {Off: 50000, Len: 1000}}
	tests := []struct {
		name         string
		reply        func(asked []Range) []Range // nil: a single part covering all asked
		wantRequests int64
	}{
		{"reversed", func(a []Range) []Range { return []Range{a[3], a[2], a[1], a[0]} }, 1},
		{"merged across the gap", func(a []Range) []Range { return []Range{{Off: a[0].Off, Len: a[1].End() - a[0].Off}, a[2], a[3]} }, 1},
		{"repeated part", func(a []Range) []Range { return []Range{a[0], a[1], a[0], a[2], a[3]} }, 1},
		{"last left out", func(a []Range) []Range { return slices.Clone(a[:len(a)-1]) }, 2},
		{"only one part", func(a []Range) []Range { return []Range{a[1]} }, 4},
		{"split into halves", func(a []Range) []Range {
			var out []Range
			for _, r := range a {
				h := r.Len / 2
				out = append(out, Range{Off: r.Off + h, Len: r.Len - h}, Range{Off: r.Off, Len: h})
			}
			return out
		}, 1},
		{"single part covering all", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &reqLog{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				log.add(r)
				w.Header().Set("Etag", `"m"`)
				asked := parseRangeHeader(t, r.Header.Get("Range"))
				if len(asked) == 1 {
					http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
					return
				}
				if tt.reply == nil {
					h := hull(asked)
					w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", h.Off, h.End()-1, size))
					w.WriteHeader(http.StatusPartialContent)
					w.Write(data[h.Off:h.End()])
					return
				}
				writeParts(w, data, tt.reply(asked))
			}))
			defer srv.Close()
			f := New(srv.URL, fast(Options{}))
			w := newRecWriter(size)
			if err := f.Fetch(context.Background(), ranges, w); err != nil {
				t.Fatal(err)
			}
			w.check(t, data, ranges)
			if got := f.Stats().Requests; got != tt.wantRequests {
				t.Errorf("%d requests (%q), want %d", got, log.get("Range"), tt.wantRequests)
			}
		})
	}
	t.Run("part outside the request", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeParts(w, data, []Range{{Off: 0, Len: 10}, {Off: 20000, Len: 10}})
		}))
		defer srv.Close()
		f := New(srv.URL, fast(Options{Retries: 1}))
		err := f.Fetch(context.Background(), []Range{{Off: 100, Len: 10}, {Off: 200, Len: 10}}, newRecWriter(size))
		if !errors.Is(err, ErrBadContentRange) {
			t.Fatalf("Fetch error %v, want ErrBadContentRange", err)
		}
		if got := f.Stats().Requests; got != 2 {
			t.Errorf("%d requests, want 2", got)
		}
	})
	t.Run("no parts", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeParts(w, data, nil)
		}))
		defer srv.Close()
		f := New(srv.URL, fast(Options{Retries: 1}))
		err := f.Fetch(context.Background(), []Range{{Off: 100, Len: 10}, {Off: 200, Len: 10}}, newRecWriter(size))
		if !errors.Is(err, ErrShort) {
			t.Fatalf("Fetch error %v, want ErrShort", err)
		}
	})
}

func TestHeadersPassed(t *testing.T) {
	data := randomData(10000, 14)
	content := contentHandler(nil, func() file { return file{data, `"h"`, time.Time{}} })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Accept-Encoding") != "identity" {
			http.Error(w, "compression asked for", http.StatusBadRequest)
			return
		}
		content(w, r)
	}))
	defer srv.Close()
	h := http.Header{"Authorization": {"Bearer s3cret"}}
	ranges := []Range{{Off: 0, Len: 100}, {Off: 5000, Len: 100}}
	f := New(srv.URL, fast(Options{Header: h}))
	w := newRecWriter(len(data))
	if err := f.Fetch(context.Background(), ranges, w); err != nil {
		t.Fatal(err)
	}
	w.check(t, data, ranges)

	err := New(srv.URL, fast(Options{})).Fetch(context.Background(), ranges, newRecWriter(len(data)))
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Fatalf("without Authorization: error %v, want status 401", err)
	}
	got, err := Get(context.Background(), nil, srv.URL, h, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get with Authorization: %d bytes, %v", len(got), err)
	}
}

// TestConcurrentFetches runs many Fetch calls on one Fetcher at once (run with -race).
func TestConcurrentFetches(t *testing.T) {
	const size = 2 << 20
	data := randomData(size, 15)
	srv, _ := newContentServer(t, data)
	f := New(srv.URL, fast(Options{Parallel: 3, MaxRangesPerRequest: 4, MaxRequestBytes: 100000}))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	writers := make([]*recWriter, len(errs))
	rangeSets := make([][]Range, len(errs))
	for i := range errs {
		writers[i] = newRecWriter(size)
		rangeSets[i] = scattered(30, size, 50000, uint64(100+i))
		wg.Go(func() { errs[i] = f.Fetch(context.Background(), rangeSets[i], writers[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Fetch %d: %v", i, err)
		}
		writers[i].check(t, data, rangeSets[i])
	}
	if f.Validator() != `"v1"` || f.Length() != size {
		t.Errorf("pinned %q, %d", f.Validator(), f.Length())
	}
}

// failWriter fails every write.
type failWriter struct{ calls atomic.Int64 }

func (w *failWriter) WriteAt(p []byte, off int64) (int, error) {
	w.calls.Add(1)
	return 0, errors.New("disk full")
}

func TestWriteErrorNotRetried(t *testing.T) {
	srv, _ := newContentServer(t, randomData(10000, 16))
	f := New(srv.URL, fast(Options{}))
	err := f.Fetch(context.Background(), []Range{{Off: 0, Len: 100}}, &failWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Fetch error %v, want the write error", err)
	}
	if got := f.Stats().Requests; got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

// TestKeepAlive checks that bodies, error replies included, are drained so that connections are
// reused: requests sent one at a time all go over one connection. (With several in flight, Go's
// Transport may dial a spare connection when one frees up while a dial is pending, so only the
// serial case has an exact count.)
func TestKeepAlive(t *testing.T) {
	const size = 1 << 20
	data := randomData(size, 17)
	var conns atomic.Int64
	content := contentHandler(nil, func() file { return file{data, `"k"`, time.Time{}} })
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, strings.Repeat("not here\n", 1000), http.StatusNotFound)
			return
		}
		content(w, r)
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client, err := NewClient("", 0)
	if err != nil {
		t.Fatal(err)
	}
	f := New(srv.URL, fast(Options{Client: client, Parallel: 1, MaxRangesPerRequest: 2}))
	for i := range 3 {
		ranges := scattered(40, size, 5000, uint64(50+i))
		w := newRecWriter(size)
		if err := f.Fetch(context.Background(), ranges, w); err != nil {
			t.Fatal(err)
		}
		w.check(t, data, ranges)
		// Error replies are drained too.
		if err := New(srv.URL+"/missing", Options{Client: client}).Fetch(context.Background(), ranges, w); !errors.Is(err, ErrStatus) {
			t.Fatalf("Fetch of a missing file: error %v, want ErrStatus", err)
		}
		if _, err := Get(context.Background(), client, srv.URL+"/missing", nil, 1<<20); !errors.Is(err, ErrStatus) {
			t.Fatalf("Get of a missing file: error %v, want ErrStatus", err)
		}
	}
	if st := f.Stats(); st.Requests < 40 || conns.Load() != 1 {
		t.Errorf("%d requests over %d connections, want one connection", st.Requests, conns.Load())
	}
}

// stopWriter refuses bytes from stop on, as a swarm node's run writer does once the run is cut.
type stopWriter struct{ stop int64 }

func (w *stopWriter) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > w.stop {
		return int(max(0, w.stop-off)), errors.New("the run was cut")
	}
	return len(p), nil
}

// TestWriteErrorDropsConnection checks that a reply whose bytes the destination refused is not
// read to its end (nor up to maxDrain) to keep its connection: the server would send them all,
// for nothing. Whole-file replies (a server that ignores Range) are dropped the same way.
func TestWriteErrorDropsConnection(t *testing.T) {
	const size, stop = 4 << 20, 64 << 10
	data := randomData(size, 18)
	for _, tc := range []struct {
		name   string
		ranges bool
	}{{"range reply", true}, {"whole-file reply", false}} {
		t.Run(tc.name, func(t *testing.T) {
			content := contentHandler(nil, func() file { return file{data, `"d"`, time.Time{}} })
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tc.ranges {
					r.Header.Del("Range")
				}
				content(w, r)
			}))
			defer srv.Close()
			f := New(srv.URL, fast(Options{}))
			err := f.Fetch(context.Background(), []Range{{Off: 0, Len: size}}, &stopWriter{stop: stop})
			if err == nil || !strings.Contains(err.Error(), "the run was cut") {
				t.Fatalf("Fetch error %v, want the write error", err)
			}
			// What was read: up to the stop, plus at most one read buffer of 64 KiB past it.
			if got := f.Stats().Bytes; got > stop+64<<10 {
				t.Errorf("read %d body bytes after the destination refused bytes at %d, want at most %d", got, stop, stop+64<<10)
			}
		})
	}
}
