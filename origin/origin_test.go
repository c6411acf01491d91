package origin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/manifest"
)

func newServer(t *testing.T, opt Options) (string, string) {
	t.Helper()
	dir := t.TempDir()
	srv, err := New(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return dir, ts.URL
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestServeRanges(t *testing.T) {
	dir, url := newServer(t, Options{})
	content := strings.Repeat("0123456789", 1000)
	os.WriteFile(filepath.Join(dir, "pkg.tar"), []byte(content), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "x"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, ".hidden"), []byte("secret"), 0o644)
	// A symbolic link that leaves the folder must not be followed.
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, []byte("outside"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "escape"))

	resp, _ := get(t, url+"/pkg.tar", nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" || strings.HasPrefix(etag, "W/") {
		t.Fatalf("status %d, ETag %q: want 200 with a strong ETag", resp.StatusCode, etag)
	}
	tests := []struct {
		name   string
		path   string
		hdr    map[string]string
		status int
		body   string // "" = don't check
		ctype  string // prefix
	}{
		{"single range", "/pkg.tar", map[string]string{"Range": "bytes=10-19"}, 206, "0123456789", ""},
		{"suffix range", "/pkg.tar", map[string]string{"Range": "bytes=-5"}, 206, "56789", ""},
		{"multi range", "/pkg.tar", map[string]string{"Range": "bytes=0-1,100-101"}, 206, "", "multipart/byteranges"},
		{"if-range match", "/pkg.tar", map[string]string{"Range": "bytes=0-3", "If-Range": etag}, 206, "0123", ""},
		{"if-range stale", "/pkg.tar", map[string]string{"Range": "bytes=0-3", "If-Range": `"old"`}, 200, content, ""},
		{"unsatisfiable", "/pkg.tar", map[string]string{"Range": "bytes=20000-"}, 416, "", ""},
		{"subfolder", "/sub/x", nil, 200, "x", ""},
		{"dot dot", "/../../etc/passwd", nil, 404, "", ""},
		{"encoded dot dot", "/%2e%2e/%2e%2e/etc/passwd", nil, 404, "", ""},
		{"hidden", "/.hidden", nil, 404, "", ""},
		{"symlink out", "/escape", nil, 403, "", ""},
		{"directory", "/sub", nil, 404, "", ""},
		{"missing", "/nope", nil, 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, url+tt.path, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %.80q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && body != tt.body {
				t.Fatalf("body %.80q, want %.80q", body, tt.body)
			}
			if tt.ctype != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) {
				t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			// Every multipart reply must start with a CRLF: the stock zsync client needs it.
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/") {
				if !strings.HasPrefix(body, "\r\n--") {
					t.Fatalf("multipart body starts %.20q, want CRLF then the boundary", body)
				}
				if resp.ContentLength != int64(len(body)) {
					t.Fatalf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
				}
			}
		})
	}
	// A changed file gets a new ETag.
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(filepath.Join(dir, "pkg.tar"), []byte(content+"more"), 0o644)
	resp, _ = get(t, url+"/pkg.tar", nil)
	if resp.Header.Get("ETag") == etag {
		t.Fatal("ETag did not change with the file")
	}
}

func TestAutoMake(t *testing.T) {
	dir, url := newServer(t, Options{AutoMake: true, Trackers: []string{""}})
	data := make([]byte, 300000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(dir, "pkg.bin"), data, 0o644)
	resp, body := get(t, url+"/pkg.bin.torrent", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	tor, err := manifest.ParseTorrent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got := tor.MetaInfo.UrlList; len(got) != 1 || got[0] != url+"/pkg.bin" {
		t.Fatalf("url-list %q, want %s/pkg.bin", got, url)
	}
	if tor.MetaInfo.Announce != url+"/announce" {
		t.Fatalf("announce %q", tor.MetaInfo.Announce)
	}
	resp, body = get(t, url+"/pkg.bin.zsync", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "zsync: 0.6.2\n") {
		t.Fatalf("status %d, body %.40q", resp.StatusCode, body)
	}
	// No manifest for something that is not there.
	if resp, _ := get(t, url+"/absent.torrent", nil); resp.StatusCode != 404 {
		t.Fatalf("status %d for a manifest of a missing package", resp.StatusCode)
	}
}
