package origin

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/http/httptest"

	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/store"
	"github.com/pkgsync/pkgsync/store/webhdfstest"
)

// newStoreServer fronts the folder /pkgs of a WebHDFS test server.
func newStoreServer(t *testing.T, hdfs *webhdfstest.Server, opt Options) (*Server, string, string) {
	t.Helper()
	st, key, err := store.Open(t.Context(), hdfs.URL("/pkgs"), store.Options{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	srv, err := NewStore(st, key, opt, cache)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return srv, ts.URL, cache
}

// TestServeStoreRanges checks that a store-backed server answers like the folder one: ranges,
// multi-range, If-Range against its strong ETag, 404 for a missing or hidden name, and that a
// range costs the store only its bytes.
func TestServeStoreRanges(t *testing.T) {
	data := versions.Random(5, 300_000)
	hdfs := webhdfstest.New(webhdfstest.Options{})
	defer hdfs.Close()
	hdfs.Put("/pkgs/pkg.tar", data, time.Now())
	hdfs.Put("/pkgs/.hidden", []byte("secret"), time.Now())
	_, url, _ := newStoreServer(t, hdfs, Options{})

	resp, body := get(t, url+"/pkg.tar", nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || body != string(data) || etag == "" || strings.HasPrefix(etag, "W/") {
		t.Fatalf("status %d, %d bytes, ETag %q", resp.StatusCode, len(body), etag)
	}
	before, _ := hdfs.DataBytes()
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
		want   string
	}{
		{"range", map[string]string{"Range": "bytes=1000-1999"}, 206, string(data[1000:2000])},
		{"suffix", map[string]string{"Range": "bytes=-10"}, 206, string(data[len(data)-10:])},
		{"open end", map[string]string{"Range": "bytes=299990-"}, 206, string(data[299990:])},
		{"if-range matches", map[string]string{"Range": "bytes=5-9", "If-Range": etag}, 206, string(data[5:10])},
		{"if-range stale", map[string]string{"Range": "bytes=5-9", "If-Range": `"old"`}, 200, string(data)},
		{"past the end", map[string]string{"Range": "bytes=400000-"}, 416, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, url+"/pkg.tar", tc.hdr)
			if resp.StatusCode != tc.status || (tc.want != "" && body != tc.want) {
				t.Fatalf("status %d, %d bytes; want %d, %d bytes", resp.StatusCode, len(body), tc.status, len(tc.want))
			}
		})
	}
	after, _ := hdfs.DataBytes()
	// Each request reads what it sends from the store: 1000+10+10+5 bytes and one whole file.
	if sent := after - before; sent != 1025+int64(len(data)) {
		t.Errorf("the store sent %d bytes for these requests, want %d", sent, 1025+len(data))
	}
	t.Run("multi-range", func(t *testing.T) {
		resp, body := get(t, url+"/pkg.tar", map[string]string{"Range": "bytes=0-9,100000-100099,-5"})
		mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode != 206 || mt != "multipart/byteranges" {
			t.Fatalf("status %d, type %q", resp.StatusCode, mt)
		}
		mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
		var got []byte
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(p)
			got = append(got, b...)
		}
		want := append(append(append([]byte(nil), data[:10]...), data[100000:100100]...), data[len(data)-5:]...)
		if !bytes.Equal(got, want) {
			t.Fatalf("parts hold %d bytes, not the ranges", len(got))
		}
	})
	for _, name := range []string{"/missing.tar", "/.hidden", "/"} {
		if resp, _ := get(t, url+name, nil); resp.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", name, resp.StatusCode)
		}
	}
}

