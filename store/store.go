// Package store is the one contract pkgsync has with the places packages live: an HTTP(S) web
// server, an S3-compatible object store, or HDFS over WebHDFS/HttpFS. `update` reads a package's
// .torrent, .zsync and missing ranges through it, `serve` fronts it for nodes that hold no store
// credentials, and `make` hashes a package from it without a local copy. The contract is small on
// purpose: the size of an object, an identity that changes when the object changes, ranged reads
// (several in flight), and, for stores that allow it, listing and writing small objects (the
// metadata that serve makes on first request).
//
// A store is opened from a URL by its scheme; each implementation registers its schemes.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Info describes one object.
type Info struct {
	Key     string
	Size    int64
	ETag    string // the object's identity: it changes when the object's bytes change
	ModTime time.Time
}

// Store is one place that holds packages. Keys are slash-separated paths relative to the
// URL the store was opened with. Every method is safe for concurrent use.
type Store interface {
	// Stat returns the object's size and identity; a missing object gives an error that
	// matches ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)
	// ReadRange returns the n bytes at off of the object. A non-empty etag makes the read fail
	// with an error matching ErrChanged if the object no longer has that identity. The reader
	// yields exactly n bytes or an error.
	ReadRange(ctx context.Context, key string, off, n int64, etag string) (io.ReadCloser, error)
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Put writes a whole object of size bytes. A store that cannot be written returns an
	// error matching ErrReadOnly.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// String names the store for messages, without credentials.
	String() string
}

// Errors the implementations wrap, so callers can tell the cases apart with errors.Is.
var (
	ErrNotExist = errors.New("no such object")
	ErrChanged  = errors.New("the object changed")
	ErrReadOnly = errors.New("the store is read-only")
)

// Options configure how a store is reached. Zero values take the defaults of each
// implementation (credentials from the environment and the standard files).
type Options struct {
	// HTTP settings, used by every implementation that talks HTTP underneath (all of them).
	CAFile, ClientCert, ClientKey string
	Timeout                       time.Duration
	// User is the HDFS user (WebHDFS user.name) when no delegation token is set.
	User string
	// DelegationToken is a WebHDFS delegation token (the delegation= parameter).
	DelegationToken string
}

// Opener opens the store a URL names and returns the key of the object (or prefix) it points at.
type Opener func(ctx context.Context, u *url.URL, opt Options) (s Store, key string, err error)

var (
	mu      sync.Mutex
	openers = map[string]Opener{}
)

// Register makes Open handle URLs with the given scheme. Implementations call it from init.
func Register(scheme string, o Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("store: scheme registered twice: " + scheme)
	}
	openers[scheme] = o
}

// Schemes lists the registered URL schemes, sorted.
func Schemes() []string {
	mu.Lock()
	defer mu.Unlock()
	var s []string
	for k := range openers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// IsURL reports whether s is a URL with a registered scheme (as opposed to a local path).
func IsURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return false
	}
	mu.Lock()
	defer mu.Unlock()
	_, ok := openers[strings.ToLower(u.Scheme)]
	return ok
}

// Open opens the store raw names and returns the key within it.
func Open(ctx context.Context, raw string, opt Options) (Store, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", fmt.Errorf("store: %w", err)
	}
	mu.Lock()
	o, ok := openers[strings.ToLower(u.Scheme)]
	mu.Unlock()
	if !ok {
		return nil, "", fmt.Errorf("store: %s: unknown scheme %q (known: %s)", u.Redacted(), u.Scheme, strings.Join(Schemes(), ", "))
	}
	return o(ctx, u, opt)
}
