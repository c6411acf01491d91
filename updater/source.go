package updater

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkgsync/pkgsync/httprange"
)

// Size caps for the small files pkgsync loads by URL or path: a .torrent of a 100 GB package with
// 16 MiB pieces is ~130 KB, a .zsync of it at 4 KiB blocks is under 200 MB.
const (
	maxTorrentBytes = 64 << 20
	maxZsyncBytes   = 512 << 20
)

// location is a file given as a local path or an http(s) URL; relative references resolve
// against it.
type location struct {
	raw string
	url *url.URL // nil for a local path
	bad error    // why a reference could not be resolved; reading it fails with this
}

func parseLocation(s string) location {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return location{raw: s, url: u}
	}
	return location{raw: s}
}

func (l location) String() string { return l.raw }

// resolve returns ref relative to l: a URL ref stays as it is, a relative ref is joined to l's URL
// or l's folder. A file fetched from the web names files on the web only: against a URL, a ref
// that does not resolve to an http(s) URL with a host (a bad escape, file://, a URL with no host)
// gives a location that fails to read, never a local path.
func (l location) resolve(ref string) location {
	if r := parseLocation(ref); r.url != nil {
		return r
	}
	if l.url != nil {
		u, err := l.url.Parse(ref)
		if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			return location{raw: u.String(), url: u}
		}
		if err == nil {
			err = fmt.Errorf("it resolves to %q, not an http(s) URL with a host", u.Redacted())
		}
		return location{raw: ref, bad: fmt.Errorf("the reference %q in %s: %w", ref, l.raw, err)}
	}
	if filepath.IsAbs(ref) {
		return location{raw: ref}
	}
	return location{raw: filepath.Join(filepath.Dir(l.raw), filepath.FromSlash(ref))}
}

func (l location) read(ctx context.Context, c *http.Client, h http.Header, max int64) ([]byte, error) {
	if l.bad != nil {
		return nil, l.bad
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

// isZsync tells a .zsync from a .torrent by content: a control file starts with "zsync:", a
// torrent with a bencoded dictionary.
func isZsync(data []byte) bool { return bytes.HasPrefix(data, []byte("zsync:")) }

// sibling returns the name of the .zsync beside a .torrent when the torrent does not say.
func siblingZsync(torrent string) string {
	return strings.TrimSuffix(torrent, ".torrent") + ".zsync"
}
