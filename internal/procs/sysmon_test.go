package procs

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestQuietEnv(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name    string
		godebug string
		uptime  time.Duration
		want    string
		wantOK  bool
	}{
		{"nothing set", "", time.Hour, "schedtrace=2147483647", true},
		{"other settings kept", "madvdontneed=1,gctrace=0", 3 * day, "madvdontneed=1,gctrace=0,schedtrace=2147483647", true},
		{"the operator's schedtrace obeyed", "schedtrace=0", time.Hour, "", false},
		{"the operator's schedtrace among others", "gctrace=1, schedtrace=1000", time.Hour, "", false},
		{"a key that only ends in schedtrace is another", "xschedtrace=1", time.Hour, "xschedtrace=1,schedtrace=2147483647", true},
		{"up 23 days: the trace cannot print within the margin", "", 23 * day, "schedtrace=2147483647", true},
		{"up 24 days: a process could live to print it", "", 24 * day, "", false},
		{"up 30 days: the trace would print at once", "", 30 * day, "", false},
		{"a clock that makes no sense", "", -time.Second, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := quietEnv(tc.godebug, tc.uptime)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("quietEnv(%q, %v) = %q, %t; want %q, %t", tc.godebug, tc.uptime, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestMain lets the test binary play a command that calls QuietMonitor (TestQuietMonitor).
func TestMain(m *testing.M) {
	if os.Getenv("PROCS_TEST_QUIET") == "1" {
		QuietMonitor()
		comm, _ := os.ReadFile("/proc/self/comm")
		fmt.Printf("%d %s %s", os.Getpid(), strings.TrimSpace(string(comm)), os.Getenv("GODEBUG"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}
