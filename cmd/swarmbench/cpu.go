package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cpuTimes is the first line of /proc/stat: jiffies of the whole machine, all cores.
type cpuTimes struct{ busy, total uint64 }

func readCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, fmt.Errorf("cpu use: %w", err)
	}
	return parseCPU(string(b))
}

// parseCPU reads the aggregate "cpu" line: user nice system idle iowait irq softirq steal ...
// Idle and iowait are not busy; guest time is already counted in user.
func parseCPU(stat string) (cpuTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("cpu use: unexpected first line of /proc/stat: %q", line)
	}
	var t cpuTimes
	for i, s := range f[1:9] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("cpu use: /proc/stat field %d %q: %w", i+1, s, err)
		}
		t.total += v
		if i != 3 && i != 4 {
			t.busy += v
		}
	}
	return t, nil
}

// percent is the busy share of the machine between a and b, 100 meaning every core busy.
func percent(a, b cpuTimes) float64 {
	if b.total <= a.total {
		return 0
	}
	return 100 * float64(b.busy-a.busy) / float64(b.total-a.total)
}

// cpuSampler measures the machine's CPU use from start to stop: the mean, and the busiest
// one-second interval.
type cpuSampler struct {
	mu    sync.Mutex
	first cpuTimes
	peak  float64
	stop  context.CancelFunc
	done  chan struct{}
}

func startCPU(ctx context.Context) (*cpuSampler, error) {
	first, err := readCPU()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &cpuSampler{first: first, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		prev := first
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cur, err := readCPU()
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.peak = max(s.peak, percent(prev, cur))
			s.mu.Unlock()
			prev = cur
		}
	}()
	return s, nil
}

// finish stops sampling and returns the mean and peak busy percentages.
func (s *cpuSampler) finish() (mean, peak float64) {
	s.stop()
	<-s.done
	last, err := readCPU()
	if err != nil {
		return 0, 0
	}
	mean = percent(s.first, last)
	s.mu.Lock()
	defer s.mu.Unlock()
	return mean, max(s.peak, mean)
}

// loadAvg is the machine's load averages over 1, 5 and 15 minutes, nil if /proc/loadavg cannot
// be read.
func loadAvg() *[3]float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	return parseLoadAvg(string(b))
}

// parseLoadAvg reads the first three fields of /proc/loadavg ("0.52 0.58 0.59 1/467 12345").
func parseLoadAvg(s string) *[3]float64 {
	f := strings.Fields(s)
	if len(f) < 3 {
		return nil
	}
	var la [3]float64
	for i := range la {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil
		}
		la[i] = v
	}
	return &la
}
