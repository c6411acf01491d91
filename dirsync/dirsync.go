// Package dirsync keeps a folder of packages current with an origin's index (/index.json, see
// package catalog): for each package line, the newest version is brought into the folder by a
// delta update from the newest older version the folder holds, and versions beyond the newest
// few are removed once the new one is verified in place.
//
// It is the work behind `pkgsync sync`, which a timer or cron runs on every node. It has a home
// of its own because it is a policy over many updates (which old file feeds which update, what
// to keep, what a run that finds nothing new may cost the origin), not a step of one update.
//
// A run where nothing changed costs the origin one conditional request: the folder keeps the
// index it last read, with its ETag, in a hidden state file, and what it verified in place, so
// that a 304 and unchanged files need nothing more.
package dirsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/catalog"
	"github.com/pkgsync/pkgsync/internal/logging"
	"github.com/pkgsync/pkgsync/updater"
)

// stateFile and lockName are the folder's hidden files: what the last run read and verified,
// and the lock that keeps two runs on one folder apart (DIR/.pkgsync-sync.lock).
const (
	stateFile = ".pkgsync-sync.json"
	lockName  = ".pkgsync-sync"
)

// Options says what to sync.
type Options struct {
	Index    string        // URL of the origin's index.json
	Dir      string        // the folder kept current
	Only     []string      // package lines to sync; none: every line of the index
	Keep     int           // versions kept per line, the new one included (default 2)
	LockWait time.Duration // wait this long for another sync of Dir (0: fail at once)

	// Update is the template of each package's update: HTTP client, headers, swarm settings,
	// seeding, trusted keys, logs. Source, Olds and Out are set per package. Sync's own records
	// (what it updates, keeps and removes) go to Update.Log too.
	Update updater.Options
}

// Status is what a run did with one package line.
type Status string

const (
	Updated Status = "updated" // the newest version was built and verified in the folder
	Current Status = "current" // the folder already held it
	Failed  Status = "failed"  // its update failed; the folder holds what it held before
)

// PackageResult is one line's outcome.
type PackageResult struct {
	Line    string          `json:"line"`
	Name    string          `json:"name"` // the newest version's file
	Version string          `json:"version"`
	Status  Status          `json:"status"`
	Old     []string        `json:"old"` // the --old files of its update
	Removed []string        `json:"removed"`
	Error   string          `json:"error,omitempty"`
	Update  *updater.Result `json:"update,omitempty"`
}

// Result is a run's outcome.
type Result struct {
	Index       string          `json:"index"`
	NotModified bool            `json:"not_modified"` // the origin answered 304 for the index
	Packages    []PackageResult `json:"packages"`
	Seconds     float64         `json:"seconds"`
}

// Counts returns how many lines were updated, current and failed.
func (r *Result) Counts() (updated, current, failed int) {
	for _, p := range r.Packages {
		switch p.Status {
		case Updated:
			updated++
		case Current:
			current++
		case Failed:
			failed++
		}
	}
	return
}

// state is what the folder remembers between runs.
type state struct {
	IndexURL string              `json:"index_url"`
	ETag     string              `json:"etag"`
	Index    json.RawMessage     `json:"index"`
	Verified map[string]verified `json:"verified"` // per file name
}

// verified records a file found complete: while its size and modification time stay the same,
// it is still the version with that SHA-1.
type verified struct {
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	SHA1  string    `json:"sha1"`
}

// Run syncs the folder. The error is for the run as a whole (the lock, the index); a package
// that fails is reported in its PackageResult, and the others go on.
func Run(ctx context.Context, opt Options) (*Result, error) {
	start := time.Now()
	if opt.Keep == 0 {
		opt.Keep = 2
	}
	if opt.Keep < 1 {
		return nil, fmt.Errorf("keep %d: want at least 1", opt.Keep)
	}
	if st, err := os.Stat(opt.Dir); err != nil {
		return nil, err
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", opt.Dir)
	}
	log := logging.OrDiscard(opt.Update.Log)
	notice := opt.Update.Notice // what the run waits for, as an update's
	if notice == nil {
		notice = log
	}
	unlock, err := updater.Lock(ctx, filepath.Join(opt.Dir, lockName), opt.LockWait, notice)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st := readState(opt.Dir)
	ix, notModified, err := fetchIndex(ctx, opt, &st)
	if err != nil {
		return nil, err
	}
	res := &Result{Index: opt.Index, NotModified: notModified, Packages: []PackageResult{}}
	newest := ix.Newest()
	for _, line := range opt.Only {
		if !slices.ContainsFunc(newest, func(p catalog.Package) bool { return p.Line == line }) {
			res.Packages = append(res.Packages, PackageResult{Line: line, Status: Failed, Old: []string{}, Removed: []string{},
				Error: fmt.Sprintf("%s lists no package of the line %q", opt.Index, line)})
		}
	}
	for _, p := range newest {
		if len(opt.Only) > 0 && !slices.Contains(opt.Only, p.Line) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pr := syncLine(ctx, opt, &st, p, log.With("line", p.Line))
		res.Packages = append(res.Packages, pr)
	}
	if err := writeState(opt.Dir, st); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// fetchIndex gets the index, conditionally on the one the folder last read, and keeps the new
// one in st.
func fetchIndex(ctx context.Context, opt Options, st *state) (*catalog.Index, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, opt.Index, nil)
	if err != nil {
		return nil, false, fmt.Errorf("index %s: %w", opt.Index, err)
	}
	for k, vs := range opt.Update.Header {
		req.Header[k] = vs
	}
	cached := st.IndexURL == opt.Index && st.ETag != "" && len(st.Index) > 0
	if cached {
		req.Header.Set("If-None-Match", st.ETag)
	}
	client := opt.Update.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("index: %w", err)
	}
	defer resp.Body.Close()
	var body []byte
	notModified := false
	switch {
	case resp.StatusCode == http.StatusNotModified && cached:
		body, notModified = st.Index, true
	case resp.StatusCode == http.StatusOK:
		if body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20)); err != nil {
			return nil, false, fmt.Errorf("index %s: %w", opt.Index, err)
		}
	default:
		return nil, false, fmt.Errorf("index %s: %s", opt.Index, resp.Status)
	}
	ix, err := catalog.Read(bytes.NewReader(body))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", opt.Index, err)
	}
	if !notModified {
		st.IndexURL, st.ETag, st.Index = opt.Index, resp.Header.Get("ETag"), body
	}
	return ix, notModified, nil
}

