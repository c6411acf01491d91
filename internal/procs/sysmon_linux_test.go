package procs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// uptime is the monotonic clock QuietMonitor reads.
func uptime(t *testing.T) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// The process starts again, as itself, with schedtrace set, prints nothing of the runtime's
// trace, and keeps its PID and its name; a GODEBUG that sets schedtrace is left alone.
func TestQuietMonitor(t *testing.T) {
	tests := []struct {
		name    string
		godebug string // "-": unset
	}{
		{"GODEBUG unset", "-"},
		{"GODEBUG with other settings", "gctrace=0"},
		{"schedtrace set by the operator", "schedtrace=0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "PROCS_TEST_QUIET=1")
			if tc.godebug == "-" {
				cmd.Env = append(cmd.Env, "GODEBUG=") // the last one wins
			} else {
				cmd.Env = append(cmd.Env, "GODEBUG="+tc.godebug)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%v; stderr: %s", err, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("the process wrote to stderr: %q", stderr.String())
			}
			godebug := tc.godebug
			if godebug == "-" {
				godebug = ""
			}
			want := godebug
			if env, ok := quietEnv(godebug, uptime(t)); ok {
				want = env
			}
			comm := filepath.Base(os.Args[0])
			if len(comm) > 15 {
				comm = comm[:15] // the kernel keeps 15 bytes of a process's name
			}
			if got, wantOut := stdout.String(), fmt.Sprintf("%d %s %s", pid, comm, want); got != wantOut {
				t.Errorf("the process printed %q, want %q (PID, name and GODEBUG)", got, wantOut)
			}
		})
	}
}
