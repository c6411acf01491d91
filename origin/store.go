package origin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/metrics"
	"github.com/pkgsync/pkgsync/store"
)

// storeSource is where a Server made by NewStore takes its files: a folder of a store (HDFS,
// S3, another web server), read with the server's own credentials, so that nodes reach the
// packages over plain HTTP ranges and hold none.
type storeSource struct {
	st       store.Store
	prefix   string // the folder's key, "" or ending in "/"
	cacheDir string // where made manifests go when the store does not take them
}

// NewStore returns a server for the objects of st under prefix (a folder's key): GET /NAME
// serves the object prefix+NAME with ranges, multi-range, If-Range and a strong ETag made from
// the store's identity of the object. With AutoMake, PKG.torrent and PKG.zsync are made on
// first request by reading PKG from the store (store.Make) and put beside it in the store;
// when the store refuses them (read-only, no permission), they go to cacheDir instead, in a
// folder named after the package's key and identity, so that a changed package gets new ones.
// The folder's /index.json is served only if the store holds one.
func NewStore(st store.Store, prefix string, opt Options, cacheDir string) (*Server, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if opt.AutoMake && cacheDir == "" {
		return nil, errors.New("origin: a store-backed server that makes manifests needs a cache folder")
	}
	return &Server{opt: opt, metrics: metrics.NewOrigin(), src: &storeSource{st: st, prefix: prefix, cacheDir: cacheDir}}, nil
}

// serveStore answers a GET or HEAD of one object of the store.
func (s *Server) serveStore(w *countingWriter, r *http.Request) int {
	name := path.Clean("/" + r.URL.Path)[1:]
	if name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "/.") {
		http.Error(w, "not found", http.StatusNotFound)
		return http.StatusNotFound
	}
	if s.opt.AutoMake {
		local, err := s.storeManifest(r, name)
		if err != nil {
			http.Error(w, "cannot make manifest: "+err.Error(), http.StatusInternalServerError)
			return http.StatusInternalServerError
		}
		if local != "" {
			w.file = name
			if status, ok := s.serveStub(w, r, name, time.Time{}, func() ([]byte, error) { return readLocal(local, name) }); ok {
				return status
			}
			return serveLocalFile(w, r, local, name)
		}
	}
	src := s.src
	info, err := src.st.Stat(r.Context(), src.prefix+name)
	if errors.Is(err, store.ErrNotExist) {
		http.Error(w, "not found", http.StatusNotFound)
		return http.StatusNotFound
	}
	if err != nil {
		s.warn("origin: the store did not answer", "file", name, "err", err)
		http.Error(w, "the store did not answer", http.StatusBadGateway)
		return http.StatusBadGateway
	}
	w.file = name
	read := func() ([]byte, error) {
		if info.Size > maxTorrentRead {
			return nil, fmt.Errorf("%s: %d bytes (limit %d)", name, info.Size, maxTorrentRead)
		}
		body, err := src.st.ReadRange(r.Context(), src.prefix+name, 0, info.Size, info.ETag)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		return readAtMost(body, info.Size, name)
	}
	if status, ok := s.serveStub(w, r, name, info.ModTime, read); ok {
		return status
	}
	if tag := strongTag(info.ETag); tag != "" {
		w.Header().Set("ETag", tag)
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Type", contentType(name))
	r = rangeUnit(r, info.Size)
	rs := &storeReadSeeker{ctx: r.Context(), st: src.st, info: info, ends: rangeEnds(r.Header.Get("Range"), info.Size)}
	defer rs.Close()
	http.ServeContent(w, r, "", info.ModTime, rs)
	return w.status()
}

func (s *Server) warn(msg string, args ...any) {
	if s.opt.Log != nil {
		s.opt.Log.Warn(msg, args...)
	}
}

// contentType is the type of a package file by its name.
func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".torrent"):
		return "application/x-bittorrent"
	case strings.HasSuffix(name, ".zsync"):
		return "application/x-zsync"
	}
	return "application/octet-stream"
}

