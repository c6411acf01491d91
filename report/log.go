// Package report sums up rollouts after the fact, from what the tracker and the origin wrote
// while they ran: the tracker's announce log (`pkgsync tracker --announce-log`, or `pkgsync serve
// --tracker`'s stderr) and, when there is one, the origin's access log (`pkgsync serve
// --access-log`) or its /.pkgsync/stats. For each package (info hash) and rollout it gives each
// peer's upload and download as a share of the package, the origin's share, each node's
// completion time from its first announce, and their spread, as a Markdown table and a chart.
//
// It has a home of its own because it reads these formats from the outside, as an operator's
// tool does: the tracker and the origin only write them, nothing that moves packages needs to
// parse them back or to plot, and the plotting library stays out of the binaries' hot paths.
//
// What the announce log can tell: a peer reports the bytes it uploaded and downloaded (pkgsync
// nodes count the origin's web-seed bytes as downloaded too) and the bytes it still lacks, at
// each announce: when it starts, when it completes, every interval in between and when it stops.
// So the last announce of a peer gives its totals only as of that announce (a node killed
// without a "stopped" announce under-reports what it uploaded since), and the package size is
// the largest "left" any peer announced unless a .torrent gives it. The origin's share comes from
// its access log or stats when given, and otherwise from the peers' counters: the bytes peers
// downloaded that no peer uploaded came from outside the swarm. That is a lower bound, often a
// loose one: a peer counts as downloaded only the piece data it kept, while its senders count
// every byte they sent, duplicates and blocks of cancelled requests included.
package report

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/origin"
)

// Announce is one announce line of the tracker's log (tracker.Options.Log).
type Announce struct {
	Time     time.Time
	InfoHash [20]byte
	PeerID   [20]byte
	Peer     netip.AddrPort // the address handed to other peers
	Remote   string         // the connection's address
	// Event is "started", "completed", "stopped", "paused" or "" (a regular re-announce).
	Event      string
	Uploaded   int64
	Downloaded int64
	Left       int64 // -1: not sent
	NumWant    int64
	Peers      int64 // peers listed in the answer
}

// Kind tells what a line of an announce log is.
type Kind int

const (
	// Other is a line the tracker did not write: serve --tracker logs announces to stderr,
	// between its own messages. Blank lines are Other too.
	Other Kind = iota
	// AnnounceLine is an announce the tracker answered.
	AnnounceLine
	// Refused is a request the tracker refused ({"failure": ...}).
	Refused
)

// ParseError is an error in a log, naming the file and line.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// announceJSON is a line as the tracker writes it; pointers tell missing keys from zero values.
type announceJSON struct {
	Time       *string `json:"time"`
	InfoHash   *string `json:"info_hash"`
	PeerID     *string `json:"peer_id"`
	Peer       *string `json:"peer"`
	Remote     string  `json:"remote"`
	Event      *string `json:"event"`
	Uploaded   *int64  `json:"uploaded"`
	Downloaded *int64  `json:"downloaded"`
	Left       *int64  `json:"left"`
	NumWant    int64   `json:"numwant"`
	Peers      int64   `json:"peers"`
	Failure    *string `json:"failure"`
}

var events = map[string]bool{"": true, "started": true, "completed": true, "stopped": true, "paused": true}

