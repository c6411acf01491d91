package httprange

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// sharedIdleConns is the idle-connection pool size per host of the shared client; Fetchers with a
// larger Parallel get a client of their own.
const sharedIdleConns = 32

var sharedClient = sync.OnceValue(func() *http.Client {
	return &http.Client{Transport: newTransport(nil, 0, sharedIdleConns)}
})

// clientFor returns the shared client, or a new one when parallel exceeds its idle pool.
func clientFor(parallel int) *http.Client {
	if parallel <= sharedIdleConns {
		return sharedClient()
	}
	return &http.Client{Transport: newTransport(nil, 0, parallel)}
}

// newTransport returns an HTTP/1.1 keep-alive transport that keeps idle connections per host and
// never asks for compression (ranges address the bytes of the file as stored).
func newTransport(tlsConf *tls.Config, timeout time.Duration, idle int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idle
	t.MaxIdleConns = max(t.MaxIdleConns, 4*idle)
	t.DisableCompression = true
	t.ForceAttemptHTTP2 = false
	var p http.Protocols
	p.SetHTTP1(true)
	t.Protocols = &p
	if tlsConf != nil {
		t.TLSClientConfig = tlsConf
	}
	if timeout > 0 {
		d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
		t.DialContext = d.DialContext
		t.TLSHandshakeTimeout = timeout
		t.ResponseHeaderTimeout = timeout
	}
	return t
}

// NewClient returns an HTTP/1.1 keep-alive client that also trusts the PEM certificates in caFile
// (added to the system pool; "" adds none). A timeout > 0 bounds connecting, the TLS handshake and
// the wait for response headers, but not the body: bound that with the request's context.
func NewClient(caFile string, timeout time.Duration) (*http.Client, error) {
	conf, err := TLSFiles{CAFile: caFile}.Config()
	if err != nil {
		return nil, err
	}
	return NewTLSClient(conf, timeout), nil
}

// Get fetches a whole small file (a .torrent, a .zsync) with a plain GET and returns its body. It
// fails with ErrTooLarge rather than read more than maxBytes (> 0), retries failures that may pass
// like Fetch does with the default Options, and sends h as extra headers. A nil c selects the
// shared client.
func Get(ctx context.Context, c *http.Client, rawURL string, h http.Header, maxBytes int64) ([]byte, error) {
	safe := redact(rawURL)
	if maxBytes <= 0 {
		return nil, &Error{URL: safe, Err: fmt.Errorf("maxBytes %d must be positive", maxBytes)}
	}
	if err := checkURL(rawURL); err != nil {
		return nil, &Error{URL: safe, Err: err}
	}
	if c == nil {
		c = sharedClient()
	}
	var data []byte
	err := retry(ctx, DefaultRetries, DefaultRetryDelay, func() error {
		var err error
		data, err = getOnce(ctx, c, rawURL, safe, h, maxBytes)
		return err
	})
	return data, err
}

func getOnce(ctx context.Context, c *http.Client, rawURL, safe string, h http.Header, maxBytes int64) ([]byte, error) {
	data, _, err := getOnceIf(ctx, c, rawURL, safe, h, maxBytes, "")
	return data, err
}

// getOnceIf is getOnce, conditional on etag when etag is not "": a 304 then comes back as no
// data and no error, with the response for its headers.
func getOnceIf(ctx context.Context, c *http.Client, rawURL, safe string, h http.Header, maxBytes int64, etag string) ([]byte, *http.Response, error) {
	req, err := newRequest(ctx, rawURL, h)
	if err != nil {
		return nil, nil, &Error{URL: safe, Err: err}
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, doError(ctx, safe, Range{}, err)
	}
	defer closeBody(resp.Body)
	if resp.StatusCode == http.StatusNotModified && etag != "" {
		return nil, resp, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, statusError(safe, Range{}, resp)
	}
	if resp.ContentLength > maxBytes {
		return nil, nil, &Error{URL: safe, Status: resp.StatusCode,
			Err: fmt.Errorf("%w: Content-Length %d above the limit of %d", ErrTooLarge, resp.ContentLength, maxBytes)}
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, nil, &Error{URL: safe, Status: resp.StatusCode, Err: fmt.Errorf("%w after %d bytes: %w", ErrShort, n, err), retry: true}
	}
	if n > maxBytes {
		return nil, nil, &Error{URL: safe, Status: resp.StatusCode, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)}
	}
	return buf.Bytes(), resp, nil
}

