package procs

import (
	"strconv"
	"strings"
	"time"
)

// Go's system monitor (sysmon) is a thread of every Go process that sleeps deeply while all
// of the process's Ps are idle, and is woken by the first system call after that. It then
// polls every 20 µs (a nanosleep and a context switch each) until the Ps are idle again. A
// node of a fan-out wakes a hundred times a second or more, briefly each time, so sysmon's
// polling and wake-ups were 68% of the wake-ups of its threads and 70% of its context switches
// (perf, swarmbench --short's 16-node fan-out, docs/BENCHMARKS.md).
//
// The runtime keeps sysmon out of deep sleep while its scheduler trace is on (GODEBUG
// schedtrace=N, a line every N ms); sysmon then polls every 10 ms whatever the process does,
// and a system call no longer wakes it. With N at its largest (2^31-1 ms, 24.8 days) the trace
// never prints: the runtime prints its first line once the monotonic clock, which starts at
// boot, passes N ms. In the same fan-out, nodes started so used 0.21-0.25 CPU s each against
// 0.28-0.33 (run alternately), with the same B/A.
//
// QuietMonitor starts the process again (execve of itself, same PID, same arguments and
// files) with that setting, for the commands that end once their work is done (update, sync).
// It leaves alone long-lived commands, whose idle process should sleep rather than poll, and
// a process whose GODEBUG already sets schedtrace (the operator's choice; schedtrace=0 turns
// this off).

// traceNever is the largest schedtrace the runtime takes: the interval of its trace, in ms.
const traceNever = 1<<31 - 1

// monitorMargin is how long before the clock reaches traceNever ms a process may start and be
// sure not to print the trace: a process that runs past that moment prints one line.
const monitorMargin = 24 * time.Hour

// quietEnv returns the GODEBUG value that keeps sysmon polling, given the process's GODEBUG
// and the monotonic clock (time since boot); ok is false when the process should be left as
// it is: GODEBUG sets schedtrace already, or the clock is too close to traceNever ms (or past
// it), where the runtime would print its trace.
func quietEnv(godebug string, uptime time.Duration) (env string, ok bool) {
	for _, kv := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(kv, "="); strings.TrimSpace(k) == "schedtrace" {
			return "", false
		}
	}
	if uptime < 0 || uptime+monitorMargin >= traceNever*time.Millisecond {
		return "", false
	}
	set := "schedtrace=" + strconv.Itoa(traceNever)
	if strings.TrimSpace(godebug) == "" {
		return set, true
	}
	return godebug + "," + set, true
}