// TestServeStoreMakes checks that manifests are made on first request: put into the store when
// it takes them, kept in the local cache when it is read-only, and made again for a changed
// package; and that they describe the package (a fetch through httprange verifies).
func TestServeStoreMakes(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		name := map[bool]string{false: "writable", true: "read-only"}[readOnly]
		t.Run(name, func(t *testing.T) {
			data := versions.Random(6, 700_000)
			hdfs := webhdfstest.New(webhdfstest.Options{ReadOnly: readOnly})
			defer hdfs.Close()
			hdfs.Put("/pkgs/pkg.tar", data, time.Now().Add(-time.Hour))
			_, url, cache := newStoreServer(t, hdfs, Options{AutoMake: true})
			resp, tb := get(t, url+"/pkg.tar.torrent", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, tb)
			}
			tor, err := manifest.ParseTorrent([]byte(tb))
			if err != nil {
				t.Fatal(err)
			}
			if tor.Info.Length != int64(len(data)) || len(tor.MetaInfo.UrlList) != 1 || tor.MetaInfo.UrlList[0] != url+"/pkg.tar" {
				t.Fatalf("torrent: length %d, url-list %v", tor.Info.Length, tor.MetaInfo.UrlList)
			}
			_, inStore := hdfs.Get("/pkgs/pkg.tar.torrent")
			cached, _ := filepath.Glob(filepath.Join(cache, "*", "pkg.tar.torrent"))
			if inStore == readOnly || (len(cached) == 1) != readOnly {
				t.Fatalf("torrent in the store %v, in the cache %v", inStore, cached)
			}
			if resp, zb := get(t, url+"/pkg.tar.zsync", nil); resp.StatusCode != 200 || !strings.HasPrefix(zb, "zsync:") {
				t.Fatalf(".zsync: status %d", resp.StatusCode)
			}
			// A new version: new manifests.
			v2 := versions.Edit(data, 9, 3, 100, 1000)
			hdfs.Put("/pkgs/pkg.tar", v2, time.Now().Add(time.Second)) // a later upload than the manifests
			_, tb2 := get(t, url+"/pkg.tar.torrent", nil)
			tor2, err := manifest.ParseTorrent([]byte(tb2))
			if err != nil || tor2.InfoHash == tor.InfoHash {
				t.Fatalf("after a new version: %v, same info hash %v", err, tor2 != nil && tor2.InfoHash == tor.InfoHash)
			}
			f := httprange.New(url+"/pkg.tar", httprange.Options{})
			got := make(byteSlice, len(v2))
			if err := f.Fetch(context.Background(), []httprange.Range{{Off: 0, Len: int64(len(v2))}}, got); err != nil || !bytes.Equal(got, v2) {
				t.Fatalf("fetch: %v", err)
			}
		})
	}
}

type byteSlice []byte

func (b byteSlice) WriteAt(p []byte, off int64) (int, error) { return copy(b[off:], p), nil }

// TestRangeEnds checks the parse that bounds the store's reads.
func TestRangeEnds(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want map[int64]int64
	}{
		{"bytes=0-9", map[int64]int64{0: 10}},
		{"bytes=0-9, 20-, -5", map[int64]int64{0: 10, 20: 100, 95: 100}},
		{"bytes=90-200", map[int64]int64{90: 100}},
		{"bytes=-500", map[int64]int64{0: 100}},
		{"bytes=200-", map[int64]int64{}},
		{"bytes=x-y,5-1", map[int64]int64{}},
		{"items=0-1", nil},
	} {
		got := rangeEnds(tc.h, 100)
		if len(got) != len(tc.want) {
			t.Errorf("%q: %v, want %v", tc.h, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%q: %v, want %v", tc.h, got, tc.want)
			}
		}
	}
}

// FuzzRangeEnds feeds rangeEnds any Range header: every bound it gives lies within the object.
func FuzzRangeEnds(f *testing.F) {
	for _, h := range []string{"bytes=0-9", "bytes=0-9, 20-, -5", "bytes=-0", "bytes=9223372036854775807-", "bytes=5-1", "bytes= 1 - 2 ,,-"} {
		f.Add(h, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		for start, end := range rangeEnds(h, size) {
			if start < 0 || end <= start || end > size {
				t.Fatalf("%q of %d bytes: bound %d-%d", h, size, start, end)
			}
		}
	})
}
