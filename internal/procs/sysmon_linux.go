//go:build linux

package procs

import (
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// QuietMonitor starts the process again with Go's system monitor kept from its 20 µs polling
// (see quietEnv): it replaces the running image (execve of its executable) with the same
// arguments and environment plus GODEBUG's schedtrace, and does not return then. It returns,
// and the process goes on as it is, when that setting is not wanted or not safe (quietEnv), or
// the exec fails. Call it first thing in main, before any goroutine, file or socket is opened.
func QuietMonitor() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return
	}
	old, had := os.LookupEnv("GODEBUG")
	env, ok := quietEnv(old, time.Duration(ts.Nano()))
	if !ok {
		return
	}
	// The executable's own path, not /proc/self/exe, whose name ("exe") would become the
	// process's name in ps, top and pgrep. A binary replaced since it started is left alone.
	exe, err := os.Executable()
	if err != nil || strings.HasSuffix(exe, " (deleted)") {
		return
	}
	if err := os.Setenv("GODEBUG", env); err != nil {
		return
	}
	syscall.Exec(exe, os.Args, os.Environ()) // returns only on failure
	if had {
		os.Setenv("GODEBUG", old)
	} else {
		os.Unsetenv("GODEBUG")
	}
}