// GetIfNoneMatch is Get, conditional on etag (the ETag of an earlier answer; "" for none): when
// the server answers 304 Not Modified, notModified is true and data nil. tag is the answer's
// ETag ("" when it has none), for the next call.
func GetIfNoneMatch(ctx context.Context, c *http.Client, rawURL string, h http.Header, maxBytes int64, etag string) (data []byte, tag string, notModified bool, err error) {
	safe := redact(rawURL)
	if maxBytes <= 0 {
		return nil, "", false, &Error{URL: safe, Err: fmt.Errorf("maxBytes %d must be positive", maxBytes)}
	}
	if err := checkURL(rawURL); err != nil {
		return nil, "", false, &Error{URL: safe, Err: err}
	}
	if c == nil {
		c = sharedClient()
	}
	err = retry(ctx, DefaultRetries, DefaultRetryDelay, func() error {
		var resp *http.Response
		var err error
		data, resp, err = getOnceIf(ctx, c, rawURL, safe, h, maxBytes, etag)
		if resp != nil {
			tag = resp.Header.Get("ETag")
			notModified = resp.StatusCode == http.StatusNotModified
		}
		return err
	})
	if notModified && tag == "" {
		tag = etag // a 304 need not repeat the validator
	}
	return data, tag, notModified, err
}

// newRequest builds a GET with the extra headers; identity encoding keeps Go's transport from
// asking for gzip, which would change what byte offsets mean.
func newRequest(ctx context.Context, rawURL string, h http.Header) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range h {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// doError wraps an error from http.Client.Do; it may pass unless ctx is done.
func doError(ctx context.Context, safeURL string, span Range, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &Error{URL: safeURL, Range: span, Err: err, retry: ctx.Err() == nil && !certError(err)}
}

// certError reports whether err is a failed TLS certificate check, which another try cannot fix.
func certError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
	)
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie)
}

// statusError describes a reply whose status does not carry the file. 5xx, 408 and 429 may pass.
func statusError(safeURL string, span Range, resp *http.Response) *Error {
	s := resp.StatusCode
	var err error = ErrStatus
	if note := replyNote(resp); note != "" {
		err = fmt.Errorf("%w (the server says: %s)", ErrStatus, note)
	}
	return &Error{URL: safeURL, Range: span, Status: s, Err: err,
		retry: s >= 500 || s == http.StatusRequestTimeout || s == http.StatusTooManyRequests}
}

// maxDrain bounds how much of an unused body is read so that its connection can be reused.
const maxDrain = 256 << 10

func closeBody(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}

// closeBodyAfter closes the body of a reply that ended in err. After the destination refused
// bytes (a writeError: a swarm node cut its origin run because a peer claims or has the rest),
// the rest of the reply is unwanted: the connection is dropped at once, not drained for reuse,
// which would make the server send up to maxDrain bytes nobody writes.
func closeBodyAfter(body io.ReadCloser, err error) {
	if isWriteError(err) {
		_ = body.Close()
		return
	}
	closeBody(body)
}

// retryable reports whether err may pass on a second try.
func retryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.retry
}

// retry calls op until it succeeds, fails for good, or has failed retries+1 times, sleeping
// delay, 2*delay, ... (at most maxRetryDelay) between tries and stopping early when ctx is done.
func retry(ctx context.Context, retries int, delay time.Duration, op func() error) error {
	for failures := 0; ; failures++ {
		err := op()
		if err == nil || !retryable(err) || failures >= retries {
			return err
		}
		if werr := sleep(ctx, backoff(delay, failures)); werr != nil {
			return stopped(werr, err)
		}
	}
}

// stopped reports a retry loop ended by its context: errors.Is finds both the context's error
// and the failure that was about to be retried.
func stopped(ctxErr, last error) error {
	return fmt.Errorf("%w (while retrying after: %w)", ctxErr, last)
}

// backoff returns the delay before retry number failures+1.
func backoff(delay time.Duration, failures int) time.Duration {
	for ; failures > 0 && delay < maxRetryDelay; failures-- {
		delay *= 2
	}
	return min(delay, maxRetryDelay)
}

// sleep waits d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// checkURL accepts absolute http and https URLs.
func checkURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("unsupported URL scheme %q (want http or https)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("URL has no host")
	}
	return nil
}
