package updater

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/store"
)

// Size caps for the small files pkgsync loads by URL or path: a .torrent of a 100 GB package with
// 16 MiB pieces is ~130 KB, a .zsync of it at 4 KiB blocks is under 200 MB.
const (
	maxTorrentBytes = 64 << 20
	maxZsyncBytes   = 512 << 20
)

// location is a file given as a local path, an http(s) URL or the URL of another store
// (webhdfs://, s3://: a scheme package store registers); relative references resolve against it.
type location struct {
	raw   string
	url   *url.URL // nil for a local path
	store bool     // url names a store other than a web server
	bad   error    // why a reference could not be resolved; reading it fails with this
}

func parseLocation(s string) location {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "":
		return location{raw: s}
	case u.Scheme == "http" || u.Scheme == "https":
		return location{raw: s, url: u}
	case store.IsURL(s):
		return location{raw: s, url: u, store: true}
	}
	return location{raw: s}
}

// String names the file for messages, without a password or token its URL may carry.
func (l location) String() string {
	if l.url != nil {
		return store.Redact(l.raw)
	}
	return l.raw
}

// resolve returns ref relative to l: a URL ref stays as it is, a relative ref is joined to l's URL
// or l's folder. A fetched file names files on the web, or in the same store as itself, only:
// against a URL, a ref that resolves to neither an http(s) URL with a host nor a URL of l's own
// store (same scheme and host: the namenode, the bucket) gives a location that fails to read,
// never a local path and never another store. The node reads stores with its own credentials;
// a file from the web, or from one bucket, must not point them at a place of its choosing.
// A local file is the user's own and may name any store.
func (l location) resolve(ref string) location {
	if r := parseLocation(ref); r.url != nil {
		if r.store && l.url != nil && !l.sameStore(r.url) {
			return location{raw: ref, bad: fmt.Errorf("the reference %q in %s: %w", ref, l, errOtherStore)}
		}
		return r
	}
	if l.url != nil {
		u, err := l.url.Parse(ref)
		if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			return location{raw: u.String(), url: u}
		}
		if err == nil && u.Host != "" && l.store && l.sameStore(u) {
			return location{raw: u.String(), url: u, store: true}
		}
		if err == nil {
			err = fmt.Errorf("it resolves to %q, not an http(s) URL with a host or a file of the same store", u.Redacted())
		}
		return location{raw: ref, bad: fmt.Errorf("the reference %q in %s: %w", ref, l, err)}
	}
	if filepath.IsAbs(ref) {
		return location{raw: ref}
	}
	return location{raw: filepath.Join(filepath.Dir(l.raw), filepath.FromSlash(ref))}
}

// errOtherStore refuses a reference from a fetched file to a store other than the file's own.
var errOtherStore = errors.New("a fetched file may name files on the web or in its own store only")

// sameStore reports whether u is in l's store: the same scheme and host.
func (l location) sameStore(u *url.URL) bool {
	return l.store && strings.EqualFold(l.url.Scheme, u.Scheme) && strings.EqualFold(l.url.Host, u.Host)
}

func (l location) read(ctx context.Context, c *http.Client, h http.Header, so store.Options, max int64) ([]byte, error) {
	if l.bad != nil {
		return nil, l.bad
	}
	if l.store {
		return readStore(ctx, l.raw, c, h, so, max)
	}
	if l.url != nil {
		return httprange.Get(ctx, c, l.raw, h, max)
	}
	f, err := os.Open(l.raw)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", l.raw)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes is too large (limit %d)", l.raw, st.Size(), max)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("%s: %w", l.raw, err)
	}
	return b.Bytes(), nil
}

// readStore reads a whole small object of a store, pinned to one version.
func readStore(ctx context.Context, raw string, c *http.Client, h http.Header, so store.Options, max int64) ([]byte, error) {
	data, _, _, err := readStoreIfNoneMatch(ctx, c, raw, h, so, max, "")
	return data, err
}

// readStoreIfNoneMatch is httprange.GetIfNoneMatch for a store: when the object's identity is
// etag, it reads nothing and reports notModified.
func readStoreIfNoneMatch(ctx context.Context, c *http.Client, raw string, h http.Header, so store.Options, max int64, etag string) (data []byte, tag string, notModified bool, err error) {
	s, key, err := store.OpenHTTP(ctx, raw, so, store.HTTPConfig{Client: c, Header: h})
	if err != nil {
		return nil, "", false, err
	}
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, "", false, err
	}
	if etag != "" && info.ETag == etag {
		return nil, etag, true, nil
	}
	data, err = readObject(ctx, s, raw, key, info, max)
	return data, info.ETag, false, err
}

// readObject reads the object info describes, of at most max bytes.
func readObject(ctx context.Context, s store.Store, raw, key string, info store.Info, max int64) ([]byte, error) {
	if info.Size > max {
		return nil, fmt.Errorf("%s: %d bytes is too large (limit %d)", store.Redact(raw), info.Size, max)
	}
	rc, err := s.ReadRange(ctx, key, 0, info.Size, info.ETag)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, info.Size)
	if _, err := io.ReadFull(rc, data); err != nil {
		return nil, fmt.Errorf("%s: %w", store.Redact(raw), err)
	}
	return data, nil
}

// originFetcher fetches the missing ranges of the package from its origin: an
// httprange.Fetcher for an http(s) URL, a store.Fetcher for other stores.
type originFetcher interface {
	Fetch(ctx context.Context, ranges []httprange.Range, w io.WriterAt) error
	Stats() httprange.Stats
}

// newFetcher returns the origin fetcher for raw, whose object has length bytes (0: unknown).
// A store URL that does not open gives a fetcher that fails with the reason when asked for bytes,
// as a bad reference fails when read.
func (j *job) newFetcher(ctx context.Context, raw string, length int64) originFetcher {
	if loc := parseLocation(raw); !loc.store {
		return httprange.New(raw, httprange.Options{
			Client: j.opt.HTTP, Header: j.opt.Header, Length: length, Parallel: j.opt.Parallel,
		})
	}
	s, key, err := store.OpenHTTP(ctx, raw, j.opt.Store, store.HTTPConfig{Client: j.opt.HTTP, Header: j.opt.Header})
	if err != nil {
		return failedFetcher{err}
	}
	return store.NewFetcher(s, key, store.FetchOptions{Length: length, Parallel: j.opt.Parallel})
}

// failedFetcher is an origin that could not be opened.
type failedFetcher struct{ err error }

func (f failedFetcher) Fetch(context.Context, []httprange.Range, io.WriterAt) error { return f.err }
func (f failedFetcher) Stats() httprange.Stats                                      { return httprange.Stats{} }

// isZsync tells a .zsync from a .torrent by content: a control file starts with "zsync:", a
// torrent with a bencoded dictionary. It is the one place that decides whether SOURCE is a
// .zsync: a name proves nothing (a URL may end in a query, a file may be misnamed).
func isZsync(data []byte) bool { return bytes.HasPrefix(data, []byte("zsync:")) }

// sibling returns the name of the .zsync beside a .torrent when the torrent does not say.
func siblingZsync(torrent string) string {
	return strings.TrimSuffix(torrent, ".torrent") + ".zsync"
}
