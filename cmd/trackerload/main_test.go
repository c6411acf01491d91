package main

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/tracker/loadgen"
)

// TestProcReaders reads this process's own statistics the way trackerload reads the server's.
func TestProcReaders(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("trackerload reads /proc, which only Linux has")
	}
	pid := os.Getpid()
	for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); {
		// Burn a little CPU, so that the counters have something to count.
	}
	for _, c := range []struct {
		name string
		read func(int) (float64, error)
		min  float64
	}{
		{"cpu", cpuOf, 0.01},
		{"system cpu", func(pid int) (float64, error) { _, sys, err := cpuSplitOf(pid); return sys, err }, 0},
		{"run-queue wait", runQueueWait, 0},
		{"rss", func(pid int) (float64, error) { n, err := rssOf(pid); return float64(n), err }, 1 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := c.read(pid)
			if err != nil || v < c.min {
				t.Fatalf("got %v (%v), want at least %v", v, err, c.min)
			}
			if _, err := c.read(0); err == nil {
				t.Errorf("pid 0 (no server) gave no error")
			}
		})
	}
}

// TestPrintMedians checks the table: the median of each column, the open loop's row only when
// there is one.
func TestPrintMedians(t *testing.T) {
	run := func(rate float64, p99 time.Duration) runResult {
		res := loadgen.Result{Announces: 1000, Elapsed: time.Second, P50: time.Millisecond, P99: p99}
		open := res
		open.Offered = 20000
		return runResult{
			reg:        res,
			closed:     phase{res: res, serverCPU: 1000 / rate, serverSys: 400 / rate, clientCPU: 0.01},
			open:       phase{res: open, serverCPU: 1000 / rate, serverSys: 400 / rate, clientCPU: 0.02},
			rssPerPeer: 900,
		}
	}
	runs := []runResult{run(20000, 3*time.Millisecond), run(10000, 9*time.Millisecond), run(30000, 4*time.Millisecond)}
	for _, c := range []struct {
		open bool
		want []string
	}{
		{false, []string{"| replay, closed loop | 1000 | 20000 | 50.0 µs (20.0 µs) | 1000 µs | 4000 µs | 10.0 µs |"}},
		{true, []string{"| replay, closed loop |", "| replay, open loop at 20000/s | 1000 | 20000 | 50.0 µs (20.0 µs) | 1000 µs | 4000 µs | 20.0 µs |"}},
	} {
		var b strings.Builder
		printMedians(&b, runs, c.open)
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("open %v: no %q in\n%s", c.open, w, b.String())
			}
		}
		if got := strings.Contains(b.String(), "open loop"); got != c.open {
			t.Errorf("open %v: open-loop row shown: %v", c.open, got)
		}
	}
}
