// Package httprange fetches byte ranges of one file from an origin HTTP/1.1 server (nginx, Go's
// http.FileServer, HDFS's HTTP gateway) with Range requests. It is the client side of what
// net/http's fs.go serves.
//
// pkgsync uses it for the bytes it could not get anywhere else: the ranges of a new package version
// that the zsync scan could not rebuild from the old one, whole BitTorrent pieces that no peer has,
// and small files (.torrent, .zsync) fetched by URL with Get.
//
// A Fetcher coalesces the requested ranges, sends up to MaxRangesPerRequest of them per request
// (Range: bytes=a-b,c-d) and runs up to Parallel requests at a time over keep-alive connections. It
// reads both single-part 206 replies (Content-Range) and multipart/byteranges replies, and it accepts
// parts that the server merged, reordered or left out: it writes the requested bytes that a part
// carries and asks again for whatever did not arrive.
//
// Every reply must be for the same version of the file. The first reply pins the version (a strong
// ETag or else Last-Modified, unless Options.Validator already names one) and the total length. Later
// requests carry If-Range with the pinned value, so a server whose file changed answers 200 instead
// of 206. That 200, a different ETag or Last-Modified, or a different total length all end the fetch
// with ErrChanged, and none of that reply's bytes are written.
//
// Some servers ignore Range and send the whole file with a 200. When the first reply does that,
// Fetch keeps the requested bytes from that one body instead of downloading the file once per batch,
// and later Fetch calls on the same Fetcher send one plain GET each.
//
// A URL that redirects (an object store's short-lived signed URL behind a 302 or 307) is asked once:
// the URL the redirect led to serves the next requests, until it answers 400, 401, 403, 404 or 410
// (an expired signature); then the URL itself is asked again at once and redirects afresh.
//
// Failures that may pass (5xx, 408, 429, connection errors, truncated bodies, a Content-Range that
// does not match the request) are retried with exponential backoff that stops when ctx is done.
// Others (404, 403, 416, a changed file) fail at once. Bytes that arrived before a body broke off are
// kept and only the rest is asked for again. Fetch never returns nil unless every requested byte was
// written.
package httprange

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkgsync/pkgsync/internal/byterange"
)

// Range is the byte range [Off, Off+Len) of a file: the type delta and bt use too.
type Range = byterange.Range

// Defaults for the zero values of Options.
const (
	DefaultMaxRangesPerRequest       = 20 // as the stock zsync client: the same multipart framing per byte
	DefaultMaxRequestBytes     int64 = 64 << 20
	DefaultParallel                  = 4
	DefaultRetries                   = 4
	DefaultRetryDelay                = 200 * time.Millisecond
	maxRetryDelay                    = 10 * time.Second
)

// Options tune a Fetcher. The zero value of each field selects its default.
type Options struct {
	// Client sends the requests. Nil selects a shared client whose Transport keeps at least
	// Parallel idle connections per host, speaks HTTP/1.1 and does not ask for compression.
	Client *http.Client

	// Header holds extra headers sent with every request, for example Authorization.
	Header http.Header

	// Length is the expected total length of the file. Every Content-Range total and every 200
	// body must have this length, else Fetch fails with ErrChanged. <= 0: learn it from the first reply.
	Length int64

	// Validator is the strong ETag (with its quotes) or the Last-Modified date that the file must
	// still have. Empty: pin the one that the first reply carries.
	Validator string

	// MaxRangesPerRequest caps the ranges asked for in one request (default 20). Above one range,
	// servers answer multipart/byteranges.
	MaxRangesPerRequest int

	// MaxRequestBytes caps the bytes asked for in one request (default 64 MiB); bigger ranges are split.
	MaxRequestBytes int64

	// Parallel is the number of requests in flight per Fetch call (default 4).
	Parallel int

	// Retries is how often one request is retried after a failure that may pass (default 4; < 0: never).
	Retries int

	// RetryDelay is the first backoff delay, doubled after each failure up to 10 s (default 200 ms).
	RetryDelay time.Duration

	// OnProgress, when set, is called with the number of bytes after each write to the
	// destination. It may be called from several goroutines at once.
	OnProgress func(n int64)
}

// Stats counts a Fetcher's traffic.
type Stats struct {
	Requests int64 // HTTP requests sent, retries included
	Bytes    int64 // response body bytes read, including multipart framing and bytes not asked for
}

// Sentinel errors, wrapped in *Error. Test for them with errors.Is.
var (
	// ErrChanged means the file on the server is not the version pinned: another ETag or
	// Last-Modified, another length, or a 200 reply to a request with If-Range.
	ErrChanged = errors.New("file changed on the server")
	// ErrNoRange means a requested range lies beyond the end of the file (or the server answered 416).
	ErrNoRange = errors.New("range not satisfiable")
	// ErrShort means a body ended before all the bytes it announced had arrived.
	ErrShort = errors.New("short body")
	// ErrBadContentRange means a Content-Range header is malformed, impossible, or names bytes
	// other than those asked for.
	ErrBadContentRange = errors.New("bad Content-Range")
	// ErrStatus means the server answered with an HTTP status that does not carry the file.
	ErrStatus = errors.New("unexpected HTTP status")
	// ErrTooLarge means Get refused a body longer than its limit.
	ErrTooLarge = errors.New("body too large")
)

