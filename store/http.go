package store

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pkgsync/pkgsync/httprange"
)

// An HTTP(S) store is a web server that answers Range requests (nginx, Apache, pkgsync serve).
// Keys are URL paths below the host; the URL's query, when it has one (a token), goes with
// every request. The identity of an object is its strong ETag, else its Last-Modified date with
// its length; a server that sends neither gives no identity, and reads are then not pinned to a
// version. Reads carry If-Range, so a server whose object changed answers 200, which fails the
// read with ErrChanged. Redirects are followed (Go's client: up to 10). List fails with
// ErrNoList (web servers publish no listing that all agree on; pkgsync serve's /index.json is a
// package catalog, not a listing) and Put with ErrReadOnly.
type httpStore struct {
	base   url.URL // scheme://host, with the query to send
	client *http.Client
	header http.Header
}

func init() {
	registerHTTP("http", openHTTP)
	registerHTTP("https", openHTTP)
}

func openHTTP(_ context.Context, u *url.URL, opt Options, hc HTTPConfig) (Store, string, error) {
	if u.Host == "" {
		return nil, "", fmt.Errorf("store: %s: URL has no host", u.Redacted())
	}
	c, err := clientFor(opt, hc)
	if err != nil {
		return nil, "", fmt.Errorf("store: %s: %w", u.Redacted(), err)
	}
	base := url.URL{Scheme: strings.ToLower(u.Scheme), User: u.User, Host: u.Host, RawQuery: u.RawQuery}
	return &httpStore{base: base, client: c, header: hc.Header}, keyOf(u), nil
}

func (h *httpStore) String() string {
	u := h.base
	u.RawQuery = ""
	return u.Redacted()
}

// objectURL is the URL of key.
func (h *httpStore) objectURL(key string) string {
	u := h.base
	u.Path = "/" + key
	u.RawPath = "/" + escapeKey(key)
	return u.String()
}

func (h *httpStore) where(key string) string {
	u := h.base
	u.Path, u.RawQuery = "/"+key, ""
	return u.Redacted()
}

func (h *httpStore) request(ctx context.Context, method, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.objectURL(key), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", h.where(key), err)
	}
	for k, vs := range h.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// Stat asks with HEAD.
func (h *httpStore) Stat(ctx context.Context, key string) (Info, error) {
	req, err := h.request(ctx, http.MethodHead, key)
	if err != nil {
		return Info{}, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return Info{}, fmt.Errorf("HEAD %s: %w", h.where(key), err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return Info{}, fmt.Errorf("HEAD %s: HTTP %d: %w", h.where(key), resp.StatusCode, ErrNotExist)
	case resp.StatusCode != http.StatusOK:
		return Info{}, fmt.Errorf("HEAD %s: HTTP %d %s", h.where(key), resp.StatusCode, http.StatusText(resp.StatusCode))
	case resp.ContentLength < 0:
		return Info{}, fmt.Errorf("HEAD %s: no Content-Length", h.where(key))
	}
	info := Info{Key: key, Size: resp.ContentLength}
	info.ModTime, _ = http.ParseTime(resp.Header.Get("Last-Modified"))
	info.ETag = httpIdentity(resp.Header, resp.ContentLength)
	return info, nil
}

// httpIdentity is the strong ETag of a reply, else "LM:" with its Last-Modified date and
// length, else "".
func httpIdentity(hd http.Header, size int64) string {
	if et := hd.Get("ETag"); len(et) >= 2 && et[0] == '"' && et[len(et)-1] == '"' {
		return et
	}
	if lm := hd.Get("Last-Modified"); lm != "" {
		if _, err := http.ParseTime(lm); err == nil {
			return "LM:" + lm + ";" + strconv.FormatInt(size, 10)
		}
	}
	return ""
}

// ifRange is the If-Range value for an identity.
func ifRange(etag string) string {
	if v, ok := strings.CutPrefix(etag, "LM:"); ok {
		lm, _, _ := strings.Cut(v, ";")
		return lm
	}
	return etag
}

// ReadRange sends one Range request, with If-Range when etag is set.
func (h *httpStore) ReadRange(ctx context.Context, key string, off, n int64, etag string) (io.ReadCloser, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("%s: invalid range: offset %d, length %d", h.where(key), off, n)
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	req, err := h.request(ctx, http.MethodGet, key)
	if err != nil {
		return nil, err
	}
	span := httprange.Range{Off: off, Len: n}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	if etag != "" {
		req.Header.Set("If-Range", ifRange(etag))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s %s: %w", h.where(key), span, err)
	}
	fail := func(err error) (io.ReadCloser, error) {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s %s: %w", h.where(key), span, err)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if etag != "" {
			return fail(fmt.Errorf("%w: 200 OK (whole object) to If-Range %s", ErrChanged, ifRange(etag)))
		}
		return fail(fmt.Errorf("the server ignores Range (200 OK)"))
	case http.StatusNotFound, http.StatusGone:
		return fail(fmt.Errorf("HTTP %d: %w", resp.StatusCode, ErrNotExist))
	default:
		return fail(fmt.Errorf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	cr, err := httprange.ParseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return fail(err)
	}
	if got := cr.Range(); got != span {
		return fail(fmt.Errorf("Content-Range %q is not the range asked for", resp.Header.Get("Content-Range")))
	}
	if etag != "" && !strings.HasPrefix(etag, "LM:") && resp.Header.Get("ETag") != etag {
		return fail(fmt.Errorf("%w: ETag %s, expected %s", ErrChanged, resp.Header.Get("ETag"), etag))
	}
	return &sizedBody{r: resp.Body, left: n, what: "GET " + h.where(key) + " " + span.String()}, nil
}

// List is not offered by web servers.
func (h *httpStore) List(_ context.Context, prefix string) ([]Info, error) {
	return nil, fmt.Errorf("%s: listing %q: %w", h, prefix, ErrNoList)
}

// Put is refused: pkgsync does not write to web servers.
func (h *httpStore) Put(_ context.Context, key string, _ io.Reader, _ int64) error {
	return fmt.Errorf("%s: %w", h.where(key), ErrReadOnly)
}

// NewFetcher uses httprange, which batches ranges into multi-range requests (RangeFetcherMaker).
func (h *httpStore) NewFetcher(key string, opt FetchOptions) Fetcher {
	hopt := httprange.Options{Client: h.client, Header: h.header, Length: opt.Length, Parallel: opt.Parallel}
	if opt.ETag != "" {
		hopt.Validator = ifRange(opt.ETag)
	}
	return httprange.New(h.objectURL(key), hopt)
}
