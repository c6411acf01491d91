package procs

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestGovernor(t *testing.T) {
	tests := []struct {
		name  string
		cores []float64 // what each interval used
		want  []int     // the Ps after each
	}{
		{"busy stays on all", []float64{1.5, 0.5, 2, 0.9}, []int{4, 4, 4, 4}},
		{"down to one after DownAfter quiet intervals",
			[]float64{0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.1, 0.74},
			[]int{4, 4, 4, 4, 4, 4, 4, 4, 4, 1, 1, 1}},
		{"a busy interval restarts the count",
			[]float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1},
			[]int{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 1}},
		{"a saturated P takes all again",
			[]float64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.2, 0.75, 1.9},
			[]int{4, 4, 4, 4, 4, 4, 4, 4, 4, 1, 1, 4, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := governor{max: 4, cur: 4}
			for i, c := range tt.cores {
				if got := g.next(c); got != tt.want[i] {
					t.Fatalf("interval %d (%.2f cores): %d Ps, want %d", i, c, got, tt.want[i])
				}
			}
		})
	}
}

// fakeCPU is a process CPU clock the test advances.
type fakeCPU struct {
	mu   sync.Mutex
	used time.Duration
	sets []int
}

func (f *fakeCPU) cpu() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used, true
}

func (f *fakeCPU) burn(d time.Duration) {
	f.mu.Lock()
	f.used += d
	f.mu.Unlock()
}

func (f *fakeCPU) set(n int) {
	f.mu.Lock()
	f.sets = append(f.sets, n)
	f.mu.Unlock()
}

func (f *fakeCPU) lastSet() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sets) == 0 {
		return 0
	}
	return f.sets[len(f.sets)-1]
}

// The loop, started on all Ps (none set) or on one: down to one once the process idles for
// DownAfter intervals; all again when it burns a core's worth of CPU time per interval; one
// when it stops.
func TestStartLoop(t *testing.T) {
	for _, tt := range []struct {
		name  string
		low   bool
		first int // the Ps set at start, 0 for none
	}{{"all Ps first", false, 0}, {"one P first", true, 1}} {
		t.Run(tt.name, func(t *testing.T) {
			var f fakeCPU
			const interval = 5 * time.Millisecond
			stop := start(t.Context(), 3, tt.low, interval, f.cpu, f.set)
			defer stop()
			if got := f.lastSet(); got != tt.first {
				t.Fatalf("Ps set to %d at start, want %d", got, tt.first)
			}
			waitFor := func(want int, burn time.Duration) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for f.lastSet() != want {
					if time.Now().After(deadline) {
						t.Fatalf("Ps never became %d (set so far: %v)", want, f.sets)
					}
					f.burn(burn)
					time.Sleep(interval / 5)
				}
			}
			waitFor(1, 0)
			// Burning 10 intervals of CPU per fifth of an interval is far above a core.
			waitFor(3, 10*interval)
			waitFor(1, 0)
		})
	}
}

func TestEnabled(t *testing.T) {
	for env, want := range map[string]bool{"": true, "1": false, "2": false, "off": false} {
		if got := enabled(env); got != want {
			t.Errorf("GOMAXPROCS=%q: governor %v, want %v", env, got, want)
		}
	}
}

func TestStartNoGovernor(t *testing.T) {
	for _, tt := range []struct {
		name string
		max  int
		ok   bool
	}{
		{"one P anyway", 1, true},
		{"no CPU clock", 4, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sets []int
			stop := start(context.Background(), tt.max, true, time.Millisecond,
				func() (time.Duration, bool) { return 0, tt.ok }, func(n int) { sets = append(sets, n) })
			stop()
			if len(sets) != 0 {
				t.Fatalf("Ps set to %v", sets)
			}
		})
	}
	t.Run("GOMAXPROCS in the environment", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "1")
		before := runtime.GOMAXPROCS(0)
		Start(context.Background(), true)() // a no-op: nothing to stop
		if got := runtime.GOMAXPROCS(0); got != before {
			t.Fatalf("%d Ps after Start, were %d", got, before)
		}
	})
}

// The process's CPU clock moves when it works.
func TestCPUTime(t *testing.T) {
	before, ok := cpuTime()
	if !ok {
		t.Fatal("getrusage failed")
	}
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++
	}
	after, _ := cpuTime()
	if after <= before {
		t.Fatalf("CPU time %v then %v after a busy loop of %d turns", before, after, x)
	}
}
