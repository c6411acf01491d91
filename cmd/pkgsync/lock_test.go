package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/origin"
)

// TestHelperPkgsync is not a test of its own: startPkgsync runs the test binary again with it,
// as a pkgsync process whose command line follows "--". Without PKGSYNC_TEST_HELPER it returns.
func TestHelperPkgsync(t *testing.T) {
	if os.Getenv("PKGSYNC_TEST_HELPER") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(context.Background(), args, os.Stdout, os.Stderr))
}

// helperProcess is pkgsync running as a process of its own.
type helperProcess struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func startPkgsync(t *testing.T, args ...string) *helperProcess {
	t.Helper()
	p := &helperProcess{}
	p.cmd = exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperPkgsync$", "--"}, args...)...)
	p.cmd.Env = append(os.Environ(), "PKGSYNC_TEST_HELPER=1")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// gatedOrigin serves dir; requests for the paths in gates wait until their gate is opened.
type gatedOrigin struct {
	base  string
	gates map[string]chan struct{}
	once  map[string]*sync.Once
}

func startGatedOrigin(t *testing.T, dir string, paths ...string) *gatedOrigin {
	t.Helper()
	srv, err := origin.New(dir, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedOrigin{gates: map[string]chan struct{}{}, once: map[string]*sync.Once{}}
	for _, p := range paths {
		g.gates[p] = make(chan struct{})
		g.once[p] = new(sync.Once)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch := g.gates[r.URL.Path]; ch != nil {
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			}
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		for p := range g.gates {
			g.open(p)
		}
		ts.Close()
		srv.Close()
	})
	g.base = ts.URL + "/"
	return g
}

func (g *gatedOrigin) open(path string) { g.once[path].Do(func() { close(g.gates[path]) }) }

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// lockHeldBy reports whether path holds pid, as the holder of a lock writes it.
func lockHeldBy(path string, pid int) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid)
}

// TestUpdateLock: a real pkgsync process holds OUT.lock while its download waits on the origin.
// A second update of the same OUT exits at once with status 3 naming the holder's PID; one
// with --lock-wait shorter than the holder's run gives up the same way after it; one with a
// long --lock-wait waits, then finds OUT current. A holder killed with SIGKILL leaves
// OUT.lock behind, unlocked: the next run goes ahead.
func TestUpdateLock(t *testing.T) {
	v2 := randomBytes(300, 1<<20+9)
	pub := t.TempDir()
	o := startGatedOrigin(t, pub, "/slow.tar", "/crash.tar")
	for _, name := range []string{"slow.tar", "crash.tar"} {
		writeFile(t, filepath.Join(pub, name), v2)
		mustPkgsync(t, "make", filepath.Join(pub, name), "--url", o.base+name)
	}
	node := t.TempDir()
	out := filepath.Join(node, "pkg.tar")
	update := []string{"update", "--no-swarm", "-o", out, o.base + "slow.tar.torrent"}

	holder := startPkgsync(t, update...)
	pid := holder.cmd.Process.Pid
	waitFor(t, "the first update to take "+out+".lock", func() bool { return lockHeldBy(out+".lock", pid) })

	t.Run("second run exits at once", func(t *testing.T) {
		start := time.Now()
		code, _, errs := pkgsync(t, update...)
		if code != 3 || !strings.Contains(errs, fmt.Sprintf("PID %d", pid)) || !strings.Contains(errs, out+".lock") {
			t.Fatalf("exit %d, stderr %q; want 3 naming %s.lock and PID %d", code, errs, out, pid)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s to give up without --lock-wait", d)
		}
	})
	t.Run("short --lock-wait gives up", func(t *testing.T) {
		start := time.Now()
		code, _, errs := pkgsync(t, append([]string{update[0], "--lock-wait", "300ms"}, update[1:]...)...)
		if code != 3 || !strings.Contains(errs, fmt.Sprintf("PID %d", pid)) || !strings.Contains(errs, "after 300ms") {
			t.Fatalf("exit %d, stderr %q; want 3 naming PID %d after 300ms", code, errs, pid)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("gave up after %s, before --lock-wait", d)
		}
	})
	t.Run("long --lock-wait waits for the holder", func(t *testing.T) {
		var stdout bytes.Buffer
		var stderr lockedLog
		done := make(chan int)
		go func() {
			args := append([]string{update[0], "--lock-wait", "60s", "--json"}, update[1:]...)
			done <- run(context.Background(), args, &stdout, &stderr)
		}()
		// Without -v too: a wait of minutes must not look like a hang.
		waitFor(t, "the waiting run to say it waits", func() bool { return strings.Contains(stderr.String(), " wait=1m0s") })
		o.open("/slow.tar")
		if err := holder.cmd.Wait(); err != nil {
			t.Fatalf("the first update: %v\n%s", err, holder.stderr.String())
		}
		var code int
		select {
		case code = <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("the waiting run did not finish")
		}
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if res := parseUpdateJSON(t, stdout.String()); !res.UpToDate {
			t.Fatalf("the waiting run did not find %s current: %+v", out, res)
		}
		sameFile(t, out, v2)
		if _, err := os.Stat(out + ".lock"); !os.IsNotExist(err) {
			t.Fatalf("%s.lock left after both runs ended (err %v)", out, err)
		}
	})
	t.Run("SIGKILL releases the lock", func(t *testing.T) {
		out := filepath.Join(node, "crash.tar")
		update := []string{"update", "--no-swarm", "-o", out, o.base + "crash.tar.torrent"}
		p := startPkgsync(t, update...)
		waitFor(t, "the update to take "+out+".lock", func() bool { return lockHeldBy(out+".lock", p.cmd.Process.Pid) })
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if !lockHeldBy(out+".lock", p.cmd.Process.Pid) {
			t.Fatalf("%s.lock should still name the killed process", out)
		}
		o.open("/crash.tar")
		mustPkgsync(t, update...)
		sameFile(t, out, v2)
	})
}
