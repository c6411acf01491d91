package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/seaweedtest"
	"github.com/pkgsync/pkgsync/manifest"
)

// s3Fixture is a SeaweedFS gateway with one bucket, the AWS environment pointing at it, and the
// bucket opened as a store.
type s3Fixture struct {
	srv    *seaweedtest.Server
	bucket string
	st     *s3Store
}

func newS3Fixture(t *testing.T) *s3Fixture {
	t.Helper()
	srv := seaweedtest.Start(t)
	srv.Setenv(t)
	f := &s3Fixture{srv: srv, bucket: "pkgs"}
	srv.CreateBucket(t, f.bucket)
	st, key, err := Open(context.Background(), "s3://"+f.bucket+"/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		t.Fatalf("Open(s3://%s/) key = %q, want empty", f.bucket, key)
	}
	f.st = st.(*s3Store)
	return f
}

func (f *s3Fixture) put(t *testing.T, key string, data []byte) Info {
	t.Helper()
	ctx := context.Background()
	if err := f.st.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	info, err := f.st.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func readAll(t *testing.T, rc io.ReadCloser, err error) ([]byte, error) {
	t.Helper()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestS3 runs the store contract against a real SeaweedFS: one server for all subtests, since
// starting it takes seconds.
func TestS3(t *testing.T) {
	f := newS3Fixture(t)
	t.Run("Stat", f.testStat)
	t.Run("ReadRange", f.testReadRange)
	t.Run("Changed", f.testChanged)
	t.Run("List", f.testList)
	t.Run("Put", f.testPut)
	t.Run("Concurrent", f.testConcurrent)
	t.Run("Errors", f.testErrors)
}

func (f *s3Fixture) testStat(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(1, 300_000)
	info := f.put(t, "dir/pkg.bin", data)
	if info.Key != "dir/pkg.bin" || info.Size != int64(len(data)) || info.ETag == "" || info.ModTime.IsZero() {
		t.Errorf("Stat = %+v, want key dir/pkg.bin, size %d, an ETag and a time", info, len(data))
	}
	if d := time.Since(info.ModTime); d < -time.Hour || d > time.Hour {
		t.Errorf("ModTime %v is not about now", info.ModTime)
	}
	again := f.put(t, "dir/pkg.bin", data)
	if again.ETag != info.ETag {
		t.Errorf("same bytes, new ETag: %q then %q", info.ETag, again.ETag)
	}
	data[0] ^= 1
	changed := f.put(t, "dir/pkg.bin", data)
	if changed.ETag == info.ETag {
		t.Errorf("changed bytes kept ETag %q", info.ETag)
	}
	for _, key := range []string{"dir/missing.bin", "dir", "dir/pkg.bin/x"} {
		_, err := f.st.Stat(ctx, key)
		if !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "s3://pkgs/"+key) {
			t.Errorf("Stat(%s) = %v, want ErrNotExist naming s3://pkgs/%s", key, err, key)
		}
	}
}

func (f *s3Fixture) testReadRange(t *testing.T) {
	data := randomBytes(2, 1<<20+17)
	info := f.put(t, "range.bin", data)
	size := int64(len(data))
	tests := []struct {
		name    string
		off, n  int64
		etag    string
		wantErr error // nil: the bytes; errAny: some error that is neither sentinel
	}{
		{"head", 0, 100, "", nil},
		{"middle", 123_457, 65_536, "", nil},
		{"last byte", size - 1, 1, "", nil},
		{"whole", 0, size, "", nil},
		{"whole if match", 0, size, info.ETag, nil},
		{"empty", 5, 0, "", nil},
		{"empty if match", 5, 0, info.ETag, nil},
		{"past the end", size - 10, 20, "", errAny},
		{"after the end", size + 10, 20, "", errAny},
		{"negative offset", -1, 20, "", errAny},
		{"changed", 0, 10, `"0123456789abcdef0123456789abcdef"`, ErrChanged},
		{"empty changed", 0, 0, `"0123456789abcdef0123456789abcdef"`, ErrChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := f.st.ReadRange(context.Background(), "range.bin", tt.off, tt.n, tt.etag)
			got, err := readAll(t, rc, err)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("ReadRange(%d, %d): %v", tt.off, tt.n, err)
			case tt.wantErr == nil && !bytes.Equal(got, data[tt.off:tt.off+tt.n]):
				t.Fatalf("ReadRange(%d, %d): %d bytes, not the object's", tt.off, tt.n, len(got))
			case tt.wantErr == errAny && (err == nil || errors.Is(err, ErrNotExist) || errors.Is(err, ErrChanged)):
				t.Fatalf("ReadRange(%d, %d) = %v, want an error that is neither ErrNotExist nor ErrChanged", tt.off, tt.n, err)
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("ReadRange(%d, %d) = %v, want %v", tt.off, tt.n, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "s3://pkgs/range.bin") {
				t.Errorf("error %q does not name s3://pkgs/range.bin", err)
			}
		})
	}
}

var errAny = errors.New("any error")

// testChanged reads with the identity Stat gave, replaces the object, and expects the next read
// with that identity to fail with ErrChanged while a read with the new one succeeds.
func (f *s3Fixture) testChanged(t *testing.T) {
	ctx := context.Background()
	old := f.put(t, "changing.bin", randomBytes(3, 4096))
	rc, err := f.st.ReadRange(ctx, "changing.bin", 0, 4096, old.ETag)
	if _, err := readAll(t, rc, err); err != nil {
		t.Fatalf("read with the current ETag: %v", err)
	}
	newData := randomBytes(4, 4096)
	cur := f.put(t, "changing.bin", newData)
	_, err = f.st.ReadRange(ctx, "changing.bin", 0, 4096, old.ETag)
	if !errors.Is(err, ErrChanged) || errors.Is(err, ErrNotExist) {
		t.Fatalf("read with the old ETag after a replace = %v, want ErrChanged", err)
	}
	if !strings.Contains(err.Error(), "412") {
		t.Errorf("ErrChanged message %q does not give the service's status", err)
	}
	rc, err = f.st.ReadRange(ctx, "changing.bin", 4000, 96, cur.ETag)
	got, err := readAll(t, rc, err)
	if err != nil || !bytes.Equal(got, newData[4000:]) {
		t.Fatalf("read with the new ETag: %v (%d bytes)", err, len(got))
	}
	_, err = f.st.ReadRange(ctx, "gone.bin", 0, 10, cur.ETag)
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("read of a missing object = %v, want ErrNotExist", err)
	}
}

