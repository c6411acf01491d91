package origin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/metrics"
	"github.com/pkgsync/pkgsync/metrics/metricstest"
)

// TestMetrics serves a folder with its /metrics beside it, as `pkgsync serve` does, and checks
// after each request, through the Prometheus text parser, that the request counter of its method
// and status moved by one and the byte counter of its package, kind and status by exactly the
// body the client read, and that paths naming no file of the folder add no package label.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app-1.0.tar"), versions.Random(7, 300000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app-1.0.tar.sig"), []byte("signature"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := New(dir, Options{AutoMake: true})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := metrics.NewRegistry(srv.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(metrics.Handle(srv, reg))
	t.Cleanup(func() { ts.Close(); srv.Close() })

	tests := []struct {
		name, method, path, rng string
		status                  int
		pkg, kind               string
	}{
		{"a range", "GET", "/app-1.0.tar", "bytes=1000-5095", 206, "app-1.0.tar", "data"},
		{"two ranges", "GET", "/app-1.0.tar", "bytes=0-99,200000-200999", 206, "app-1.0.tar", "data"},
		{"whole", "GET", "/app-1.0.tar", "", 200, "app-1.0.tar", "data"},
		{"HEAD sends no body", "HEAD", "/app-1.0.tar", "", 200, "app-1.0.tar", "data"},
		{"unsatisfiable", "GET", "/app-1.0.tar", "bytes=999999-", 416, "app-1.0.tar", "data"},
		{"made torrent", "GET", "/app-1.0.tar.torrent", "", 200, "app-1.0.tar", "torrent"},
		{"made zsync", "GET", "/app-1.0.tar.zsync", "bytes=0-9", 206, "app-1.0.tar", "zsync"},
		{"signature", "GET", "/app-1.0.tar.sig", "", 200, "app-1.0.tar", "sig"},
		{"index", "GET", "/index.json", "", 200, "", "index"},
		{"missing", "GET", "/random-3f9a.tar", "", 404, "", ""},
		{"missing torrent", "GET", "/random-77c1.tar.torrent", "", 404, "", ""},
		{"out of the folder", "GET", "/%2e%2e/%2e%2e/etc/passwd", "", 404, "", ""},
		{"other method", "DELETE", "/app-1.0.tar", "", 405, "", ""},
	}
	scrape := func() metricstest.Families { return metricstest.Scrape(t, ts.URL+"/metrics") }
	before := scrape()
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, ts.URL+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.rng != "" {
			req.Header.Set("Range", tt.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tt.status {
			t.Fatalf("%s: %s %s: %s (%v), want %d", tt.name, tt.method, tt.path, resp.Status, err, tt.status)
		}
		after := scrape()
		method := map[string]string{"GET": "GET", "HEAD": "HEAD"}[tt.method]
		if method == "" {
			method = "other"
		}
		reqLabels := []string{"method", method, "status", strconv.Itoa(tt.status)}
		if d := after.Get("pkgsync_origin_requests_total", reqLabels...) - before.Get("pkgsync_origin_requests_total", reqLabels...); d != 1 {
			t.Errorf("%s: requests%q moved by %v, want 1", tt.name, reqLabels, d)
		}
		sentLabels := []string{"package", tt.pkg, "kind", tt.kind, "status", strconv.Itoa(tt.status)}
		got, ok := after.Value("pkgsync_origin_sent_bytes_total", sentLabels...)
		if d := got - before.Get("pkgsync_origin_sent_bytes_total", sentLabels...); !ok || d != float64(len(body)) {
			t.Errorf("%s: sent bytes{%q} moved by %v (present %v), want the %d bytes of the body", tt.name, sentLabels, d, ok, len(body))
		}
		before = after
	}
	for _, s := range before.Series("pkgsync_origin_sent_bytes_total") {
		if strings.Contains(s, "random") || strings.Contains(s, "passwd") {
			t.Errorf("a path naming no file of the folder became a label: %s", s)
		}
	}
	if !slices.Contains(before.Series("go_goroutines"), "") {
		t.Errorf("no go_goroutines in the scrape: the runtime's metrics are missing")
	}
}
