package store_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/store"
	"github.com/pkgsync/pkgsync/store/webhdfstest"
)

// TestMakeEqualsLocal checks that Make from WebHDFS writes the .torrent and .zsync that
// manifest.Make writes for a local copy with the same name and modification time, byte for
// byte, for sizes that do and do not end on a read-ahead chunk, with and without alignment.
func TestMakeEqualsLocal(t *testing.T) {
	mtime := time.UnixMilli(1_712_345_678_901)
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	tests := []struct {
		name string
		size int
		opt  manifest.MakeOptions
	}{
		{"small", 100_001, manifest.MakeOptions{}},
		{"chunks and a bit", 4*(4<<20) + 12345, manifest.MakeOptions{URL: "http://origin.example/p/pkg.bin", Trackers: []string{"http://t.example/announce"}}},
		{"aligned", 9 << 20, manifest.MakeOptions{Align: 1 << 20, PieceSize: 256 << 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := versions.Random(uint64(tc.size), tc.size)
			srv := webhdfstest.New(webhdfstest.Options{})
			defer srv.Close()
			srv.Put("/p/pkg.bin", data, mtime)
			dir := t.TempDir()
			local := filepath.Join(dir, "pkg.bin")
			if err := os.WriteFile(local, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(local, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			opt := tc.opt
			opt.Now = now
			want, err := manifest.Make(t.Context(), local, opt)
			if err != nil {
				t.Fatal(err)
			}
			s, key := openHDFS(t, srv, "/p/pkg.bin", store.Options{User: "u"})
			got, err := store.Make(t.Context(), s, key, opt)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				path string
				got  []byte
			}{{want.Torrent, got.Torrent}, {want.Zsync, got.Zsync}} {
				w, err := os.ReadFile(f.path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(w, f.got) {
					t.Errorf("%s: from the store %d bytes, locally %d, not the same", filepath.Base(f.path), len(f.got), len(w))
				}
			}
			r := got.Result
			r.Package, r.Torrent, r.Zsync = want.Package, want.Torrent, want.Zsync
			if r != *want {
				t.Errorf("result %+v, locally %+v", r, *want)
			}
		})
	}
}

// BenchmarkMake compares make from the WebHDFS test server on loopback with make of a local
// copy of the same 64 MiB package.
func BenchmarkMake(b *testing.B) {
	const size = 64 << 20
	data := versions.Random(7, size)
	srv := webhdfstest.New(webhdfstest.Options{})
	defer srv.Close()
	srv.Put("/p/pkg.bin", data, time.Now())
	local := filepath.Join(b.TempDir(), "pkg.bin")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("local", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := manifest.Make(b.Context(), local, manifest.MakeOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("webhdfs", func(b *testing.B) {
		s, key, err := store.Open(b.Context(), srv.URL("/p/pkg.bin"), store.Options{User: "u"})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for b.Loop() {
			if _, err := store.Make(b.Context(), s, key, manifest.MakeOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("webhdfs-download+make", func(b *testing.B) {
		s, key, err := store.Open(b.Context(), srv.URL("/p/pkg.bin"), store.Options{User: "u"})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		dir := b.TempDir()
		for b.Loop() {
			store.DownloadThenMake(b, s, key, dir)
		}
	})
}