// syncLine brings the newest version p of a line into the folder, then removes the versions
// beyond opt.Keep, with a record of each step on log.
func syncLine(ctx context.Context, opt Options, st *state, p catalog.Package, log *slog.Logger) PackageResult {
	pr := PackageResult{Line: p.Line, Name: p.Name, Version: p.Version, Old: []string{}, Removed: []string{}}
	out := filepath.Join(opt.Dir, p.Name)
	if isVerified(st, out, p) {
		pr.Status = Current
		log.Info("sync: current", "file", p.Name)
		return pr
	}
	local := localVersions(opt.Dir, p.Line)
	var olds []string
	for _, l := range local {
		// The newest version older than p; or, with none older, the newest other one.
		if l.Name != p.Name && catalog.CompareVersions(l.Version, p.Version) < 0 {
			olds = []string{l.Name}
			break
		}
	}
	if olds == nil {
		for _, l := range local {
			if l.Name != p.Name {
				olds = []string{l.Name}
				break
			}
		}
	}
	src, err := url.Parse(opt.Index)
	if err == nil {
		var ref *url.URL
		if ref, err = url.Parse(p.Torrent); err == nil {
			src = src.ResolveReference(ref)
		}
	}
	if err != nil {
		pr.Status, pr.Error = Failed, fmt.Sprintf("%s: torrent %q: %v", p.Name, p.Torrent, err)
		return pr
	}
	uo := opt.Update
	uo.Source, uo.Out, uo.Olds = src.String(), out, nil
	uo.WholeSHA1 = p.SHA1 != "" // checked against the index below
	for _, o := range olds {
		uo.Olds = append(uo.Olds, filepath.Join(opt.Dir, o))
	}
	pr.Old = olds
	log.Info("sync: updating", "file", p.Name, "old", olds)
	r, err := updater.Run(ctx, uo)
	if err != nil {
		pr.Status, pr.Error = Failed, err.Error()
		return pr
	}
	pr.Update = r
	pr.Status = Updated
	if r.UpToDate {
		pr.Status = Current
	}
	if r.SHA1 != "" && p.SHA1 != "" && !strings.EqualFold(r.SHA1, p.SHA1) {
		// The index and the .torrent disagree: the origin published mid-way. Keep what was
		// built (it is verified against its own .torrent) but do not call it current.
		pr.Status, pr.Error = Failed, fmt.Sprintf("%s: built SHA-1 %s, the index says %s (the origin changed the package during the run?)", p.Name, r.SHA1, p.SHA1)
		return pr
	}
	if fi, err := os.Stat(out); err == nil {
		if st.Verified == nil {
			st.Verified = map[string]verified{}
		}
		st.Verified[p.Name] = verified{Size: fi.Size(), MTime: fi.ModTime(), SHA1: p.SHA1}
	}
	// Only now, with the new version verified in place, the old ones beyond Keep go.
	kept := 1
	for _, l := range localVersions(opt.Dir, p.Line) {
		if l.Name == p.Name {
			continue
		}
		if kept < opt.Keep {
			kept++
			continue
		}
		if err := os.Remove(filepath.Join(opt.Dir, l.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("sync: cannot remove an old version", "file", l.Name, "err", err)
			continue
		}
		os.Remove(updater.RecordPath(filepath.Join(opt.Dir, l.Name)))
		delete(st.Verified, l.Name)
		pr.Removed = append(pr.Removed, l.Name)
		log.Info("sync: removed an old version", "file", l.Name, "keep", opt.Keep)
	}
	return pr
}

// isVerified reports whether out is p, as verified by an earlier run and unchanged since.
func isVerified(st *state, out string, p catalog.Package) bool {
	v, ok := st.Verified[p.Name]
	if !ok || p.SHA1 == "" || !strings.EqualFold(v.SHA1, p.SHA1) {
		return false
	}
	fi, err := os.Stat(out)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == v.Size && fi.ModTime().Equal(v.MTime) && v.Size == p.Size
}

// localVersions lists the complete versions of line in dir (not OUT.part and the like), newest
// first.
func localVersions(dir, line string) []catalog.Local {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") ||
			strings.HasSuffix(n, ".part") || strings.HasSuffix(n, ".lock") {
			continue
		}
		names = append(names, n)
	}
	return catalog.Versions(names, line)
}

func readState(dir string) state {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err == nil {
		if json.Unmarshal(b, &st) != nil {
			st = state{} // a damaged state costs one full index fetch, nothing more
		}
	}
	return st
}

// writeState replaces the state file atomically.
func writeState(dir string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, stateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("saving the sync state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("saving the sync state: %w", err)
	}
	return nil
}
