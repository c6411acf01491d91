// Package origin is the server side of pkgsync: a plain HTTP file server for a folder of packages
// that behaves as a BEP 19 web seed and as a zsync origin (correct Range, multi-range, If-Range and
// strong ETag handling, via net/http's ServeContent), optionally with the embedded tracker mounted
// at /announce and /scrape, and able to make a package's .torrent and .zsync on first request.
// NewHTTPServer serves any handler under Limits: header, idle and send timeouts and a connection
// cap, so that slow or idle clients cost a connection for seconds and their number is bounded.
// NewLeanHTTPServer does the same with the plain requests of one path answered without net/http
// (LeanRoute): `pkgsync tracker` answers its announces so.
//
// It has its own home because `pkgsync serve` is the one place where files, manifests and the
// tracker meet; the consumer side (httprange, bt) must work against any web server, and tests use
// it as the reference origin.
package origin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/metrics"
)

// Options configure a Server.
type Options struct {
	// AutoMake makes pkg.torrent and pkg.zsync when a client asks for them and pkg exists but they
	// are missing or older than pkg.
	AutoMake bool
	// PublicURL is the base URL clients reach this server at (e.g. http://origin:8080/); empty:
	// taken from each request's Host. Used for the url-list and URL header of made manifests.
	PublicURL string
	// Trackers are written into made torrents; "" entries are replaced with PublicURL + "announce".
	Trackers []string
	// Tracker, when set, is served at /announce and /scrape.
	Tracker http.Handler
	// AccessLog receives one line per request (`pkgsync serve --access-log`, which pkgsync report
	// reads back: report.ParseAccessLine); nil: none.
	AccessLog io.Writer
	// Log receives a record per request (Info), with the same facts as the access log as
	// attributes (`pkgsync serve -v`); nil: quiet.
	Log *slog.Logger
	// Make tunes AutoMake (piece and block size); URL, Trackers and OutDir are set by the server.
	Make manifest.MakeOptions
}

// Stats counts what the server sent: the origin's side of "how much did the origin send".
type Stats struct {
	Requests  int64 `json:"requests"`
	BodyBytes int64 `json:"body_bytes"`
	// Files breaks the totals down by request path ("/pkg.tar", "/pkg.tar.zsync"), so that
	// an audit can tell the package's bytes from its manifests'.
	Files map[string]FileStats `json:"files"`
}

// FileStats is what the origin sent for one path.
type FileStats struct {
	Requests  int64 `json:"requests"`
	BodyBytes int64 `json:"body_bytes"`
}

// maxStatFiles bounds the paths Stats keeps apart, so that requests for random names cannot
// grow it without end; later paths count in the totals only.
const maxStatFiles = 10000

// Server serves one folder.
type Server struct {
	root *os.Root
	dir  string
	opt  Options

	requests, bytes atomic.Int64
	filesMu         sync.Mutex
	files           map[string]FileStats
	makeMu          sync.Mutex // one make at a time: it already uses every core
	index           indexCache // SHA-1s of packages for /index.json
	metrics         *metrics.Origin

	src *storeSource // set by NewStore: files come from a store, not from dir
}

// New returns a server for dir. Paths that leave dir (.., absolute, or through symbolic links
// pointing outside) are refused by os.Root.
func New(dir string, opt Options) (*Server, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Server{root: root, dir: dir, opt: opt, metrics: metrics.NewOrigin()}, nil
}

// Close releases the folder.
func (s *Server) Close() error {
	if s.src != nil {
		return nil
	}
	return s.root.Close()
}

// Stats returns the counters since the server started.
func (s *Server) Stats() Stats {
	st := Stats{Requests: s.requests.Load(), BodyBytes: s.bytes.Load(), Files: map[string]FileStats{}}
	s.filesMu.Lock()
	for k, v := range s.files {
		st.Files[k] = v
	}
	s.filesMu.Unlock()
	return st
}

