package httprange

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestGet(t *testing.T) {
	small := randomData(5000, 20)
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		maxBytes int64
		want     []byte
		wantErr  error
		wantCode int
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) { w.Write(small) }, 5000, small, nil, 0},
		{"empty", func(w http.ResponseWriter, r *http.Request) {}, 10, []byte{}, nil, 0},
		{"too large by Content-Length", func(w http.ResponseWriter, r *http.Request) { w.Write(small) }, 4999, nil, ErrTooLarge, 200},
		{"too large, chunked", func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < len(small); i += 1000 {
				w.Write(small[i : i+1000])
				w.(http.Flusher).Flush()
			}
		}, 4999, nil, ErrTooLarge, 200},
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, 100, nil, ErrStatus, 404},
		{"206 is not the file", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(206) }, 100, nil, ErrStatus, 206},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			got, err := Get(context.Background(), nil, srv.URL, nil, tt.maxBytes)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Get error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Status != tt.wantCode || e.URL != srv.URL {
					t.Errorf("error %#v, want status %d and the URL", err, tt.wantCode)
				}
				return
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Get returned %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
	t.Run("retries 503", func(t *testing.T) {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.Write(small)
		}))
		defer srv.Close()
		got, err := Get(context.Background(), nil, srv.URL, nil, 1<<20)
		if err != nil || !bytes.Equal(got, small) || n.Load() != 2 {
			t.Fatalf("Get: %d bytes, %v after %d requests", len(got), err, n.Load())
		}
	})
	t.Run("invalid arguments", func(t *testing.T) {
		for _, c := range []struct {
			url string
			max int64
		}{{"http://127.0.0.1:1/", 0}, {"ftp://127.0.0.1/x", 10}, {"::", 10}} {
			if _, err := Get(context.Background(), nil, c.url, nil, c.max); err == nil {
				t.Errorf("Get(%q, %d) succeeded", c.url, c.max)
			}
		}
	})
}

// writeCA writes the test server's certificate as a PEM CA bundle.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTLS(t *testing.T) {
	data := randomData(300000, 21)
	srv := httptest.NewUnstartedServer(contentHandler(nil, func() file { return file{data, `"tls"`, testModTime} }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.StartTLS()
	defer srv.Close()
	client, err := NewClient(writeCA(t, srv), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ranges := scattered(40, int64(len(data)), 3000, 22)
	f := New(srv.URL+"/f", fast(Options{Client: client, MaxRangesPerRequest: 8}))
	w := newRecWriter(len(data))
	if err := f.Fetch(context.Background(), ranges, w); err != nil {
		t.Fatal(err)
	}
	w.check(t, data, ranges)
	got, err := Get(context.Background(), client, srv.URL, nil, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get over TLS: %d bytes, %v", len(got), err)
	}

	// Without the CA the certificate is refused at once, not retried.
	f = New(srv.URL+"/f", fast(Options{}))
	err = f.Fetch(context.Background(), ranges, newRecWriter(len(data)))
	if err == nil || f.Stats().Requests != 1 {
		t.Fatalf("without the CA: error %v after %d requests, want one failed request", err, f.Stats().Requests)
	}
}

func TestNewClientErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "missing.pem"), "missing.pem"},
		{"no certificates", garbage, garbage},
		{"a directory", dir, dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(tt.file, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient(%s) error %v, want one naming %s", tt.file, err, tt.want)
			}
		})
	}
	if c, err := NewClient("", 0); err != nil || c == nil {
		t.Fatalf(`NewClient("") = %v, %v`, c, err)
	}
}

func TestErrorMessage(t *testing.T) {
	err := error(&Error{URL: "http://h/f", Range: Range{Off: 10, Len: 5}, Status: 404, Err: ErrStatus})
	const want = "httprange: http://h/f bytes 10-14: HTTP 404 Not Found: unexpected HTTP status"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, ErrStatus) {
		t.Error("errors.Is(err, ErrStatus) is false")
	}
	f := New("http://user:pw@127.0.0.1:1/f", Options{Validator: "bad"})
	err = f.Fetch(context.Background(), []Range{{Off: 0, Len: 1}}, newRecWriter(1))
	if err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("error %v shows the password", err)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 200 * time.Millisecond},
		{1, 400 * time.Millisecond},
		{3, 1600 * time.Millisecond},
		{10, maxRetryDelay},
		{1000, maxRetryDelay},
	}
	for _, tt := range tests {
		if got := backoff(DefaultRetryDelay, tt.failures); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in   string
		want ContentRange
		ok   bool
	}{
		{"bytes 0-99/1000", ContentRange{0, 99, 1000}, true},
		{"bytes 0-0/1", ContentRange{0, 0, 1}, true},
		{"  Bytes  5-9/*", ContentRange{5, 9, -1}, true},
		{"bytes */1000", ContentRange{-1, -1, 1000}, true},
		{"bytes 007-010/11", ContentRange{7, 10, 11}, true},
		{"bytes 0-99/100", ContentRange{0, 99, 100}, true},
		{"bytes 0-100/100", ContentRange{}, false},
		{"bytes 10-9/100", ContentRange{}, false},
		{"bytes */*", ContentRange{}, false},
		{"bytes -1-5/10", ContentRange{}, false},
		{"bytes +1-5/10", ContentRange{}, false},
		{"bytes 1-5/-10", ContentRange{}, false},
		{"bytes 1-5", ContentRange{}, false},
		{"bytes=1-5/10", ContentRange{}, false},
		{"items 1-5/10", ContentRange{}, false},
		{"bytes1-5/10", ContentRange{}, false},
		{"bytes 1 -5/10", ContentRange{}, false},
		{"bytes 0-9223372036854775806/*", ContentRange{0, 1<<63 - 2, -1}, true},
		{"bytes 0-9223372036854775807/*", ContentRange{}, false},
		{"bytes 0-9223372036854775808/*", ContentRange{}, false},
		{"", ContentRange{}, false},
		{"bytes ", ContentRange{}, false},
	}
	for _, tt := range tests {
		got, err := ParseContentRange(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseContentRange(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadContentRange) {
			t.Errorf("ParseContentRange(%q) error %v does not wrap ErrBadContentRange", tt.in, err)
		}
		if err == nil {
			if again, err := ParseContentRange(got.String()); err != nil || again != got {
				t.Errorf("round trip of %q via %q: %+v, %v", tt.in, got.String(), again, err)
			}
		}
	}
	// What ServeContent writes parses back to the same range.
	for _, r := range []Range{{Off: 0, Len: 1}, {Off: 5, Len: 10}, {Off: 1 << 40, Len: 1 << 20}} {
		s := "bytes " + strconv.FormatInt(r.Off, 10) + "-" + strconv.FormatInt(r.End()-1, 10) + "/" + strconv.FormatInt(r.End()+7, 10)
		cr, err := ParseContentRange(s)
		if err != nil || cr.Range() != r {
			t.Errorf("ParseContentRange(%q) = %+v, %v", s, cr, err)
		}
	}
}
