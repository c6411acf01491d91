package store

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkgsync/pkgsync/manifest"
)

// DownloadThenMake (exported for the store_test benchmarks) is the guide's first two steps for a package in a store: copy the object to
// a local file, then make from the copy; make from the store skips the copy (and the third
// step, seeding the copy, which make from a store needs no more than pkgsync needs a seeder).
func DownloadThenMake(b *testing.B, s Store, key, dir string) {
	b.Helper()
	info, err := s.Stat(b.Context(), key)
	if err != nil {
		b.Fatal(err)
	}
	rc, err := s.ReadRange(b.Context(), key, 0, info.Size, info.ETag)
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	local := filepath.Join(dir, "copy.bin")
	f, err := os.Create(local)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	if _, err := manifest.Make(b.Context(), local, manifest.MakeOptions{}); err != nil {
		b.Fatal(err)
	}
}
