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
		{"idle stays on one", []float64{0, 0.1, 0.74, 0.3}, []int{1, 1, 1, 1}},
		{"a saturated P takes all", []float64{0.2, 0.75, 1.9}, []int{1, 4, 4}},
		{"back to one after DownAfter quiet intervals",
			[]float64{0.9, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4},
			[]int{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 1}},
		{"a busy interval restarts the count",
			[]float64{0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1},
			[]int{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 1}},
		{"up again after coming down",
			[]float64{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.8},
			[]int{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 1, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := governor{max: 4, cur: 1}
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

// The loop: one P at once; all of them once the process burns a core's worth of CPU time per
// interval; one again when it stops.
func TestStartLoop(t *testing.T) {
	var f fakeCPU
	const interval = 5 * time.Millisecond
	stop := start(t.Context(), 3, interval, f.cpu, f.set)
	defer stop()
	if got := f.lastSet(); got != 1 {
		t.Fatalf("Ps at start: %d, want 1", got)
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
	// Burning 10 intervals of CPU per fifth of an interval is far above a core.
	waitFor(3, 10*interval)
	waitFor(1, 0)
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
			stop := start(context.Background(), tt.max, time.Millisecond,
				func() (time.Duration, bool) { return 0, tt.ok }, func(n int) { sets = append(sets, n) })
			stop()
			if len(sets) != 0 {
				t.Fatalf("Ps set to %v", sets)
			}
		})
	}
	// Start itself: GOMAXPROCS in the environment is obeyed; without it the process starts on
	// one P (of the two the test gives it).
	for _, tt := range []struct {
		env  string
		want int
	}{{"2", 2}, {"", 1}} {
		t.Run("GOMAXPROCS="+tt.env, func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
			t.Setenv("GOMAXPROCS", tt.env)
			stop := Start(context.Background())
			defer stop()
			if got := runtime.GOMAXPROCS(0); got != tt.want {
				t.Fatalf("%d Ps after Start, want %d", got, tt.want)
			}
		})
	}
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
