package origin

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pkgsync/pkgsync/manifest"
)

// countingConn counts the bytes a client reads from its connection: what the server sent it,
// headers included, which the server's body counters leave out. Once a reply's body is read,
// the count holds all of it, as no more is on the way.
type countingConn struct {
	net.Conn
	got *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.got.Add(int64(n))
	return n, err
}

// countingClient returns an HTTP client whose connections count into got.
func countingClient(got *atomic.Int64) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, got: got}, nil
	}}}
}

// A .torrent is sent whole unless the client asks for its stub in Accept; the stub has an ETag
// of its own, If-None-Match on it gets a 304 of well under 1 KiB on the wire, and both
// replies say Vary: Accept.
func TestServeStub(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg.tar")
	if err := os.WriteFile(pkg, []byte(strings.Repeat("pkgsync stub ", 300_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := manifest.Make(t.Context(), pkg, manifest.MakeOptions{URL: "http://o.invalid/pkg.tar", Trackers: []string{"http://o.invalid/announce"}, PieceSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(res.Torrent)
	wantStub, err := manifest.MakeStub(full)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	var sent atomic.Int64
	client := countingClient(&sent)

	resp, _ := get(t, ts.URL+"/pkg.tar.torrent", map[string]string{"Accept": manifest.StubType})
	stubTag := resp.Header.Get("ETag")
	for _, tc := range []struct {
		name, path, accept, ifNoneMatch string
		status                          int
		body                            string
		contentType                     string
	}{
		{"no Accept", "/pkg.tar.torrent", "", "", 200, string(full), "application/x-bittorrent"},
		{"any type", "/pkg.tar.torrent", "*/*", "", 200, string(full), "application/x-bittorrent"},
		{"stub", "/pkg.tar.torrent", manifest.StubType, "", 200, string(wantStub), manifest.StubType},
		{"stub among others", "/pkg.tar.torrent", "application/x-bittorrent;q=0.5, APPLICATION/X-PKGSYNC-TORRENT-STUB", "", 200, string(wantStub), manifest.StubType},
		{"stub refused", "/pkg.tar.torrent", manifest.StubType + ";q=0", "", 200, string(full), "application/x-bittorrent"},
		{"stub, current", "/pkg.tar.torrent", manifest.StubType, stubTag, 304, "", ""},
		{"stub, the .torrent's tag", "/pkg.tar.torrent", manifest.StubType, `"0-0"`, 200, string(wantStub), manifest.StubType},
		{"not a .torrent", "/pkg.tar.zsync", manifest.StubType, "", 200, "", "application/x-zsync"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.accept != "" {
				hdr["Accept"] = tc.accept
			}
			if tc.ifNoneMatch != "" {
				hdr["If-None-Match"] = tc.ifNoneMatch
			}
			req, _ := http.NewRequest("GET", ts.URL+tc.path, nil)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			before := sent.Load()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			body := string(b)
			onWire := sent.Load() - before
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.body != "" && body != tc.body {
				t.Fatalf("body of %d bytes, not the %d expected", len(body), len(tc.body))
			}
			if tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.contentType)
			}
			if strings.HasSuffix(tc.path, ".torrent") && resp.Header.Get("Vary") != "Accept" {
				t.Fatalf("Vary %q, want Accept", resp.Header.Get("Vary"))
			}
			if tc.status == 304 && (body != "" || onWire > 1024) {
				t.Fatalf("304: %d body bytes, %d bytes on the wire (want none, <= 1 KiB)", len(body), onWire)
			}
			if tc.contentType == manifest.StubType && onWire > 1024 {
				t.Fatalf("the stub cost %d bytes on the wire, want <= 1 KiB", onWire)
			}
			t.Logf("%d bytes on the wire", onWire)
		})
	}
	fullTag, _ := get(t, ts.URL+"/pkg.tar.torrent", nil)
	if stubTag == "" || stubTag == fullTag.Header.Get("ETag") {
		t.Fatalf("the stub's ETag %q is not its own (the .torrent's: %q)", stubTag, fullTag.Header.Get("ETag"))
	}
}

// FuzzWantsStub feeds arbitrary Accept values to the check that picks the stub: it must never
// panic, and it says yes only when the stub's type is named.
func FuzzWantsStub(f *testing.F) {
	for _, s := range []string{manifest.StubType, "*/*", manifest.StubType + ";q=0", manifest.StubType + ";q=0.001, */*",
		"text/html, application/x-pkgsync-torrent-stub ; q=1", `application/x-pkgsync-torrent-stub;x="a,b"`, ";;,", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		if wantsStub([]string{accept}) && !strings.Contains(strings.ToLower(accept), manifest.StubType) {
			t.Fatalf("%q taken as asking for the stub", accept)
		}
	})
}