// ParseLine reads one line of an announce log (without its newline). A line that is not a JSON
// object, or one without "peer_id" and "failure" (another program's JSON log line), is Other; a
// JSON object with "peer_id" must be a whole announce line, or ParseLine says what is wrong.
func ParseLine(line []byte) (Announce, Kind, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return Announce{}, Other, nil
	}
	var j announceJSON
	if err := json.Unmarshal(line, &j); err != nil {
		return Announce{}, Other, fmt.Errorf("not a JSON object: %w", err)
	}
	if j.PeerID == nil {
		if j.Failure != nil {
			return Announce{}, Refused, nil
		}
		return Announce{}, Other, nil
	}
	var a Announce
	for _, req := range []struct {
		key string
		ok  bool
	}{{"time", j.Time != nil}, {"info_hash", j.InfoHash != nil}, {"peer", j.Peer != nil}, {"event", j.Event != nil},
		{"uploaded", j.Uploaded != nil}, {"downloaded", j.Downloaded != nil}, {"left", j.Left != nil}} {
		if !req.ok {
			return a, AnnounceLine, fmt.Errorf("announce without %q", req.key)
		}
	}
	var err error
	if a.Time, err = time.Parse(time.RFC3339Nano, *j.Time); err != nil {
		return a, AnnounceLine, fmt.Errorf("time %q: %w", *j.Time, err)
	}
	if err := hex20(&a.InfoHash, "info_hash", *j.InfoHash); err != nil {
		return a, AnnounceLine, err
	}
	if err := hex20(&a.PeerID, "peer_id", *j.PeerID); err != nil {
		return a, AnnounceLine, err
	}
	if a.Peer, err = netip.ParseAddrPort(*j.Peer); err != nil {
		return a, AnnounceLine, fmt.Errorf("peer %q: %w", *j.Peer, err)
	}
	if !events[*j.Event] {
		return a, AnnounceLine, fmt.Errorf("unknown event %q", *j.Event)
	}
	if *j.Uploaded < 0 || *j.Downloaded < 0 || *j.Left < -1 {
		return a, AnnounceLine, fmt.Errorf("negative byte count (uploaded %d, downloaded %d, left %d)", *j.Uploaded, *j.Downloaded, *j.Left)
	}
	a.Remote, a.Event = j.Remote, *j.Event
	a.Uploaded, a.Downloaded, a.Left = *j.Uploaded, *j.Downloaded, *j.Left
	a.NumWant, a.Peers = j.NumWant, j.Peers
	return a, AnnounceLine, nil
}

func hex20(dst *[20]byte, key, s string) error {
	if len(s) != 40 {
		return fmt.Errorf("%s %q: want 40 hex digits", key, s)
	}
	if _, err := hex.Decode(dst[:], []byte(s)); err != nil {
		return fmt.Errorf("%s %q: %w", key, s, err)
	}
	return nil
}

// AppendLine appends a's line as the tracker writes it, newline included.
func AppendLine(b []byte, a Announce) []byte {
	rec := struct {
		Time       string `json:"time"`
		InfoHash   string `json:"info_hash"`
		PeerID     string `json:"peer_id"`
		Peer       string `json:"peer"`
		Remote     string `json:"remote"`
		Event      string `json:"event"`
		Uploaded   int64  `json:"uploaded"`
		Downloaded int64  `json:"downloaded"`
		Left       int64  `json:"left"`
		NumWant    int64  `json:"numwant"`
		Peers      int64  `json:"peers"`
	}{a.Time.UTC().Format(time.RFC3339Nano), hex.EncodeToString(a.InfoHash[:]), hex.EncodeToString(a.PeerID[:]),
		a.Peer.String(), a.Remote, a.Event, a.Uploaded, a.Downloaded, a.Left, a.NumWant, a.Peers}
	j, _ := json.Marshal(rec) // strings and numbers only: cannot fail
	return append(append(b, j...), '\n')
}

// AnnounceLog is what ReadAnnounceLog found.
type AnnounceLog struct {
	Announces []Announce // in the order of the log
	Refused   int        // refused requests
	Other     int        // lines the tracker did not write
}

// maxLine bounds a log line; the tracker's are under 400 bytes.
const maxLine = 1 << 20

// ReadAnnounceLog reads an announce log; name is the file's name for errors. It stops at the
// first malformed announce line with a *ParseError.
func ReadAnnounceLog(r io.Reader, name string) (*AnnounceLog, error) {
	var l AnnounceLog
	err := eachLine(r, name, func(n int, line []byte) error {
		a, kind, err := ParseLine(line)
		if err != nil {
			return err
		}
		switch kind {
		case AnnounceLine:
			l.Announces = append(l.Announces, a)
		case Refused:
			l.Refused++
		default:
			l.Other++
		}
		return nil
	})
	return &l, err
}

