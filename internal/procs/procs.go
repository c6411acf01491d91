// Package procs runs a pkgsync process on one of Go's Ps (GOMAXPROCS 1) while its work needs
// less than a core, and on all of them once it needs more.
//
// Why: at the link speeds of a build farm's fan-out, a node's CPU follows how often it wakes
// up, not the bytes it moves (docs/BENCHMARKS.md, issue 20). With two or more Ps, a goroutine
// made ready by a wake-up can start an idle P's thread, which spins looking for work to steal
// (runtime.findRunnable: 19% of the CPU profile of a 16-node fan-out's nodes) and then sleeps
// again on a futex. On one P that traffic is gone: in swarmbench --short's 16-node fan-out,
// GOMAXPROCS=1 in the nodes' environment used 0.79 and 0.92 CPU s per node where the default
// used 0.95 and 1.00, run alternately. But an update that moves hundreds of MB/s (the pair
// of issue 20) hashes and copies more than one core can, and the delta scan of a large old
// version runs on every core; fixing GOMAXPROCS at 1 would hold them to one core.
//
// So Start runs a governor that samples the process's CPU time (getrusage) every Interval:
//   - on all the Ps (the GOMAXPROCS the runtime chose at start, which follows the CPU quota of
//     a container), it goes down to one after DownAfter intervals in a row that each used less
//     than DownCores of a core;
//   - on one P, it gives the process all of them again after an interval that used UpCores of
//     a core or more: the one P is (nearly) saturated.
//
// A command that waits on the network most of its run (update, sync, seed, serve, tracker)
// starts on one P; others (make) start on all, so that work that needs them from the first
// moment is not held back 200 ms: on all of them, pkgbench make --size 256M took 0.37 s, as
// with GOMAXPROCS=2, and 0.45 s starting on one. A process that is denied the CPU by others
// (a loaded machine) uses little of it whatever its Ps, and stays on one, where more would only
// spin. GOMAXPROCS set in the environment is obeyed: no governor runs.
//
// For the same reason QuietMonitor (sysmon.go) starts update and sync again with Go's system
// monitor polling every 10 ms rather than waking at every system call after an idle moment.
package procs

import (
	"context"
	"os"
	"runtime"
	"syscall"
	"time"
)

// The governor's settings (see the package doc).
const (
	Interval  = 200 * time.Millisecond
	UpCores   = 0.75
	DownCores = 0.5
	DownAfter = 10
)

// Start starts the governor, on one P when low is set (a process that waits on the network)
// and on all of them otherwise, and returns the function that stops it. It does nothing (and
// returns a no-op) when the environment sets GOMAXPROCS (enabled) or the process has one P
// anyway.
func Start(ctx context.Context, low bool) (stop func()) {
	if !enabled(os.Getenv("GOMAXPROCS")) {
		return func() {}
	}
	return start(ctx, runtime.GOMAXPROCS(0), low, Interval, cpuTime, func(n int) { runtime.GOMAXPROCS(n) })
}

// enabled reports whether the governor runs, given the GOMAXPROCS environment variable: only
// when it is not set.
func enabled(env string) bool { return env == "" }

// start runs the governor for a process whose most Ps is max, reading the process's CPU time
// with cpu and setting its Ps with set, every interval, until ctx ends or stop is called. With
// low, it sets one P before it returns; else it leaves max. When it stops it leaves the Ps as
// they are.
func start(ctx context.Context, max int, low bool, interval time.Duration, cpu func() (time.Duration, bool), set func(int)) (stop func()) {
	if max <= 1 {
		return func() {}
	}
	if _, ok := cpu(); !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	g := governor{max: max, cur: max}
	if low {
		g.cur = 1
		set(1)
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		last, _ := cpu()
		lastAt := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				used, ok := cpu()
				if !ok {
					return
				}
				wall := now.Sub(lastAt)
				if wall <= 0 {
					continue
				}
				cores := float64(used-last) / float64(wall)
				last, lastAt = used, now
				if before := g.cur; g.next(cores) != before {
					set(g.cur)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// governor decides the number of Ps from the cores each interval used.
type governor struct {
	max, cur int
	low      int // intervals in a row, on max Ps, that used less than DownCores
}

// next takes the cores the last interval used and returns the Ps for the next one.
func (g *governor) next(cores float64) int {
	if g.cur == 1 {
		if cores >= UpCores {
			g.cur, g.low = g.max, 0
		}
		return g.cur
	}
	if cores >= DownCores {
		g.low = 0
		return g.cur
	}
	if g.low++; g.low >= DownAfter {
		g.cur, g.low = 1, 0
	}
	return g.cur
}

// cpuTime is the user and system CPU time of the whole process so far.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
