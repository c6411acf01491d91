package faults

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vgen "github.com/pkgsync/pkgsync/internal/versions"
)

// pkgsyncBin is the pkgsync binary that TestMain builds once for the whole test binary.
var pkgsyncBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pkgsync-faults-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	pkgsyncBin = filepath.Join(dir, "pkgsync")
	build := exec.Command("go", "build", "-o", pkgsyncBin, "github.com/pkgsync/pkgsync/cmd/pkgsync")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "faults: building pkgsync into %s: %v\n", pkgsyncBin, err)
		return 1
	}
	return m.Run()
}

// testTimeout bounds every test: each waits for its processes under one context.
const testTimeout = 120 * time.Second

// lab is one test's working folder and deadline.
type lab struct {
	t   *testing.T
	dir string
	ctx context.Context
}

// newLab makes the test's folder before any process starts, so that the folder is removed only
// after every process of the test is gone (cleanups run last-registered first).
func newLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return &lab{t: t, dir: dir, ctx: ctx}
}

// path returns a path in the lab folder, making its parent folders.
func (l *lab) path(elem ...string) string {
	l.t.Helper()
	p := filepath.Join(append([]string{l.dir}, elem...)...)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// write writes data to the lab path elem and returns the path.
func (l *lab) write(data []byte, elem ...string) string {
	l.t.Helper()
	p := l.path(elem...)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a subprocess of a test, killed with its process group in the test's cleanup.
type proc struct {
	name           string
	argv           []string
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	exited         chan struct{}
	err            error // set before exited closes
}

// start runs argv in its own process group. The cleanup kills the group and, if the test
// failed, logs the output.
func (l *lab) start(name string, argv ...string) *proc {
	l.t.Helper()
	p := &proc{name: name, argv: argv, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = l.dir
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		l.t.Fatalf("starting %s (%s): %v", name, argv[0], err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t := l.t
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s: %s (%v)\nstdout:\n%s\nstderr:\n%s", name, strings.Join(argv, " "), p.err,
				tail(p.stdout.String()), tail(p.stderr.String()))
		}
	})
	return p
}

// pkgsync starts the pkgsync binary with args.
func (l *lab) pkgsync(name string, args ...string) *proc {
	l.t.Helper()
	return l.start(name, append([]string{pkgsyncBin}, args...)...)
}

// tail returns the last 40 lines of s.
func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-40)}, lines[len(lines)-40:]...)
	}
	return strings.Join(lines, "\n")
}

// kill ends the process group with SIGKILL and waits for the process.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// exitCode waits for the process and returns its exit status (-1: killed by a signal).
func (p *proc) exitCode(ctx context.Context) (int, error) {
	select {
	case <-p.exited:
	case <-ctx.Done():
		return 0, fmt.Errorf("%s: still running: %w\nstderr:\n%s", p.name, ctx.Err(), tail(p.stderr.String()))
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// waitOutput polls the process's stderr until re matches, every millisecond (the rename
// window test kills at moments measured from a log line).
func (p *proc) waitOutput(ctx context.Context, re *regexp.Regexp) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if re.MatchString(p.stderr.String()) {
			return nil
		}
		select {
		case <-p.exited:
			if re.MatchString(p.stderr.String()) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q\nstderr:\n%s", p.name, p.err, re, tail(p.stderr.String()))
		case <-ctx.Done():
			return fmt.Errorf("%s printed no %q: %w", p.name, re, ctx.Err())
		case <-tick.C:
		}
	}
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
	l.t.Helper()
	p := l.pkgsync(name, args...)
	code, err := p.exitCode(l.ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	if code != 0 {
		l.t.Fatalf("%s: exit status %d\nstderr:\n%s", name, code, tail(p.stderr.String()))
	}
	var s summary
	if err := json.Unmarshal([]byte(p.stdout.String()), &s); err != nil {
		l.t.Fatalf("%s: update --json printed %q: %v", name, p.stdout.String(), err)
	}
	return s
}

// failedUpdate runs an update that must fail: exit status 1 and one line on stderr (besides
// the log records, text as -v writes them), which it returns.
func (l *lab) failedUpdate(name string, args ...string) string {
	l.t.Helper()
	p := l.pkgsync(name, args...)
	code, err := p.exitCode(l.ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	msg := errorLines(p.stderr.String())
	if code != 1 {
		l.t.Fatalf("%s: exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", name, code, p.stdout.String(), tail(p.stderr.String()))
	}
	if len(msg) != 1 {
		l.t.Fatalf("%s: want one error line, got %d:\n%s", name, len(msg), strings.Join(msg, "\n"))
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

// sameFile checks that path holds want.
func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	if !bytes.Equal(got, want) {
		first := 0
		for first < min(len(got), len(want)) && got[first] == want[first] {
			first++
		}
		t.Errorf("%s: %d bytes, want %d; first difference at offset %d", path, len(got), len(want), first)
	}
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
