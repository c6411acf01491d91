package origin

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pkgsync/pkgsync/catalog"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// indexPath is where the server publishes the index of its folder (package catalog), unless
// the folder holds an index.json of the producer's own, which is then served as it is.
const indexPath = "/index.json"

// notPackages are the suffixes of the files that describe or accompany a package, not
// packages themselves.
var notPackages = []string{".torrent", ".zsync", ".sig", ".part", ".lock", ".json", ".mkpart"}

// indexCache keeps, per package file, the SHA-1 computed for it, while its size and
// modification time stay the same.
type indexCache struct {
	mu   sync.Mutex
	sums map[string]cachedSum
}

type cachedSum struct {
	size  int64
	mtime time.Time
	sha1  string
}

// serveIndex answers /index.json with the index of the folder's top level: each file named
// LINE-VERSION.EXT that has (or, with AutoMake, gets) a .torrent. It carries a strong ETag of
// its content, so that a node whose copy is current gets a 304 and no body.
func (s *Server) serveIndex(w *countingWriter, r *http.Request) int {
	body, err := s.buildIndex(r)
	if err != nil {
		http.Error(w, "cannot list the packages: "+err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	w.file = indexPath[1:]
	sum := sha1.Sum(body)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	return w.status()
}

// buildIndex lists the folder's packages as JSON.
func (s *Server) buildIndex(r *http.Request) ([]byte, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	ix := catalog.Index{Packages: []catalog.Package{}}
	for _, name := range names {
		if strings.HasPrefix(name, ".") || slices.ContainsFunc(notPackages, func(sfx string) bool { return strings.HasSuffix(name, sfx) }) {
			continue
		}
		line, version, ok := catalog.ParseName(name)
		if !ok {
			continue
		}
		st, err := s.root.Stat(name)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if s.opt.AutoMake {
			if err := s.ensureManifest(r, name+".torrent"); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		if _, err := s.root.Stat(name + ".torrent"); err != nil {
			continue // nothing a node could update from
		}
		sum, err := s.sumOf(name, st)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		ix.Packages = append(ix.Packages, catalog.Package{Name: name, Line: line, Version: version,
			Torrent: pathEscape(name + ".torrent"), Size: st.Size(), SHA1: sum})
	}
	return json.MarshalIndent(ix, "", "  ")
}

// sumOf returns the hex SHA-1 of the package name (whose stat is st): from its .zsync when that
// is current, else computed once and kept while the file stays the same.
func (s *Server) sumOf(name string, st os.FileInfo) (string, error) {
	if zs, err := s.root.Stat(name + ".zsync"); err == nil && !zs.ModTime().Before(st.ModTime()) {
		if f, err := s.root.Open(name + ".zsync"); err == nil {
			h, err := zsyncfile.ReadHeader(bufio.NewReader(f))
			f.Close()
			if err == nil && h.Length == st.Size() {
				return hex.EncodeToString(h.SHA1[:]), nil
			}
		}
	}
	s.index.mu.Lock()
	c, ok := s.index.sums[name]
	s.index.mu.Unlock()
	if ok && c.size == st.Size() && c.mtime.Equal(st.ModTime()) {
		return c.sha1, nil
	}
	f, err := s.root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	s.index.mu.Lock()
	if s.index.sums == nil {
		s.index.sums = map[string]cachedSum{}
	}
	s.index.sums[name] = cachedSum{st.Size(), st.ModTime(), sum}
	s.index.mu.Unlock()
	return sum, nil
}
