package origin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/report"
)

// lockedBuffer is written by the server's handlers, one goroutine per connection.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSuffix(l.b.String(), "\n"), "\n")
}

// TestRequestLogs: each request is a line of the access log, which pkgsync report reads back,
// and a JSON record of the log with the same facts as attributes.
func TestRequestLogs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pkg.tar"), bytes.Repeat([]byte("x"), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	var access, records lockedBuffer
	srv, err := origin.New(dir, origin.Options{AccessLog: &access, Log: slog.New(slog.NewJSONHandler(&records, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })

	tests := []struct {
		path, rng string
		status    int
		bytes     int64
	}{
		{"/pkg.tar", "", http.StatusOK, 5000},
		{"/pkg.tar", "bytes=100-1099", http.StatusPartialContent, 1000},
		{"/missing.tar", "", http.StatusNotFound, int64(len("not found\n"))},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+tt.path, nil)
		if tt.rng != "" {
			req.Header.Set("Range", tt.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ts.Close() // the handlers have returned: both logs are complete

	al, rl := access.lines(), records.lines()
	if len(al) != len(tests) || len(rl) != len(tests) {
		t.Fatalf("%d access log lines and %d records for %d requests:\n%s\n%s", len(al), len(rl), len(tests), al, rl)
	}
	// Connections are not always reused: the lines are in the order the handlers ended.
	type record struct {
		Time   string `json:"time"`
		Level  string `json:"level"`
		Msg    string `json:"msg"`
		Remote string `json:"remote"`
		Method string `json:"method"`
		Path   string `json:"path"`
		Status int    `json:"status"`
		Bytes  int64  `json:"bytes"`
		Took   *int64 `json:"took"`
		Range  string `json:"range"`
	}
	entries := map[string]report.AccessEntry{}
	recs := map[string]record{}
	for i := range tests {
		e, err := report.ParseAccessLine(al[i])
		if err != nil {
			t.Fatalf("access log line %q: %v", al[i], err)
		}
		entries[e.Path+" "+e.Range] = e
		var r record
		if err := json.Unmarshal([]byte(rl[i]), &r); err != nil {
			t.Fatalf("record %q: %v", rl[i], err)
		}
		if r.Range == "" {
			r.Range = "-"
		}
		recs[r.Path+" "+r.Range] = r
	}
	for _, tt := range tests {
		rng := tt.rng
		if rng == "" {
			rng = "-"
		}
		e, ok := entries[tt.path+" "+rng]
		if !ok || e.Method != http.MethodGet || e.Status != tt.status || e.Bytes != tt.bytes || e.Remote == "" {
			t.Errorf("GET %s, range %s: access log entry %+v (found: %v), want status %d and %d bytes", tt.path, rng, e, ok, tt.status, tt.bytes)
			continue
		}
		r, ok := recs[tt.path+" "+rng]
		if !ok || r.Time == "" || r.Level != "INFO" || r.Msg != "origin: request" || r.Remote != e.Remote || r.Method != e.Method ||
			r.Status != e.Status || r.Bytes != e.Bytes || r.Took == nil {
			t.Errorf("GET %s, range %s: record %+v (found: %v) does not say what the access log says: %+v", tt.path, rng, r, ok, e)
		}
	}
}
