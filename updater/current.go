package updater

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/manifest"
)

// Cron runs update every few minutes on every node, and nearly every run finds the package
// current. Such a run should cost the origin a conditional request and no body, and the node no
// read of the whole package. So an update that leaves OUT verified writes a record beside it,
// .NAME.pkgsync (hidden): the .torrent's URL, its bytes and ETag, its info hash, and OUT's
// size, modification time and inode. The next run asks for the .torrent with If-None-Match;
// a 304 gives the recorded bytes back, and an OUT that is still what was verified (same info
// hash, size, time and inode) is current without being hashed again. Anything that changed OUT
// (a write moves its modification time) or the .torrent makes the run do the full check.

// currentRecord is the record beside OUT.
type currentRecord struct {
	Source   string    `json:"source"`
	ETag     string    `json:"etag"`
	Torrent  []byte    `json:"torrent"`
	InfoHash string    `json:"info_hash"`
	Size     int64     `json:"size"`
	MTime    time.Time `json:"mtime"`
	Inode    uint64    `json:"inode"`
}

// RecordPath is where the record of out lives (a caller that removes out removes it too).
func RecordPath(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".pkgsync")
}

// guessOut returns the output path a .torrent at src will have, before the torrent is read: -o
// (a folder gets the URL's file name), else the URL's file name without .torrent in the current
// folder. The guess is checked once the torrent is read.
func (j *job) guessOut(src location) string {
	name := strings.TrimSuffix(path.Base(src.url.Path), ".torrent")
	out := j.opt.Out
	if out == "" {
		return name
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return filepath.Join(out, name)
	}
	return out
}

// readTorrentIfChanged reads the .torrent at the URL src, conditionally on the record of the
// output it will most likely have: on a 304 it returns the recorded bytes.
func (j *job) readTorrentIfChanged(ctx context.Context, src location) ([]byte, error) {
	var rec currentRecord
	if b, err := os.ReadFile(RecordPath(j.guessOut(src))); err == nil && json.Unmarshal(b, &rec) == nil && rec.Source == src.raw {
		j.record = &rec
	}
	etag := ""
	if j.record != nil && len(j.record.Torrent) > 0 {
		etag = j.record.ETag
	}
	get := httprange.GetIfNoneMatch
	if src.store {
		get = func(ctx context.Context, c *http.Client, raw string, h http.Header, max int64, etag string) ([]byte, string, bool, error) {
			return readStoreIfNoneMatch(ctx, c, raw, h, j.opt.Store, max, etag)
		}
	}
	data, tag, notModified, err := get(ctx, j.opt.HTTP, src.raw, j.torrentHeader(src), maxTorrentBytes, etag)
	if err != nil {
		return nil, err
	}
	j.torrentETag = tag
	if notModified {
		j.log.Info("update: the .torrent is not modified since the last run", "source", src.String(), "etag", tag)
		return j.record.Torrent, nil
	}
	return data, nil
}

// knownCurrent reports whether the record says OUT, as it stands, is the package of torrent t:
// verified by an earlier run and neither moved nor written since.
func (j *job) knownCurrent(st os.FileInfo, t *manifest.Torrent) bool {
	r := j.record
	if r == nil || RecordPath(j.out) != RecordPath(j.guessOut(j.src)) || r.InfoHash != hex.EncodeToString(t.InfoHash[:]) {
		return false
	}
	return r.Size == st.Size() && r.MTime.Equal(st.ModTime()) && r.Inode == inode(st)
}

// remember writes the record of OUT, just verified as the package of the torrent SOURCE. A
// failure only costs the next run a full check.
func (j *job) remember() {
	if j.torrent == nil || j.src.url == nil {
		return
	}
	st, err := os.Stat(j.out)
	if err != nil {
		return
	}
	rec := currentRecord{Source: j.src.raw, ETag: j.torrentETag, Torrent: j.torrentBytes,
		InfoHash: hex.EncodeToString(j.torrent.InfoHash[:]), Size: st.Size(), MTime: st.ModTime(), Inode: inode(st)}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	p := RecordPath(j.out)
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		j.log.Warn("update: cannot write the record of the output", "file", p, "err", err)
		return
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		os.Remove(p + ".tmp")
		j.log.Warn("update: cannot write the record of the output", "file", p, "err", err)
	}
}

func inode(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}
