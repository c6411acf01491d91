package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"sync"
	"testing"

	"github.com/pkgsync/pkgsync/httprange"
)

// FuzzParseContentRange: no panics, parsed values are consistent, and String parses back to the
// same value.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{
		"bytes 0-99/1000", "bytes */1000", "bytes 5-9/*", "BYTES\t1-1/2", "bytes 007-010/11",
		"bytes 0-9223372036854775807/*", "bytes 1-9223372036854775806/*", "bytes 10-9/100", "bytes */*", "bytes -1-5/10", "bytes=1-5/10", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := httprange.ParseContentRange(s)
		if err != nil {
			if !errors.Is(err, httprange.ErrBadContentRange) {
				t.Fatalf("ParseContentRange(%q) error %v does not wrap ErrBadContentRange", s, err)
			}
			return
		}
		if cr.Satisfied() {
			if cr.First < 0 || cr.First > cr.Last || (cr.Total >= 0 && cr.Last >= cr.Total) || cr.Total < -1 {
				t.Fatalf("ParseContentRange(%q) = %+v: inconsistent", s, cr)
			}
			if r := cr.Range(); r.Off != cr.First || r.Len != cr.Last-cr.First+1 || r.Len <= 0 {
				t.Fatalf("ParseContentRange(%q).Range() = %+v", s, r)
			}
		} else if cr.First != -1 || cr.Last != -1 || cr.Total < 0 {
			t.Fatalf("ParseContentRange(%q) = %+v: inconsistent unsatisfied range", s, cr)
		}
		again, err := httprange.ParseContentRange(cr.String())
		if err != nil || again != cr {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, cr.String(), again, err)
		}
	})
}

// replay answers every request with the same reply.
type replay struct {
	status        int
	header        http.Header
	body          []byte
	contentLength bool
}

func (r *replay) RoundTrip(req *http.Request) (*http.Response, error) {
	cl := int64(-1)
	if r.contentLength {
		cl = int64(len(r.body))
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", r.status, http.StatusText(r.status)), StatusCode: r.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.header.Clone(), Body: io.NopCloser(bytes.NewReader(r.body)), ContentLength: cl, Request: req,
	}, nil
}

// coverWriter records which bytes were written.
type coverWriter struct {
	mu      sync.Mutex
	size    int64
	written []httprange.Range
}

func (w *coverWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if off < 0 || off+int64(len(p)) > w.size {
		return 0, fmt.Errorf("write of %d bytes at %d outside the file", len(p), off)
	}
	w.written = append(w.written, httprange.Range{Off: off, Len: int64(len(p))})
	return len(p), nil
}

// multipartBody builds a multipart/byteranges body with boundary "B" for seeds.
func multipartBody(parts ...string) []byte {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.SetBoundary("B")
	for i := 0; i+1 < len(parts); i += 2 {
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Range": {parts[i]}})
		_, _ = pw.Write([]byte(parts[i+1]))
	}
	_ = mw.Close()
	return b.Bytes()
}

// FuzzFetchReply feeds arbitrary replies to Fetch: it must not panic, must write only requested
// bytes, and may return nil only when it wrote every one of them.
func FuzzFetchReply(f *testing.F) {
	const total = 2048
	want := []httprange.Range{{Off: 0, Len: 10}, {Off: 100, Len: 20}, {Off: 1000, Len: 5}}
	mp := "multipart/byteranges; boundary=B"
	f.Add(uint8(1), mp, "", `"e"`, multipartBody(
		"bytes 0-9/2048", "0123456789", "bytes 100-119/2048", "abcdefghijklmnopqrst", "bytes 1000-1004/2048", "vwxyz"), true, true)
	f.Add(uint8(1), mp, "", `"e"`, multipartBody("bytes 1000-1004/2048", "vwxyz", "bytes 0-119/2048", string(make([]byte, 120))), false, false)
	f.Add(uint8(1), mp, "", "", multipartBody("bytes 0-9/2048", "0123"), true, true)
	f.Add(uint8(1), "application/octet-stream", "bytes 0-1004/2048", `"e"`, make([]byte, 1005), true, true)
	f.Add(uint8(1), "", "bytes 0-9/2048", "", make([]byte, 10), false, false)
	f.Add(uint8(0), "", "", `"e"`, make([]byte, total), true, true)
	f.Add(uint8(0), "", "", "", make([]byte, total-1), false, false)
	f.Add(uint8(4), "", "bytes */2048", "", []byte("no"), true, true)
	f.Add(uint8(6), "text/plain", "", "", []byte("busy"), true, false)
	f.Fuzz(func(t *testing.T, status uint8, contentType, contentRange, etag string, body []byte, contentLength, knownLength bool) {
		statuses := []int{200, 206, 206, 206, 416, 404, 500}
		h := http.Header{}
		for k, v := range map[string]string{"Content-Type": contentType, "Content-Range": contentRange, "Etag": etag} {
			if v != "" {
				h.Set(k, v)
			}
		}
		rt := &replay{status: statuses[int(status)%len(statuses)], header: h, body: body, contentLength: contentLength}
		opts := httprange.Options{Client: &http.Client{Transport: rt}, Retries: -1, Parallel: 1}
		if knownLength {
			opts.Length = total
		}
		fetcher := httprange.New("http://127.0.0.1/f", opts)
		w := &coverWriter{size: total}
		err := fetcher.Fetch(context.Background(), want, w)
		got := httprange.Coalesce(w.written)
		for _, g := range got {
			inside := false
			for _, r := range want {
				if g.Off >= r.Off && g.End() <= r.End() {
					inside = true
				}
			}
			if !inside {
				t.Fatalf("wrote %v, outside the requested %v", g, want)
			}
		}
		if err == nil && !slices.Equal(got, want) {
			t.Fatalf("Fetch returned nil after writing only %v of %v", got, want)
		}
		var e *httprange.Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Fetch error %v (%T) is not an *httprange.Error", err, err)
		}
		if st := fetcher.Stats(); st.Bytes > int64(len(body))*st.Requests {
			t.Fatalf("Stats %+v count more than the %d-byte replies", st, len(body))
		}
	})
}