func (f *s3Fixture) testList(t *testing.T) {
	ctx := context.Background()
	keys := []string{"l/a", "l/b/1", "l/b/2", "l/c", "l/c0", "l/d.torrent", "lx/e"}
	sizes := map[string]int64{}
	for i, k := range keys {
		data := randomBytes(uint64(10+i), 100+i)
		f.put(t, k, data)
		sizes[k] = int64(len(data))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"l/", keys[:6]},
		{"l/b/", keys[1:3]},
		{"l/c", keys[3:5]},
		{"l", keys},
		{"none/", nil},
	}
	for _, pageSize := range []int32{0, 2} {
		f.st.pageSize = pageSize
		for _, tt := range tests {
			infos, err := f.st.List(ctx, tt.prefix)
			if err != nil {
				t.Fatalf("List(%q) pages of %d: %v", tt.prefix, pageSize, err)
			}
			var got []string
			for _, in := range infos {
				got = append(got, in.Key)
				if in.Size != sizes[in.Key] || in.ETag == "" {
					t.Errorf("List(%q): %+v, want size %d and an ETag", tt.prefix, in, sizes[in.Key])
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("List(%q) pages of %d = %v, want %v", tt.prefix, pageSize, got, tt.want)
			}
		}
	}
	f.st.pageSize = 0
}

