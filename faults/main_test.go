package faults

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/proclab"
	vgen "github.com/pkgsync/pkgsync/internal/versions"
)

// pkgsyncBin is the pkgsync binary that TestMain builds once for the whole test binary.
var pkgsyncBin string

func TestMain(m *testing.M) {
	os.Exit(proclab.RunWithPkgsync(m, "faults", &pkgsyncBin))
}

// testTimeout bounds every test: each waits for its processes under one context.
const testTimeout = 120 * time.Second

// lab is one test's working folder, deadline and processes.
type lab struct{ *proclab.Lab }

// newLab makes the test's folder before any process starts (see proclab.New).
func newLab(t *testing.T) *lab {
	t.Helper()
	return &lab{proclab.New(t, testTimeout)}
}

// pkgsync starts the pkgsync binary with args.
func (l *lab) pkgsync(name string, args ...string) *proclab.Proc {
	l.T.Helper()
	return l.Start(name, append([]string{pkgsyncBin}, args...)...)
}

// summary is `pkgsync update --json`.
type summary struct {
	Output           string  `json:"output"`
	UpToDate         bool    `json:"up_to_date"`
	BytesTotal       int64   `json:"bytes_total"`
	BytesReused      int64   `json:"bytes_reused"`
	BytesFromPeers   int64   `json:"bytes_from_peers"`
	BytesFromOrigin  int64   `json:"bytes_from_origin"`
	RequestsToOrigin int64   `json:"requests_to_origin"`
	Seconds          float64 `json:"seconds"`
}

// missing is what the node could not rebuild from its old data.
func (s summary) missing() int64 { return s.BytesTotal - s.BytesReused }

// updateArgs are the flags of every update the suite runs: -v so that a failure shows the
// steps, --json for the figures.
func updateArgs(out, old string, extra ...string) []string {
	args := []string{"update", "-v", "--json", "-o", out, "--old", old}
	return append(args, extra...)
}

// mustUpdate runs an update to the end, checks it exited 0 and returns its summary.
func (l *lab) mustUpdate(name string, args ...string) summary {
	l.T.Helper()
	p := l.pkgsync(name, args...)
	code, err := p.ExitCode(l.Ctx)
	if err != nil {
		l.T.Fatal(err)
	}
	if code != 0 {
		l.T.Fatalf("%s: exit status %d\nstderr:\n%s", name, code, proclab.Tail(p.Stderr.String()))
	}
	var s summary
	if err := json.Unmarshal([]byte(p.Stdout.String()), &s); err != nil {
		l.T.Fatalf("%s: update --json printed %q: %v", name, p.Stdout.String(), err)
	}
	return s
}

// failedUpdate runs an update that must fail: exit status 1 and one line on stderr (besides
// the log records, text as -v writes them), which it returns.
func (l *lab) failedUpdate(name string, args ...string) string {
	l.T.Helper()
	p := l.pkgsync(name, args...)
	code, err := p.ExitCode(l.Ctx)
	if err != nil {
		l.T.Fatal(err)
	}
	msg := errorLines(p.Stderr.String())
	if code != 1 {
		l.T.Fatalf("%s: exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", name, code, p.Stdout.String(), proclab.Tail(p.Stderr.String()))
	}
	if len(msg) != 1 {
		l.T.Fatalf("%s: want one error line, got %d:\n%s", name, len(msg), strings.Join(msg, "\n"))
	}
	return msg[0]
}

// logLine is a log record: -v's, the BitTorrent library's, a warning (--log-format text).
var logLine = regexp.MustCompile(`^time=\S+ level=[A-Z]+ msg=`)

// errorLines returns the lines of stderr that are not log lines.
func errorLines(stderr string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimRight(stderr, "\n"), "\n") {
		if line != "" && !logLine.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

// fileSum is the SHA-256 of path, "" if it cannot be read.
func fileSum(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// Package versions: v2 is v1 with 36 edits of 20-100 KB, so that about a third of it is
// fetched and a kill can land at any fraction of the transfer.
const pkgSize = 6 << 20

func versions() (v1, v2, v3 []byte) {
	v1 = vgen.Random(1, pkgSize)
	v2 = vgen.Edit(v1, 2, 36, 20000, 100000)
	v3 = vgen.Edit(v2, 3, 36, 20000, 100000)
	return v1, v2, v3
}

// sumOf is the SHA-256 of b, as fileSum gives it.
func sumOf(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