// eachLine calls fn with each line of r and its number, wrapping fn's errors in a ParseError.
func eachLine(r io.Reader, name string, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Bytes()); err != nil {
			return &ParseError{File: name, Line: n, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &ParseError{File: name, Line: n + 1, Err: fmt.Errorf("line longer than %d bytes", maxLine)}
		}
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

// AccessEntry is one line of the origin's access log (origin.Options.Log):
//
//	2026-12-06T19:57:27.177Z 198.18.0.12:36482 GET "/pkg.tar" 206 32768 0ms "bytes=8421376-8454143"
type AccessEntry struct {
	Time     time.Time // when the reply ended
	Remote   string
	Method   string
	Path     string
	Status   int
	Bytes    int64 // body bytes sent
	Duration time.Duration
	Range    string // "-" without one
}

// ParseAccessLine reads one access log line.
func ParseAccessLine(line string) (AccessEntry, error) {
	var e AccessEntry
	f, rest, err := accessFields(line, 3)
	if err != nil {
		return e, err
	}
	if e.Time, err = time.Parse(time.RFC3339Nano, f[0]); err != nil {
		return e, fmt.Errorf("time %q: %w", f[0], err)
	}
	e.Remote, e.Method = f[1], f[2]
	if e.Path, rest, err = quoted(rest, "path"); err != nil {
		return e, err
	}
	if f, rest, err = accessFields(rest, 3); err != nil {
		return e, err
	}
	if e.Status, err = strconv.Atoi(f[0]); err != nil || e.Status < 100 || e.Status > 999 {
		return e, fmt.Errorf("status %q: want a three-digit number", f[0])
	}
	if e.Bytes, err = strconv.ParseInt(f[1], 10, 64); err != nil || e.Bytes < 0 {
		return e, fmt.Errorf("body bytes %q: want a count", f[1])
	}
	ms, ok := strings.CutSuffix(f[2], "ms")
	d, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || d < 0 {
		return e, fmt.Errorf("duration %q: want milliseconds such as 12ms", f[2])
	}
	e.Duration = time.Duration(d) * time.Millisecond
	if e.Range, rest, err = quoted(rest, "range"); err != nil {
		return e, err
	}
	if rest != "" {
		return e, fmt.Errorf("unexpected %q after the range", rest)
	}
	return e, nil
}

// accessFields splits n space-separated fields off the front of s.
func accessFields(s string, n int) ([]string, string, error) {
	out := make([]string, 0, n)
	for len(out) < n {
		i := 0
		for i < len(s) && s[i] != ' ' {
			i++
		}
		if i == 0 {
			return nil, "", fmt.Errorf("want %d more fields before %q", n-len(out), s)
		}
		out = append(out, s[:i])
		s = s[min(i+1, len(s)):]
	}
	return out, s, nil
}

// quoted reads a Go-quoted string (origin writes paths and ranges with %q) off the front of s.
func quoted(s, what string) (string, string, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", fmt.Errorf("%s: want a quoted string at %q", what, s)
	}
	v, _ := strconv.Unquote(q)
	rest := s[len(q):]
	if rest != "" {
		if rest[0] != ' ' {
			return "", "", fmt.Errorf("%s: want a space after %s", what, q)
		}
		rest = rest[1:]
	}
	return v, rest, nil
}

// ReadAccessLog reads an access log; name is the file's name for errors. Blank lines are
// skipped; any other line must parse.
func ReadAccessLog(r io.Reader, name string) ([]AccessEntry, error) {
	var out []AccessEntry
	err := eachLine(r, name, func(n int, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		e, err := ParseAccessLine(string(line))
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// ReadStats reads the origin's /.pkgsync/stats JSON; name is the file's name or URL for errors.
func ReadStats(r io.Reader, name string) (*origin.Stats, error) {
	var st origin.Stats
	dec := json.NewDecoder(r)
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: not the origin's stats JSON: %w", name, err)
	}
	return &st, nil
}