// onlyReader hides every method but Read, so Put cannot seek.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (f *s3Fixture) testPut(t *testing.T) {
	big := randomBytes(5, s3PutMemoryLimit+12345)
	src := randomBytes(6, 5000)
	seeked := bytes.NewReader(src)
	if _, err := seeked.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		r       io.Reader
		size    int64
		want    []byte
		wantErr bool
	}{
		{"seekable", bytes.NewReader(big[:7000]), 7000, big[:7000], false},
		{"seekable not at its start", seeked, 3000, src[1000:4000], false},
		{"stream in memory", onlyReader{bytes.NewReader(big[:9000])}, 9000, big[:9000], false},
		{"stream through a file", onlyReader{bytes.NewReader(big)}, int64(len(big)), big, false},
		{"stream longer than size", onlyReader{bytes.NewReader(big[:9000])}, 100, big[:100], false},
		{"empty", bytes.NewReader(nil), 0, []byte{}, false},
		{"stream short", onlyReader{bytes.NewReader(big[:10])}, 100, nil, true},
		{"stream short through a file", onlyReader{bytes.NewReader(big[:s3PutMemoryLimit+1])}, int64(len(big)), nil, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("put/%d", i)
			err := f.st.Put(context.Background(), key, tt.r, tt.size)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "s3://pkgs/"+key) {
					t.Fatalf("Put = %v, want an error naming s3://pkgs/%s", err, key)
				}
				if _, err := f.st.Stat(context.Background(), key); !errors.Is(err, ErrNotExist) {
					t.Fatalf("a failed Put left an object: Stat = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rc, err := f.st.ReadRange(context.Background(), key, 0, int64(len(tt.want)), "")
			got, err := readAll(t, rc, err)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("read back: %v, %d bytes, want %d", err, len(got), len(tt.want))
			}
			if info, err := f.st.Stat(context.Background(), key); err != nil || info.Size != tt.size {
				t.Fatalf("Stat after Put = %+v, %v; want size %d", info, err, tt.size)
			}
		})
	}
}