// Metrics returns the server's Prometheus counters: requests by method and status, and body
// bytes sent by package, kind and status (see package metrics). Register them to serve them.
func (s *Server) Metrics() *metrics.Origin { return s.metrics }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.opt.Tracker != nil && (r.URL.Path == "/announce" || r.URL.Path == "/scrape"):
		s.opt.Tracker.ServeHTTP(w, r)
		return
	case r.URL.Path == "/.pkgsync/stats":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Stats())
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		cw := &countingWriter{ResponseWriter: w}
		cw.Header().Set("Allow", "GET, HEAD")
		http.Error(cw, "method not allowed", http.StatusMethodNotAllowed)
		s.metrics.Served(r.Method, http.StatusMethodNotAllowed, "", cw.n)
		return
	}
	s.requests.Add(1)
	start := time.Now()
	cw := &countingWriter{ResponseWriter: w, head: r.Method == http.MethodHead}
	var status int
	if s.src != nil {
		status = s.serveStore(cw, r)
	} else if r.URL.Path == indexPath && !s.hasFile(indexPath[1:]) {
		status = s.serveIndex(cw, r)
	} else {
		status = s.serveFile(cw, r)
	}
	s.bytes.Add(cw.n)
	s.metrics.Served(r.Method, status, cw.file, cw.n)
	s.filesMu.Lock()
	if s.files == nil {
		s.files = map[string]FileStats{}
	}
	key := path.Clean("/" + r.URL.Path)
	if _, ok := s.files[key]; ok || len(s.files) < maxStatFiles {
		fst := s.files[key]
		fst.Requests++
		fst.BodyBytes += cw.n
		s.files[key] = fst
	}
	s.filesMu.Unlock()
	s.logRequest(r, status, cw.n, time.Since(start))
}

// logRequest writes a request to the access log and the log: the end time, to the millisecond,
// the duration and the Range asked for, a timeline of what the origin sent, in which bytes sent
// twice show up.
func (s *Server) logRequest(r *http.Request, status int, n int64, took time.Duration) {
	if s.opt.AccessLog != nil {
		rng := r.Header.Get("Range")
		if rng == "" {
			rng = "-"
		}
		fmt.Fprintf(s.opt.AccessLog, "%s %s %s %q %d %d %dms %q\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			r.RemoteAddr, r.Method, r.URL.Path, status, n, took.Milliseconds(), rng)
	}
	if s.opt.Log != nil {
		s.opt.Log.Info("origin: request", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path,
			"status", status, "bytes", n, "took", took.Round(time.Millisecond), "range", r.Header.Get("Range"))
	}
}

func (s *Server) serveFile(w *countingWriter, r *http.Request) int {
	name := path.Clean("/" + r.URL.Path)[1:]
	if name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "/.") {
		http.Error(w, "not found", http.StatusNotFound)
		return http.StatusNotFound
	}
	if s.opt.AutoMake {
		if err := s.ensureManifest(r, name); err != nil {
			http.Error(w, "cannot make manifest: "+err.Error(), http.StatusInternalServerError)
			return http.StatusInternalServerError
		}
	}
	f, err := s.root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.Error(w, "not found", http.StatusNotFound)
			return http.StatusNotFound
		}
		http.Error(w, "forbidden", http.StatusForbidden)
		return http.StatusForbidden
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.Error(w, "not found", http.StatusNotFound)
		return http.StatusNotFound
	}
	w.file = name
	if status, ok := s.serveStub(w, r, name, st.ModTime(), func() ([]byte, error) { return readAtMost(f, maxTorrentRead, name) }); ok {
		return status
	}
	// A strong validator from size and mtime (nginx's scheme): If-Range and the clients' version
	// pinning depend on it changing whenever the file does.
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, st.ModTime().UnixNano(), st.Size()))
	w.Header().Set("Accept-Ranges", "bytes")
	switch {
	case strings.HasSuffix(name, ".torrent"):
		w.Header().Set("Content-Type", "application/x-bittorrent")
	case strings.HasSuffix(name, ".zsync"):
		w.Header().Set("Content-Type", "application/x-zsync")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	http.ServeContent(w, rangeUnit(r, st.Size()), "", st.ModTime(), f)
	return w.status()
}