// strongTag makes a strong ETag of a store's identity: as it is when it is one already, quoted
// when its characters may stand in an ETag, else a hash of it.
func strongTag(id string) string {
	if id == "" {
		return ""
	}
	v := strings.TrimSuffix(strings.TrimPrefix(id, `"`), `"`)
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c < 0x21 || c >= 0x7f {
			sum := sha256.Sum256([]byte(id))
			return `"` + hex.EncodeToString(sum[:16]) + `"`
		}
	}
	return `"` + v + `"`
}

// readLocal reads a manifest of the local cache whole.
func readLocal(file, name string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f, maxTorrentRead, name)
}

// serveLocalFile serves a manifest from the local cache.
func serveLocalFile(w *countingWriter, r *http.Request, file, name string) int {
	f, err := os.Open(file)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return http.StatusNotFound
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return http.StatusNotFound
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, st.ModTime().UnixNano(), st.Size()))
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Type", contentType(name))
	http.ServeContent(w, rangeUnit(r, st.Size()), "", st.ModTime(), f)
	return w.status()
}

// storeManifest makes name's manifests when name is PKG.torrent or PKG.zsync and PKG is in the
// store without fresh ones (in the store: made after PKG; in the cache: made from PKG's
// identity). It returns the path of name in the local cache when that is where it is, else "".
func (s *Server) storeManifest(r *http.Request, name string) (string, error) {
	pkg, ok := strings.CutSuffix(name, ".torrent")
	if !ok {
		if pkg, ok = strings.CutSuffix(name, ".zsync"); !ok {
			return "", nil
		}
	}
	src := s.src
	ctx := r.Context()
	pinfo, err := src.st.Stat(ctx, src.prefix+pkg)
	if err != nil {
		return "", nil // nothing to make from: serve (or 404) what is there
	}
	cache := filepath.Join(src.cacheDir, cacheName(src.st.String(), pinfo))
	fresh := func() (string, bool) {
		if src.freshInStore(ctx, pkg, pinfo) {
			return "", true
		}
		for _, ext := range []string{".torrent", ".zsync"} {
			if _, err := os.Stat(filepath.Join(cache, path.Base(pkg)+ext)); err != nil {
				return "", false
			}
		}
		return filepath.Join(cache, path.Base(name)), true
	}
	if p, ok := fresh(); ok {
		return p, nil
	}
	s.makeMu.Lock()
	defer s.makeMu.Unlock()
	if p, ok := fresh(); ok {
		return p, nil
	}
	return s.makeInStore(r, pkg, name, cache)
}

// freshInStore reports whether the store holds both manifests of pkg, made after pkg.
func (src *storeSource) freshInStore(ctx context.Context, pkg string, pinfo store.Info) bool {
	for _, ext := range []string{".torrent", ".zsync"} {
		mi, err := src.st.Stat(ctx, src.prefix+pkg+ext)
		if err != nil || mi.ModTime.Before(pinfo.ModTime) {
			return false
		}
	}
	return true
}

// cacheName is the cache folder of one version of a package.
func cacheName(storeName string, info store.Info) string {
	sum := sha256.Sum256([]byte(storeName + "\x00" + info.Key + "\x00" + info.ETag))
	return hex.EncodeToString(sum[:12])
}

