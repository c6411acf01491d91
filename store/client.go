package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/pkgsync/pkgsync/httprange"
)

// ErrNoList means the store cannot enumerate its objects (a plain web server has no listing
// that every server agrees on).
var ErrNoList = errors.New("the store cannot list its objects")

// HTTPConfig is HTTP set-up that a caller already has: update's client carries its TLS trust,
// client certificate and stall detection, and its --header lines. A store that talks HTTP uses
// them as they are instead of building its own from Options.
type HTTPConfig struct {
	Client *http.Client // nil: built from Options (TLS files, timeout)
	Header http.Header  // sent with every request (for example Authorization)
}

// httpOpener is an Opener that also takes an HTTPConfig.
type httpOpener func(ctx context.Context, u *url.URL, opt Options, hc HTTPConfig) (Store, string, error)

var (
	httpMu      sync.Mutex
	httpOpeners = map[string]httpOpener{}
)

// registerHTTP registers o for scheme, both for Open and for OpenHTTP.
func registerHTTP(scheme string, o httpOpener) {
	httpMu.Lock()
	httpOpeners[scheme] = o
	httpMu.Unlock()
	Register(scheme, func(ctx context.Context, u *url.URL, opt Options) (Store, string, error) {
		return o(ctx, u, opt, HTTPConfig{})
	})
}

// OpenHTTP is Open for a caller with an HTTP set-up of its own: the stores that talk HTTP
// directly (http, https, webhdfs, swebhdfs) use hc; the others open as Open opens them.
func OpenHTTP(ctx context.Context, raw string, opt Options, hc HTTPConfig) (Store, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("store: %w", err)
	}
	httpMu.Lock()
	o, ok := httpOpeners[strings.ToLower(u.Scheme)]
	httpMu.Unlock()
	if !ok {
		return Open(ctx, raw, opt)
	}
	return o(ctx, u, opt, hc)
}

// clientFor returns hc's client, or one built from the TLS files and timeout of opt.
func clientFor(opt Options, hc HTTPConfig) (*http.Client, error) {
	if hc.Client != nil {
		return hc.Client, nil
	}
	conf, err := httprange.TLSFiles{CAFile: opt.CAFile, CertFile: opt.ClientCert, KeyFile: opt.ClientKey}.Config()
	if err != nil {
		return nil, err
	}
	return httprange.NewTLSClient(conf, opt.Timeout), nil
}

// keyOf turns a URL path into a store key: no leading slash, unescaped.
func keyOf(u *url.URL) string {
	return strings.TrimPrefix(u.Path, "/")
}

// escapeKey escapes each segment of a key for a URL path.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// Redact returns raw for messages: a URL's password and its delegation token (WebHDFS) hidden.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return raw
	}
	if q := u.Query(); q.Has("delegation") {
		q.Set("delegation", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
