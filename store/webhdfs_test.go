package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/store"
	"github.com/pkgsync/pkgsync/store/webhdfstest"
)

func openHDFS(t *testing.T, srv *webhdfstest.Server, p string, opt store.Options) (store.Store, string) {
	t.Helper()
	s, key, err := store.Open(t.Context(), srv.URL(p), opt)
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

func readAll(ctx context.Context, s store.Store, key string, off, n int64, etag string) ([]byte, error) {
	rc, err := s.ReadRange(ctx, key, off, n, etag)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestWebHDFSRead checks Stat and ranged reads (through the namenode's redirect) against the
// test server, and that errors name the file and map to the store's sentinels.
func TestWebHDFSRead(t *testing.T) {
	data := versions.Random(1, 3<<20+17)
	mtime := time.UnixMilli(1_700_000_000_123)
	srv := webhdfstest.New(webhdfstest.Options{BlockSize: 1 << 20, User: "pkg", Token: "tok"})
	defer srv.Close()
	srv.Put("/data/pkgs/v2.bin", data, mtime)

	s, key := openHDFS(t, srv, "/data/pkgs/v2.bin", store.Options{User: "pkg"})
	if key != "data/pkgs/v2.bin" {
		t.Fatalf("key %q", key)
	}
	info, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || !info.ModTime.Equal(mtime) || info.ETag == "" {
		t.Fatalf("Stat: %+v", info)
	}
	if bs, err := s.(store.BlockSizer).BlockSize(t.Context(), key); err != nil || bs != 1<<20 {
		t.Fatalf("BlockSize = %d, %v", bs, err)
	}
	tests := []struct {
		name    string
		key     string
		off, n  int64
		etag    string
		wantErr error  // nil: the bytes must match
		msg     string // a substring of the error
	}{
		{"start", key, 0, 100, info.ETag, nil, ""},
		{"middle, across a block", key, 1<<20 - 10, 1000, info.ETag, nil, ""},
		{"to the end", key, int64(len(data)) - 5, 5, info.ETag, nil, ""},
		{"no identity", key, 77, 1 << 20, "", nil, ""},
		{"empty", key, 10, 0, info.ETag, nil, ""},
		{"other identity", key, 0, 10, "1-2-3", store.ErrChanged, "data/pkgs/v2.bin"},
		{"missing file", "data/pkgs/v3.bin", 0, 10, "", store.ErrNotExist, "FileNotFoundException"},
		{"past the end", key, int64(len(data)) - 5, 10, "", nil, "past the end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t.Context(), s, tc.key, tc.off, tc.n, tc.etag)
			if tc.wantErr == nil && tc.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data[tc.off:tc.off+tc.n]) {
					t.Fatalf("got %d bytes, not the file's", len(got))
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, %d bytes", len(got))
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// TestWebHDFSAuth checks that user.name and delegation reach the namenode, from Options, the
// URL and $HADOOP_USER_NAME, and that a refusal says so.
func TestWebHDFSAuth(t *testing.T) {
	srv := webhdfstest.New(webhdfstest.Options{User: "pkg", Token: "tok-1"})
	defer srv.Close()
	srv.Put("/a", []byte("hello"), time.Now())
	tests := []struct {
		name, query, env string
		opt              store.Options
		ok               bool
	}{
		{"options user", "", "", store.Options{User: "pkg"}, true},
		{"env user", "", "pkg", store.Options{}, true},
		{"url user", "?user.name=pkg", "", store.Options{User: "other"}, true},
		{"options token", "", "", store.Options{DelegationToken: "tok-1", User: "other"}, true},
		{"url token", "?delegation=tok-1", "", store.Options{}, true},
		{"wrong user", "", "", store.Options{User: "other"}, false},
		{"nobody", "", "", store.Options{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HADOOP_USER_NAME", tc.env)
			s, key, err := store.Open(t.Context(), srv.URL("/a")+tc.query, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t.Context(), s, key, 0, 5, "")
			if tc.ok && (err != nil || string(got) != "hello") {
				t.Fatalf("%q, %v", got, err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "SecurityException")) {
				t.Fatalf("want a SecurityException, got %q, %v", got, err)
			}
		})
	}
}

// TestWebHDFSListPut checks LISTSTATUS (recursive, by prefix) and CREATE's two steps, and that
// a read-only namespace refuses with ErrReadOnly.
func TestWebHDFSListPut(t *testing.T) {
	srv := webhdfstest.New(webhdfstest.Options{})
	defer srv.Close()
	now := time.Now()
	for _, p := range []string{"/r/a.bin", "/r/b.bin", "/r/sub/c.bin", "/r2/d.bin", "/x.bin"} {
		srv.Put(p, []byte(p), now)
	}
	s, _ := openHDFS(t, srv, "/", store.Options{User: "u"})
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"r/", []string{"r/a.bin", "r/b.bin", "r/sub/c.bin"}},
		{"r", []string{"r/a.bin", "r/b.bin", "r/sub/c.bin", "r2/d.bin"}},
		{"r/a", []string{"r/a.bin"}},
		{"", []string{"r/a.bin", "r/b.bin", "r/sub/c.bin", "r2/d.bin", "x.bin"}},
		{"nothing/", nil},
	} {
		got, err := s.List(t.Context(), tc.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		var keys []string
		for _, i := range got {
			keys = append(keys, i.Key)
		}
		if strings.Join(keys, ",") != strings.Join(tc.want, ",") {
			t.Errorf("List(%q) = %v, want %v", tc.prefix, keys, tc.want)
		}
	}
	for _, body := range []string{"first", "second, replacing it"} {
		if err := s.Put(t.Context(), "r/new.torrent", strings.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		if got, ok := srv.Get("/r/new.torrent"); !ok || string(got) != body {
			t.Fatalf("after Put: %q, %v", got, ok)
		}
	}
	if got, _ := s.List(t.Context(), "r/new"); len(got) != 1 {
		t.Fatalf("the temporary file stayed: %+v", got)
	}

	ro := webhdfstest.New(webhdfstest.Options{ReadOnly: true})
	defer ro.Close()
	rs, key := openHDFS(t, ro, "/p.torrent", store.Options{User: "u"})
	err := rs.Put(t.Context(), key, strings.NewReader("x"), 1)
	if !errors.Is(err, store.ErrReadOnly) || !strings.Contains(err.Error(), "AccessControlException") {
		t.Fatalf("Put on a read-only namespace: %v", err)
	}
}

// FuzzWebHDFSReply feeds arbitrary bytes to the parsers of WebHDFS replies: they must not
// panic, and what they accept must be sane.
func FuzzWebHDFSReply(f *testing.F) {
	f.Add([]byte(`{"FileStatus":{"length":24930,"modificationTime":1320173277227,"blockSize":134217728,"fileId":16387,"pathSuffix":"","type":"FILE"}}`))
	f.Add([]byte(`{"FileStatuses":{"FileStatus":[{"pathSuffix":"a.patch","type":"FILE","length":24930},{"pathSuffix":"bar","type":"DIRECTORY"}]}}`))
	f.Add([]byte(`{"RemoteException":{"exception":"FileNotFoundException","javaClassName":"java.io.FileNotFoundException","message":"File does not exist: /foo/a.patch"}}`))
	f.Add([]byte(`{"FileStatus":{"length":-1}}`))
	f.Add([]byte(`{"FileStatuses":{"FileStatus":[{"pathSuffix":"../x"}]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if st, err := store.ParseFileStatus(data); err == nil && (st.Length < 0 || st.BlockSize < 0) {
			t.Fatalf("accepted %+v", st)
		}
		if sts, err := store.ParseFileStatuses(data); err == nil {
			for _, st := range sts {
				if st.Length < 0 || st.PathSuffix == "" || st.PathSuffix == ".." || strings.Contains(st.PathSuffix, "/") {
					t.Fatalf("accepted %+v", st)
				}
			}
		}
		if re, ok := store.ParseRemoteException(data); ok && re.Exception == "" && re.JavaClassName == "" {
			t.Fatalf("accepted an empty RemoteException %+v", re)
		}
	})
}

// TestRedact checks that messages show no password or delegation token.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"webhdfs://nn:9870/p/x?delegation=SECRET&user.name=u": "webhdfs://nn:9870/p/x?delegation=xxxxx&user.name=u",
		"https://u:pw@o/p/x":   "https://u:xxxxx@o/p/x",
		"/local/path":          "/local/path",
		"http://o/p/x.torrent": "http://o/p/x.torrent",
	} {
		if got := store.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSWebHDFS reads and writes over https (swebhdfs://) with the caller's client, which trusts
// the test servers' certificate; without it the certificate is refused.
func TestSWebHDFS(t *testing.T) {
	srv := webhdfstest.New(webhdfstest.Options{TLS: true})
	defer srv.Close()
	srv.Put("/p/x", []byte("over tls"), time.Now())
	hc := store.HTTPConfig{Client: srv.NameNode.Client()}
	s, key, err := store.OpenHTTP(t.Context(), srv.URL("/p/x"), store.Options{User: "u"}, hc)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t.Context(), s, key, 0, 8, ""); err != nil || string(got) != "over tls" {
		t.Fatalf("%q, %v", got, err)
	}
	if err := s.Put(t.Context(), "p/y", strings.NewReader("put"), 3); err != nil {
		t.Fatal(err)
	}
	plain, key, err := store.Open(t.Context(), srv.URL("/p/x"), store.Options{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Stat(t.Context(), key); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Stat with the system roots: %v", err)
	}
}

// TestWebHDFSDatanodeFails checks that an OPEN the datanode fails is asked again (through the
// namenode, which may pick another datanode), and that a datanode that keeps failing gives an
// error naming the file and the exception.
func TestWebHDFSDatanodeFails(t *testing.T) {
	data := versions.Random(21, 10_000)
	srv := webhdfstest.New(webhdfstest.Options{})
	defer srv.Close()
	srv.Put("/p/x", data, time.Now())
	s, key := openHDFS(t, srv, "/p/x", store.Options{User: "u"})
	for _, tc := range []struct {
		fails int
		ok    bool
	}{{0, true}, {2, true}, {3, false}} {
		srv.FailOpens(tc.fails)
		got, err := readAll(t.Context(), s, key, 10, 100, "")
		if tc.ok && (err != nil || !bytes.Equal(got, data[10:110])) {
			t.Fatalf("%d failures: %v", tc.fails, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "IOException") || !strings.Contains(err.Error(), "p/x")) {
			t.Fatalf("%d failures: %v", tc.fails, err)
		}
	}
}
