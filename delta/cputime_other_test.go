//go:build !unix

package delta

import "time"

// cpuTime reports 0 outside unix (no getrusage): the benchmarks then leave out MB/cpu-s.
func cpuTime() time.Duration { return 0 }
