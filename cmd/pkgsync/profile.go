package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile of the whole run to the file that
// PKGSYNC_CPUPROFILE names, with the process ID appended so that the many
// nodes of a benchmark do not overwrite one another. It is for developers
// tuning pkgsync (swarmbench passes the variable through to its nodes), so it
// is an environment variable rather than a flag every user sees in --help.
func startProfile() (stop func()) {
	path := os.Getenv("PKGSYNC_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "pkgsync: PKGSYNC_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "pkgsync: PKGSYNC_CPUPROFILE: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
