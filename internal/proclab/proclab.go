// Package proclab runs the processes of an end-to-end test: the pkgsync binary built once per
// test binary, stock tools, servers, each in its own process group, killed in the test's
// cleanup and shown in the log when the test failed. It has a home of its own because two
// suites need exactly this (interop, with the stock clients, and faults, with kills and bad
// disks), and a second copy of process handling drifts.
package proclab

import (
	"bytes"
	"context"
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
)

// BuildPkgsync builds cmd/pkgsync into a new temporary folder for a TestMain and returns the
// binary's path and a function that removes the folder. prefix names the folder and the
// errors.
func BuildPkgsync(prefix string) (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "pkgsync-"+prefix+"-")
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", prefix, err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	bin = filepath.Join(dir, "pkgsync")
	build := exec.Command("go", "build", "-o", bin, "github.com/pkgsync/pkgsync/cmd/pkgsync")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("%s: building pkgsync into %s: %w", prefix, bin, err)
	}
	return bin, cleanup, nil
}

// RunWithPkgsync is a TestMain's body: it builds pkgsync (BuildPkgsync), sets *bin to the
// binary, runs the tests and removes the binary. It returns the exit status for os.Exit.
func RunWithPkgsync(m *testing.M, prefix string, bin *string) int {
	b, cleanup, err := BuildPkgsync(prefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*bin = b
	return m.Run()
}

// Lab is one test's working folder and deadline.
type Lab struct {
	T   testing.TB
	Dir string
	Ctx context.Context
}

// New makes the test's folder before any process starts, so that the folder is removed only
// after every process of the test is gone (cleanups run last-registered first), and a context
// that ends after timeout.
func New(t testing.TB, timeout time.Duration) *Lab {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return &Lab{T: t, Dir: dir, Ctx: ctx}
}

// Path returns a path in the lab folder, making its parent folders.
func (l *Lab) Path(elem ...string) string {
	l.T.Helper()
	p := filepath.Join(append([]string{l.Dir}, elem...)...)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		l.T.Fatal(err)
	}
	return p
}

// Mkdir makes the lab folder name and returns its path.
func (l *Lab) Mkdir(name string) string {
	l.T.Helper()
	p := filepath.Join(l.Dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		l.T.Fatal(err)
	}
	return p
}

// Write writes data to the lab path elem and returns the path.
func (l *Lab) Write(data []byte, elem ...string) string {
	l.T.Helper()
	p := l.Path(elem...)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		l.T.Fatal(err)
	}
	return p
}

// Buffer collects a process's output while the test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is a subprocess of a test, killed with its process group in the test's cleanup.
type Proc struct {
	Name           string
	Argv           []string
	Cmd            *exec.Cmd
	Stdout, Stderr Buffer
	exited         chan struct{}
	err            error // set before exited closes
}

// Start runs argv in the lab folder, in its own process group. The cleanup kills the group (so
// aria2c's hooks and anything else the process started go too) and, if the test failed, logs
// the output.
func (l *Lab) Start(name string, argv ...string) *Proc {
	l.T.Helper()
	p := &Proc{Name: name, Argv: argv, exited: make(chan struct{})}
	p.Cmd = exec.Command(argv[0], argv[1:]...)
	p.Cmd.Dir = l.Dir
	p.Cmd.Stdout, p.Cmd.Stderr = &p.Stdout, &p.Stderr
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.Cmd.WaitDelay = 2 * time.Second
	if err := p.Cmd.Start(); err != nil {
		l.T.Fatalf("starting %s (%s): %v", name, argv[0], err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.exited)
	}()
	t := l.T
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- %s: %s (%v)\nstdout:\n%s\nstderr:\n%s", name, strings.Join(argv, " "), p.err,
				Tail(p.Stdout.String()), Tail(p.Stderr.String()))
		}
	})
	return p
}

// Tail returns the last 40 lines of s.
func Tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-40)}, lines[len(lines)-40:]...)
	}
	return strings.Join(lines, "\n")
}

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is what waiting for the process returned; valid once Exited is closed.
func (p *Proc) Err() error {
	<-p.exited
	return p.err
}

// Kill ends the process group with SIGKILL and waits for the process.
func (p *Proc) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Wait waits for the process to exit and returns an error unless it exited with status 0.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.exited:
	case <-ctx.Done():
		return fmt.Errorf("%s: still running: %w", p.Name, ctx.Err())
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w\nstderr:\n%s", p.Name, p.err, Tail(p.Stderr.String()))
	}
	return nil
}

// ExitCode waits for the process and returns its exit status (-1: killed by a signal).
func (p *Proc) ExitCode(ctx context.Context) (int, error) {
	select {
	case <-p.exited:
	case <-ctx.Done():
		return 0, fmt.Errorf("%s: still running: %w\nstderr:\n%s", p.Name, ctx.Err(), Tail(p.Stderr.String()))
	}
	return p.Cmd.ProcessState.ExitCode(), nil
}

// WaitOutput polls the process's stderr and stdout every poll until re matches, and returns
// the submatches.
func (p *Proc) WaitOutput(ctx context.Context, re *regexp.Regexp, poll time.Duration) ([]string, error) {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(p.Stderr.String() + p.Stdout.String()); m != nil {
			return m, nil
		}
		select {
		case <-p.exited:
			if m := re.FindStringSubmatch(p.Stderr.String() + p.Stdout.String()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("%s exited (%v) before printing %q\nstderr:\n%s", p.Name, p.err, re, Tail(p.Stderr.String()))
		case <-ctx.Done():
			return nil, fmt.Errorf("%s printed no %q: %w", p.Name, re, ctx.Err())
		case <-tick.C:
		}
	}
}

// SameFile checks that path holds want, and names the first differing offset when not.
func SameFile(t testing.TB, path string, want []byte) {
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
