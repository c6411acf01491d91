package httprange

import (
	"context"
	"net/http"
	"net/url"
	"sync"
)

// redirect is where a Fetcher's URL last redirected to, for instance an object store's signed URL
// that is valid for minutes. Later requests go there directly, which saves the redirecting
// server a request per range batch and the client a round trip; when the signature expires, the
// URL itself is asked again and redirects afresh.
type redirect struct {
	mu     sync.Mutex
	url    string      // "" when the URL itself is asked
	header http.Header // the headers Go's client sent there: Authorization is dropped for another host
}

func (r *redirect) get() (string, http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.url, r.header
}

func (r *redirect) set(u string, h http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.url, r.header = u, h
}

// drop forgets u, unless another request has already put a newer URL in its place.
func (r *redirect) drop(u string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.url == u {
		r.url, r.header = "", nil
	}
}

// expiredStatus reports whether a redirected URL's status may mean that its signature expired
// or was revoked: object stores answer 403 (S3), 400 (GCS) or 401, and 404 or 410 for a
// link that is gone. None of these is worth keeping the URL for.
func expiredStatus(s int) bool {
	switch s {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusGone:
		return true
	}
	return false
}

// send sends one GET for the file with the headers that set adds (Range, If-Range; nil adds
// none). It goes to the URL a previous reply redirected to, when there is one, and to the
// Fetcher's URL otherwise. A redirected URL that answers with an expiredStatus is forgotten and
// the Fetcher's URL asked again at once, so that an expired signed URL costs one request and
// no retry; one that fails otherwise (no reply, 5xx) is forgotten too, so that the retry asks
// the Fetcher's URL. A reply carrying the file after redirects is remembered for the next
// requests.
func (f *Fetcher) send(ctx context.Context, span Range, set func(http.Header)) (*http.Response, error) {
	if target, h := f.redir.get(); target != "" {
		resp, err := f.sendTo(ctx, span, target, h, set)
		switch {
		case err == nil && !expiredStatus(resp.StatusCode):
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
				f.remember(target, resp)
			} else {
				f.redir.drop(target) // a retry asks the URL itself, which may lead elsewhere
			}
			return resp, err
		case err != nil:
			f.redir.drop(target)
			return resp, err
		}
		closeBody(resp.Body)
		f.redir.drop(target)
	}
	resp, err := f.sendTo(ctx, span, f.url, f.opts.Header, set)
	if err == nil {
		f.remember(f.url, resp)
	}
	return resp, err
}

// sendTo sends one GET to rawURL with the headers h and what set adds.
func (f *Fetcher) sendTo(ctx context.Context, span Range, rawURL string, h http.Header, set func(http.Header)) (*http.Response, error) {
	where := f.safeURL
	if rawURL != f.url {
		where += " (redirected to " + bare(rawURL) + ")"
	}
	req, err := newRequest(ctx, rawURL, h)
	if err != nil {
		return nil, &Error{URL: where, Range: span, Err: err}
	}
	if set != nil {
		set(req.Header)
	}
	f.requests.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, doError(ctx, where, span, err)
	}
	return resp, nil
}

// remember records where a reply to a request sent to asked came from, when redirects led
// elsewhere and the reply carries the file (200 or 206); a reply from the Fetcher's URL itself
// ends any redirect remembered.
func (f *Fetcher) remember(asked string, resp *http.Response) {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent || resp.Request == nil {
		return
	}
	final := resp.Request.URL.String()
	switch {
	case final == f.url:
		f.redir.drop(asked)
	case final != asked:
		h := resp.Request.Header.Clone()
		for _, k := range []string{"Range", "If-Range", "Referer"} {
			h.Del(k)
		}
		f.redir.set(final, h)
	}
}

// where names the URL of a reply in errors: the Fetcher's URL, and the one redirects led to.
func (f *Fetcher) where(resp *http.Response) string {
	if resp.Request == nil || resp.Request.URL.String() == f.url {
		return f.safeURL
	}
	return f.safeURL + " (redirected to " + bare(resp.Request.URL.String()) + ")"
}

// bare is rawURL without user information, query and fragment: a signed URL's signature stays
// out of error messages and logs.
func bare(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
}