// hasFile reports whether the folder holds a regular file name.
func (s *Server) hasFile(name string) bool {
	st, err := s.root.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// rangeUnit returns r with a Range header that net/http's ServeContent reads as RFC 9110 14.1
// means it, for a file of size bytes: a range unit other than bytes is ignored, as an origin must
// (ServeContent answers 416), the unit is matched without regard to case, and a suffix range of
// zero bytes ("-0"), which is unsatisfiable, is dropped from the set (ServeContent sends it as
// the impossible "bytes 5000-4999/5000"); a set left with nothing is answered 416.
func rangeUnit(r *http.Request, size int64) *http.Request {
	rng := r.Header.Get("Range")
	if rng == "" {
		return r
	}
	unit, set, ok := strings.Cut(rng, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		r = r.Clone(r.Context())
		r.Header.Del("Range")
		return r
	}
	specs := strings.Split(set, ",")
	kept := specs[:0]
	for _, spec := range specs {
		// Spaces are trimmed as ServeContent trims them.
		if suffix, ok := strings.CutPrefix(textproto.TrimString(spec), "-"); ok {
			// A zero length as ServeContent parses it (strconv.ParseInt: "0", "000", "+0").
			if v, err := strconv.ParseInt(textproto.TrimString(suffix), 10, 64); err == nil && v == 0 {
				continue
			}
		}
		kept = append(kept, spec)
	}
	want := "bytes=" + strings.Join(kept, ",")
	if len(kept) == 0 {
		want = fmt.Sprintf("bytes=%d-", size) // no byte of the file: ServeContent's 416
	}
	if want == rng {
		return r
	}
	r = r.Clone(r.Context())
	r.Header.Set("Range", want)
	return r
}

// ensureManifest makes name's package manifests when name is pkg.torrent or pkg.zsync, pkg exists,
// and the manifest is missing or older than the package.
func (s *Server) ensureManifest(r *http.Request, name string) error {
	var pkg string
	switch {
	case strings.HasSuffix(name, ".torrent"):
		pkg = strings.TrimSuffix(name, ".torrent")
	case strings.HasSuffix(name, ".zsync"):
		pkg = strings.TrimSuffix(name, ".zsync")
	default:
		return nil
	}
	fresh := func() bool {
		pst, err := s.root.Stat(pkg)
		if err != nil || !pst.Mode().IsRegular() {
			return true // nothing to make: serve (or 404) what is there
		}
		for _, ext := range []string{".torrent", ".zsync"} {
			mst, err := s.root.Stat(pkg + ext)
			if err != nil || mst.ModTime().Before(pst.ModTime()) {
				return false
			}
		}
		return true
	}
	if fresh() {
		return nil
	}
	s.makeMu.Lock()
	defer s.makeMu.Unlock()
	if fresh() {
		return nil
	}
	base := s.publicBase(r)
	opt := s.opt.Make
	opt.URL = base + pathEscape(pkg)
	opt.OutDir = filepath.Join(s.dir, filepath.Dir(filepath.FromSlash(pkg)))
	opt.Trackers = nil
	for _, t := range s.opt.Trackers {
		if t == "" {
			t = base + "announce"
		}
		opt.Trackers = append(opt.Trackers, t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Hour)
	defer cancel()
	_, err := manifest.Make(ctx, filepath.Join(s.dir, filepath.FromSlash(pkg)), opt)
	return err
}

func pathEscape(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

type countingWriter struct {
	http.ResponseWriter
	n        int64
	code     int
	preamble bool // a CRLF is owed before the first multipart boundary
	head     bool // a HEAD request: net/http drops the body, so it does not count
	// file is the file of the folder the answer comes from (relative to it), once known: the
	// package label of the metrics, which a request's raw path must not be.
	file string
}

// WriteHeader also adapts net/http's multipart/byteranges replies to what the stock zsync 0.6.2
// client parses: Go starts the body with the first boundary line, while zsync (like nginx and
// Apache write it) expects a CRLF before every boundary and otherwise re-requests forever. The
// two bytes are a valid multipart preamble for every other client (RFC 2046).
func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	h := c.ResponseWriter.Header()
	if code == http.StatusPartialContent && strings.HasPrefix(h.Get("Content-Type"), "multipart/byteranges") {
		if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
			h.Set("Content-Length", strconv.FormatInt(n+2, 10))
		}
		c.ResponseWriter.WriteHeader(code)
		c.preamble = true
		return
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if c.preamble {
		c.preamble = false
		n, err := io.WriteString(c.ResponseWriter, "\r\n")
		if !c.head {
			c.n += int64(n)
		}
		if err != nil {
			return 0, err
		}
	}
	n, err := c.ResponseWriter.Write(p)
	if !c.head {
		c.n += int64(n)
	}
	return n, err
}

func (c *countingWriter) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}
