package origin

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const fuzzSecret = "SECRET outside the folder"

// fuzzServer serves a folder with a package, a subfolder and links that lead out of it, next to
// a folder of secrets.
func fuzzServer(f *testing.F) (*Server, []byte) {
	top := f.TempDir()
	dir, outside := filepath.Join(top, "pkgs"), filepath.Join(top, "outside")
	content := make([]byte, 5000)
	for i := range content {
		content[i] = byte('a' + i%26)
	}
	for _, d := range []string{dir, outside, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for name, data := range map[string][]byte{
		filepath.Join(dir, "pkg.tar"):     content,
		filepath.Join(dir, "sub", "x"):    []byte("x"),
		filepath.Join(dir, ".hidden"):     []byte(fuzzSecret),
		filepath.Join(outside, "secret"):  []byte(fuzzSecret),
		filepath.Join(outside, "pkg.tar"): []byte(fuzzSecret),
	} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"inlink": "pkg.tar", "escape": filepath.Join(outside, "secret"),
		"relescape": "../outside/secret", "escdir": outside, "sub/up": "../pkg.tar",
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
			f.Fatal(err)
		}
	}
	srv, err := New(dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	return srv, content
}

// FuzzServePath sends arbitrary request-targets, parsed as net/http parses them off the wire:
// the reply is never a file outside the folder or a hidden one, and a 200 is a file inside.
func FuzzServePath(f *testing.F) {
	srv, content := fuzzServer(f)
	for _, s := range []string{
		"/pkg.tar", "/inlink", "/sub/up", "/sub/../pkg.tar", "/../outside/secret", "/%2e%2e/outside/secret",
		"/..%2foutside%2fsecret", "/escape", "/relescape", "/escdir/secret", "/.hidden", "//etc/passwd",
		"http://o/../outside/secret", "/sub/%00", "*", "/%252e%252e/outside",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		for _, method := range []string{"GET", "HEAD"} {
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: o\r\n\r\n")))
			if err != nil {
				return // net/http answers 400 before any handler
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			if bytes.Contains(body, []byte(fuzzSecret)) {
				t.Fatalf("%s %q: status %d with a file outside the folder or hidden", method, target, rec.Code)
			}
			switch rec.Code {
			case 200:
				if method == "GET" && !bytes.Equal(body, content) && string(body) != "x" {
					t.Fatalf("%s %q: 200 with %.40q, not a file of the folder", method, target, body)
				}
			case 400, 403, 404, 405:
			default:
				t.Fatalf("%s %q: status %d", method, target, rec.Code)
			}
		}
	})
}

// FuzzServeRange sends arbitrary Range and If-Range headers for a package: every 206 carries
// exactly the bytes its Content-Range names (in each part of a multipart reply too), a 200 the
// whole file, a 416 the size, and Content-Length always matches the body.
func FuzzServeRange(f *testing.F) {
	srv, content := fuzzServer(f)
	size := int64(len(content))
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("HEAD", "/pkg.tar", nil))
	etag := rec.Header().Get("ETag")
	for _, s := range [][2]string{
		{"bytes=0-99", ""}, {"bytes=-10", etag}, {"bytes=4990-", `"old"`}, {"bytes=0-0,10-20,4999-", ""},
		{"bytes=5000-", ""}, {"bytes=0-1,1-2", "W/" + etag}, {"bytes=-0", ""}, {"bytes=1-0", ""},
		{"bytes=0-99999999999999999999", ""}, {"items=0-1", ""}, {"bytes=0-1,-5000", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rng, ifRange string) {
		req := httptest.NewRequest("GET", "/pkg.tar", nil)
		req.Header.Set("Range", rng)
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if cl := rec.Header().Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
			t.Fatalf("Range %q: Content-Length %s, body %d bytes", rng, cl, len(body))
		}
		switch rec.Code {
		case 200:
			if !bytes.Equal(body, content) {
				t.Fatalf("Range %q: 200 with %d bytes, not the file", rng, len(body))
			}
		case 416:
			// "bytes */size" when the ranges miss the file, nothing when they are malformed.
			if got := rec.Header().Get("Content-Range"); got != "" && got != fmt.Sprintf("bytes */%d", size) {
				t.Fatalf("Range %q: 416 with Content-Range %q", rng, got)
			}
		case 206:
			ct := rec.Header().Get("Content-Type")
			mt, params, _ := mime.ParseMediaType(ct)
			if mt != "multipart/byteranges" {
				checkPart(t, rng, rec.Header().Get("Content-Range"), body, content)
				return
			}
			if !bytes.HasPrefix(body, []byte("\r\n--")) {
				t.Fatalf("Range %q: multipart body starts %.10q, want CRLF and the boundary (the stock zsync client needs it)", rng, body)
			}
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			parts := 0
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Range %q: multipart: %v", rng, err)
				}
				b, err := io.ReadAll(p)
				if err != nil {
					t.Fatalf("Range %q: part %d: %v", rng, parts, err)
				}
				checkPart(t, rng, p.Header.Get("Content-Range"), b, content)
				parts++
			}
			if parts < 2 {
				t.Fatalf("Range %q: a multipart reply of %d parts", rng, parts)
			}
		default:
			t.Fatalf("Range %q, If-Range %q: status %d", rng, ifRange, rec.Code)
		}
	})
}

// checkPart checks that b is what Content-Range cr names of content.
func checkPart(t *testing.T, rng, cr string, b, content []byte) {
	t.Helper()
	var first, last, size int64
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &size); err != nil {
		t.Fatalf("Range %q: Content-Range %q: %v", rng, cr, err)
	}
	if size != int64(len(content)) || first < 0 || last < first || last >= size {
		t.Fatalf("Range %q: Content-Range %q for a file of %d bytes", rng, cr, len(content))
	}
	if !bytes.Equal(b, content[first:last+1]) {
		t.Fatalf("Range %q: Content-Range %q with %d other bytes", rng, cr, len(b))
	}
}
