package origin

import (
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkgsync/pkgsync/catalog"
)

// TestIndex checks /index.json: the folder's LINE-VERSION packages with their .torrent (made on
// the first request), size and SHA-1; other files left out; a conditional request for an
// unchanged folder answered 304 without a body, and a new version changing the ETag.
func TestIndex(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"app-1.0.tar": []byte("version one of app"),
		"app-1.1.tar": []byte("version one point one of app"),
		"db-2.img":    make([]byte, 5000),
		"README":      []byte("not a package"),
		"notes.json":  []byte("{}"),
		// What travels beside packages is never listed as one: a part file of make --part, a
		// signature, an update's part file and its lock.
		"db-2.img.0-of-2.mkpart": []byte("pkgsync-mkpart 1\n"),
		"app-1.1.tar.sig":        []byte("sig"),
		"app-1.2.tar.part":       []byte("half"),
		"app-1.2.tar.lock":       nil,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := New(dir, Options{AutoMake: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()

	get := func(etag string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/index.json", nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get("")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /index.json: %s", resp.Status)
	}
	ix, err := catalog.Read(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]catalog.Package{}
	for _, p := range ix.Packages {
		got[p.Name] = p
	}
	if len(got) != 3 {
		t.Fatalf("index lists %v, want the three packages", ix.Packages)
	}
	for _, name := range []string{"app-1.0.tar", "app-1.1.tar", "db-2.img"} {
		p := got[name]
		sum := sha1.Sum(files[name])
		if p.Size != int64(len(files[name])) || p.SHA1 != hex.EncodeToString(sum[:]) || p.Torrent != name+".torrent" {
			t.Errorf("%s: %+v", name, p)
		}
		if _, err := os.Stat(filepath.Join(dir, name+".torrent")); err != nil {
			t.Errorf("%s: no .torrent made: %v", name, err)
		}
	}
	if p := got["app-1.1.tar"]; p.Line != "app" || p.Version != "1.1" {
		t.Errorf("app-1.1.tar: line %q version %q", p.Line, p.Version)
	}

	etag := resp.Header.Get("ETag")
	if again := get(etag); again.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional GET of an unchanged index: %s, want 304", again.Status)
	}
	before := srv.Stats().Files["/index.json"].BodyBytes
	get(etag)
	if after := srv.Stats().Files["/index.json"].BodyBytes; after != before {
		t.Errorf("a 304 sent %d body bytes", after-before)
	}

	// A new version: a new index, a new ETag.
	if err := os.WriteFile(filepath.Join(dir, "app-1.2.tar"), []byte("app 1.2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp := get(etag); resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag {
		t.Fatalf("after a new version: %s, ETag %s (was %s)", resp.Status, resp.Header.Get("ETag"), etag)
	}

	// The producer's own index.json wins.
	own := []byte(`{"packages": []}`)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), own, 0o644); err != nil {
		t.Fatal(err)
	}
	ix, err = catalog.Read(get("").Body)
	if err != nil || len(ix.Packages) != 0 {
		t.Fatalf("with the producer's index.json: %v, %v", ix, err)
	}
}