// Error describes a failed request: the URL, the byte span it asked for, the HTTP status if a
// reply arrived, and the cause.
type Error struct {
	URL    string // with any password redacted
	Range  Range  // span of the request (first to last byte asked for); zero for a whole-file GET
	Status int    // HTTP status of the reply, 0 if none arrived
	Err    error  // cause, often one of the sentinel errors

	retry bool // the failure may pass: retry the request
}

// Error names the URL, the range and the status.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("httprange: ")
	b.WriteString(e.URL)
	if e.Range.Len > 0 {
		b.WriteString(" ")
		b.WriteString(e.Range.String())
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Coalesce returns the ranges sorted by offset with empty ones dropped and overlapping or adjacent
// ones merged. The input is not modified.
func Coalesce(ranges []Range) []Range {
	out := make([]Range, 0, len(ranges))
	for _, r := range ranges {
		if r.Len > 0 {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Range) int {
		switch {
		case a.Off < b.Off:
			return -1
		case a.Off > b.Off:
			return 1
		}
		return 0
	})
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.Off <= merged[n-1].End() {
			if r.End() > merged[n-1].End() {
				merged[n-1].Len = r.End() - merged[n-1].Off
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

type validatorKind int

const (
	validatorNone validatorKind = iota
	validatorETag
	validatorDate
)

type serverMode int

const (
	modeUnknown serverMode = iota // no reply yet
	modeRanges                    // the server answered a range request with 206
	modeFull                      // the server ignores Range: one plain GET per Fetch
)

// Fetcher fetches byte ranges of one URL. Its methods are safe for concurrent use; all calls share
// the pinned version and length.
type Fetcher struct {
	url     string
	safeURL string // for error messages
	opts    Options
	client  *http.Client
	optErr  error // invalid Options.Validator, reported by Fetch
	redir   redirect

	requests atomic.Int64
	bytes    atomic.Int64

	mu        sync.Mutex
	total     int64 // -1 until known
	pinned    bool  // validator decided (possibly validatorNone)
	vkind     validatorKind
	validator string    // If-Range value
	vtime     time.Time // for validatorDate
	mode      serverMode
}

// New returns a Fetcher for url (http or https). An invalid url or Options.Validator (a weak ETag,
// or neither a quoted ETag nor a date) is reported by every Fetch.
func New(url string, opts Options) *Fetcher {
	if opts.MaxRangesPerRequest <= 0 {
		opts.MaxRangesPerRequest = DefaultMaxRangesPerRequest
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	switch {
	case opts.Retries == 0:
		opts.Retries = DefaultRetries
	case opts.Retries < 0:
		opts.Retries = 0
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = DefaultRetryDelay
	}
	f := &Fetcher{url: url, safeURL: redact(url), opts: opts, client: opts.Client, total: -1}
	if f.client == nil {
		f.client = clientFor(opts.Parallel)
	}
	if opts.Length > 0 {
		f.total = opts.Length
	}
	if err := checkURL(url); err != nil {
		f.optErr = err
	}
	if v := opts.Validator; v != "" {
		f.pinned = true
		switch {
		case strings.HasPrefix(v, "W/"):
			f.optErr = fmt.Errorf("validator %s is a weak ETag; If-Range needs a strong one", v)
		case strings.HasPrefix(v, `"`):
			if !strongETag(v) {
				f.optErr = fmt.Errorf("validator %s is not a quoted ETag", v)
			}
			f.vkind, f.validator = validatorETag, v
		default:
			t, err := parseDate(v)
			if err != nil {
				f.optErr = fmt.Errorf("validator %q is neither a quoted ETag nor a date: %w", v, err)
			}
			f.vkind, f.vtime, f.validator = validatorDate, t, t.UTC().Format(http.TimeFormat)
		}
	}
	return f
}

// Stats returns the traffic so far.
func (f *Fetcher) Stats() Stats {
	return Stats{Requests: f.requests.Load(), Bytes: f.bytes.Load()}
}

// Length returns the file's total length, or -1 while it is unknown.
func (f *Fetcher) Length() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// Validator returns the pinned If-Range value (a strong ETag or an HTTP date), or "" when none is
// pinned yet or the server sends neither.
func (f *Fetcher) Validator() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.validator
}

// strongETag reports whether s is a strong entity tag: a quoted string without W/.
func strongETag(s string) bool {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		// etagc = %x21 / %x23-7E / obs-text
		if c := s[i]; c == '"' || c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}

// parseDate parses an HTTP date, or the RFC 2822 form that .zsync MTime lines use.
func parseDate(s string) (time.Time, error) {
	if t, err := http.ParseTime(s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC1123Z, s)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