// makeInStore makes pkg's manifests from the store and puts them beside pkg, or into cache
// when the store refuses; it returns name's local path in the second case.
func (s *Server) makeInStore(r *http.Request, pkg, name, cache string) (string, error) {
	src := s.src
	opt := s.opt.Make
	base := s.publicBase(r)
	opt.URL = base + pathEscape(pkg)
	opt.OutDir = ""
	opt.Trackers = nil
	for _, t := range s.opt.Trackers {
		if t == "" {
			t = base + "announce"
		}
		opt.Trackers = append(opt.Trackers, t)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 6*time.Hour)
	defer cancel()
	made, err := store.Make(ctx, src.st, src.prefix+pkg, opt)
	if err != nil {
		return "", err
	}
	// The .zsync first: a .torrent in the store means both are there.
	err = src.st.Put(ctx, src.prefix+pkg+".zsync", bytes.NewReader(made.Zsync), int64(len(made.Zsync)))
	if err == nil {
		err = src.st.Put(ctx, src.prefix+pkg+".torrent", bytes.NewReader(made.Torrent), int64(len(made.Torrent)))
	}
	if err == nil {
		return "", nil
	}
	s.warn("origin: the store does not take the manifests: kept in the cache", "package", pkg, "cache", cache, "err", err)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	for ext, data := range map[string][]byte{".zsync": made.Zsync, ".torrent": made.Torrent} {
		if err := manifest.WriteFile(filepath.Join(cache, path.Base(pkg)+ext), data); err != nil {
			return "", err
		}
	}
	return filepath.Join(cache, path.Base(name)), nil
}

// publicBase is the URL clients reach this server at, ending in "/".
func (s *Server) publicBase(r *http.Request) string {
	base := s.opt.PublicURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host + "/"
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base
}

// storeReadSeeker is the io.ReadSeeker http.ServeContent reads an object through: a read opens
// one ranged read of the store from the current offset to the end of the requested range that
// starts there (ends), or to the end of the object, so that every range of the request costs
// the store one read of just its bytes.
type storeReadSeeker struct {
	ctx  context.Context
	st   store.Store
	info store.Info
	ends map[int64]int64 // the requested ranges: start -> end
	pos  int64
	body io.ReadCloser
}

func (rs *storeReadSeeker) Read(p []byte) (int, error) {
	if rs.pos >= rs.info.Size {
		return 0, io.EOF
	}
	if rs.body == nil {
		end := rs.info.Size
		if e, ok := rs.ends[rs.pos]; ok && e > rs.pos {
			end = e
		}
		body, err := rs.st.ReadRange(rs.ctx, rs.info.Key, rs.pos, end-rs.pos, rs.info.ETag)
		if err != nil {
			return 0, err
		}
		rs.body = body
	}
	n, err := rs.body.Read(p)
	rs.pos += int64(n)
	if err == io.EOF {
		rs.body.Close()
		rs.body = nil
		err = nil
		if n == 0 {
			return rs.Read(p)
		}
	}
	return n, err
}

func (rs *storeReadSeeker) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = rs.pos + offset
	case io.SeekEnd:
		pos = rs.info.Size + offset
	default:
		return rs.pos, fmt.Errorf("seek: bad whence %d", whence)
	}
	if pos < 0 {
		return rs.pos, fmt.Errorf("seek to %d: before the start", pos)
	}
	if pos != rs.pos {
		rs.Close()
	}
	rs.pos = pos
	return pos, nil
}

func (rs *storeReadSeeker) Close() error {
	if rs.body != nil {
		rs.body.Close()
		rs.body = nil
	}
	return nil
}

// rangeEnds reads a Range header (as rangeUnit left it) into start -> end for a size-byte
// object. It only bounds the store's reads: ServeContent decides what is sent, so specs it
// would refuse may be dropped here.
func rangeEnds(h string, size int64) map[int64]int64 {
	set, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return nil
	}
	ends := map[int64]int64{}
	for _, spec := range strings.Split(set, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
		if !ok {
			continue
		}
		a, b = strings.TrimSpace(a), strings.TrimSpace(b)
		var start, end int64
		if a == "" {
			n, err := strconv.ParseInt(b, 10, 64)
			if err != nil || n <= 0 {
				continue
			}
			start, end = max(size-n, 0), size
		} else {
			s, err := strconv.ParseInt(a, 10, 64)
			if err != nil || s < 0 || s >= size {
				continue
			}
			start, end = s, size
			if b != "" {
				e, err := strconv.ParseInt(b, 10, 64)
				if err != nil || e < s {
					continue
				}
				end = min(e+1, size)
			}
		}
		if end > start {
			ends[start] = max(ends[start], end)
		}
	}
	return ends
}
