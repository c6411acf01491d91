package httprange

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/nginxtest"
)

// TestNginx fetches scattered ranges from the stock nginx, then changes the file under it.
func TestNginx(t *testing.T) {
	root := t.TempDir()
	const size = 3 << 20
	data := randomData(size, 30)
	path := filepath.Join(root, "pkg.deb")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	base := nginxtest.Start(t, root)

	f := New(base+"/pkg.deb", fast(Options{MaxRangesPerRequest: 8}))
	ranges := append(scattered(60, size, 40000, 31), Range{Off: 0, Len: 1}, Range{Off: size - 1, Len: 1}, Range{Off: 1 << 20, Len: 1 << 20})
	w := newRecWriter(size)
	if err := f.Fetch(context.Background(), ranges, w); err != nil {
		t.Fatal(err)
	}
	w.check(t, data, ranges)
	if f.Length() != size || !strongETag(f.Validator()) {
		t.Errorf("pinned length %d, validator %q; want %d and nginx's strong ETag", f.Length(), f.Validator(), size)
	}
	if st := f.Stats(); st.Requests > int64(len(ranges)+7)/8 {
		t.Errorf("%d requests for %d ranges at 8 per request", st.Requests, len(ranges))
	}

	// The file changes: nginx answers If-Range with a 200 and the fetch must stop.
	if err := os.WriteFile(path, randomData(size, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime.Add(time.Minute), mtime.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	w2 := newRecWriter(size)
	err := f.Fetch(context.Background(), []Range{{Off: 100, Len: 1000}, {Off: size / 2, Len: 1000}}, w2)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("after the file changed: error %v, want ErrChanged", err)
	}
	if len(w2.coverage()) != 0 {
		t.Errorf("bytes of the new version were written: %v", w2.coverage())
	}
}