// testConcurrent has many ranged reads in flight on one store, as make and serve do.
func (f *s3Fixture) testConcurrent(t *testing.T) {
	data := randomBytes(7, 4<<20)
	info := f.put(t, "parallel.bin", data)
	const piece = 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, len(data)/piece)
	for off := 0; off < len(data); off += piece {
		wg.Go(func() {
			rc, err := f.st.ReadRange(context.Background(), "parallel.bin", int64(off), piece, info.ETag)
			if err != nil {
				errs <- err
				return
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err == nil && !bytes.Equal(got, data[off:off+piece]) {
				err = fmt.Errorf("range at %d: wrong bytes", off)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (f *s3Fixture) testErrors(t *testing.T) {
	ctx := context.Background()
	f.put(t, "x.bin", []byte("x"))
	// A missing bucket: the object is missing, and the message says why.
	nb, _, err := Open(ctx, "s3://no-such-bucket/x.bin", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = nb.ReadRange(ctx, "x.bin", 0, 1, "")
	if !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("read from a missing bucket = %v, want ErrNotExist naming NoSuchBucket", err)
	}
	// Wrong credentials: refused, with the service's code, and no secret in the message.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-do-not-print")
	bad, _, err := Open(ctx, "s3://pkgs/x.bin", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Stat(ctx, "x.bin")
	if err == nil || errors.Is(err, ErrNotExist) || errors.Is(err, ErrChanged) {
		t.Fatalf("Stat with a wrong secret = %v, want a refusal", err)
	}
	_, err = bad.ReadRange(ctx, "x.bin", 0, 1, "")
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || strings.Contains(err.Error(), "wrong-secret") ||
		strings.Contains(err.Error(), seaweedtest.SecretKey) {
		t.Fatalf("GetObject with a wrong secret = %v, want an HTTP 403 without the secret", err)
	}
	t.Logf("a wrong secret reads as: %v", err)
}

// TestOpenS3 checks the URL forms and settings Open accepts before any request.
func TestOpenS3(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_PROFILE", "AWS_ENDPOINT_URL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	tests := []struct {
		url, pathStyle, endpoint string
		wantKey                  string
		wantPath                 bool
		wantErr                  string
	}{
		{url: "s3://b/k/e/y.bin", wantKey: "k/e/y.bin"},
		{url: "S3://b/prefix/", wantKey: "prefix/"},
		{url: "s3://b", wantKey: ""},
		{url: "s3://b/k", endpoint: "http://127.0.0.1:1", wantKey: "k", wantPath: true},
		{url: "s3://b/k", endpoint: "http://127.0.0.1:1", pathStyle: "false", wantKey: "k"},
		{url: "s3://b/k", pathStyle: "true", wantKey: "k", wantPath: true},
		{url: "s3://b/k", pathStyle: "sometimes", wantErr: "AWS_S3_USE_PATH_STYLE"},
		{url: "s3:///k", wantErr: "no bucket"},
		{url: "s3://user:secret@b/k", wantErr: "no user"},
		{url: "s3://b/k?versionId=1", wantErr: "no user, query"},
	}
	for _, tt := range tests {
		t.Run(tt.url+" "+tt.pathStyle+" "+tt.endpoint, func(t *testing.T) {
			t.Setenv(S3PathStyleEnv, tt.pathStyle)
			t.Setenv("AWS_ENDPOINT_URL_S3", tt.endpoint)
			st, key, err := Open(context.Background(), tt.url, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "secret") {
					t.Fatalf("Open(%s) = %v, want an error with %q and no secret", tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := st.(*s3Store)
			if key != tt.wantKey || s.bucket != "b" || s.String() != "s3://b" {
				t.Errorf("Open(%s) = %s key %q, want s3://b key %q", tt.url, s, key, tt.wantKey)
			}
			if got := s.client.Options().UsePathStyle; got != tt.wantPath {
				t.Errorf("path style %v, want %v", got, tt.wantPath)
			}
		})
	}
}

// BenchmarkMakeS3 compares Make from SeaweedFS's S3 gateway on loopback with make of a local
// copy of the same 64 MiB package (the goal: within 1.3x).
func BenchmarkMakeS3(b *testing.B) {
	const size = 64 << 20
	data := randomBytes(8, size)
	srv := seaweedtest.Start(b)
	srv.Setenv(b)
	srv.CreateBucket(b, "bench")
	st, key, err := Open(b.Context(), "s3://bench/pkg.bin", Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Put(b.Context(), key, bytes.NewReader(data), size); err != nil {
		b.Fatal(err)
	}
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
	b.Run("s3", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := Make(b.Context(), st, key, manifest.MakeOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("s3-read-only", func(b *testing.B) {
		// The floor of make from the store: the same reads in flight as Make, hashing nothing.
		info, err := st.Stat(b.Context(), key)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for b.Loop() {
			ra := NewReadAhead(NewReaderAt(b.Context(), st, info), info.Size, makeChunk, makeAhead)
			if _, err := io.Copy(io.Discard, ra); err != nil {
				b.Fatal(err)
			}
			ra.Close()
		}
	})
	b.Run("s3-download+make", func(b *testing.B) {
		b.SetBytes(size)
		dir := b.TempDir()
		for b.Loop() {
			DownloadThenMake(b, st, key, dir)
		}
	})
}

// TestOpenS3Options checks that the HTTP options reach the S3 client: a CA file that cannot be
// read fails Open, naming it, and a usable one gives a client of pkgsync's own.
func TestOpenS3Options(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	missing := filepath.Join(t.TempDir(), "no-ca.pem")
	if _, _, err := Open(context.Background(), "s3://b/k", Options{CAFile: missing}); err == nil || !strings.Contains(err.Error(), "no-ca.pem") {
		t.Fatalf("Open with a missing CA file = %v, want an error naming it", err)
	}
	st, _, err := Open(context.Background(), "s3://b/k", Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(*s3Store).client.Options().HTTPClient.(*http.Client); !ok {
		t.Fatalf("with a timeout, the S3 client uses %T, not pkgsync's *http.Client", st.(*s3Store).client.Options().HTTPClient)
	}
}
