package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pkgsync/pkgsync/cmd/swarmbench/internal/netlab"
)

// node is one node of a run: its command, its process (nil before it starts and while it is
// down after a kill) and what happened to it.
type node struct {
	host   *netlab.Host
	nc     nodeCmd
	p      *proc
	stdout bytes.Buffer
	logf   *os.File
	// startAt is when it starts, after the run's start (its splay offset).
	startAt time.Duration
	// killAt is the share of the run's payload the node downloads before it is killed; 0: never.
	killAt float64
	// started, killed and restarted mark the first start, the kill and the second start, at
	// startedAt, killedAt and restartedAt after the run's start.
	started, killed, restarted       bool
	startedAt, killedAt, restartedAt time.Duration
	// deadCPU is the CPU seconds of the process that was killed.
	deadCPU float64
	doneAt  time.Duration
	done    bool
	// exitedEarly is set when the node's process had exited by the end of the run (watch).
	exitedEarly bool
	// lastStartAt is when the node's process was last started, logMark the size of its log
	// then, and outSeen whether the log has grown since; startDelays is, per start, how long
	// the process took to write its first line (startDelay).
	lastStartAt time.Duration
	logMark     int64
	outSeen     bool
	startDelays []time.Duration
}

func procs(nodes []*node) []*proc {
	ps := make([]*proc, len(nodes))
	for i, n := range nodes {
		ps[i] = n.p
	}
	return ps
}

// drawSchedule draws each node's start offset, uniform in [0, Splay), and which nodes are
// killed (round(Churn*N) of them) after downloading what share of the payload, uniform in
// [0.1, 0.9): so the kill falls inside the download whatever the client's speed. The draws
// depend on the seed, N, Splay and Churn only, so the clients of one scenario get the same.
func drawSchedule(sp spec) (startAt []time.Duration, killAt []float64) {
	r := rand.New(rand.NewPCG(sp.Seed, uint64(sp.Nodes)))
	startAt = make([]time.Duration, sp.Nodes)
	if sp.Splay > 0 {
		for i := range startAt {
			startAt[i] = time.Duration(r.Int64N(int64(sp.Splay)))
		}
	}
	killAt = make([]float64, sp.Nodes)
	for _, i := range r.Perm(sp.Nodes)[:int(math.Round(sp.Churn*float64(sp.Nodes)))] {
		killAt[i] = 0.1 + 0.8*r.Float64()
	}
	return startAt, killAt
}

// dueAt is when the node is next to be started: at its offset, or churnRestart after its kill;
// ok is false when it is not to be started again.
func (n *node) dueAt() (at time.Duration, ok bool) {
	switch {
	case n.p != nil:
		return 0, false
	case !n.started:
		return n.startAt, true
	case n.killed && !n.restarted:
		return n.killedAt + churnRestart, true
	}
	return 0, false
}

// start starts the node's client in its namespace, its stderr to NAME.log in dir (appended to
// when it restarts), at = time since the run's start.
func (n *node) start(lab *netlab.Lab, dir string, at time.Duration) error {
	if n.logf == nil {
		f, err := os.Create(filepath.Join(dir, n.host.Name+".log"))
		if err != nil {
			return err
		}
		n.logf = f
	} else {
		fmt.Fprintf(n.logf, "--- swarmbench: killed with SIGKILL at %.1fs, started again at %.1fs\n", n.killedAt.Seconds(), at.Seconds())
	}
	n.stdout.Reset()
	n.lastStartAt, n.outSeen, n.logMark = at, false, 0
	if fi, err := n.logf.Stat(); err == nil {
		n.logMark = fi.Size()
	}
	cmd := lab.Command(n.host, n.nc.name, n.nc.args...)
	cmd.Dir = filepath.Dir(n.nc.out)
	cmd.Stdout, cmd.Stderr = &n.stdout, n.logf
	p, err := startProc(cmd)
	if err != nil {
		return fmt.Errorf("starting node %s: %w", n.host.Name, err)
	}
	n.p = p
	if n.started {
		n.restarted, n.restartedAt = true, at
	} else {
		n.started, n.startedAt = true, at
	}
	return nil
}

// kill kills the node's process group with SIGKILL, as a crash or a reboot would, and waits
// for it to be gone.
func (n *node) kill(at time.Duration) {
	syscall.Kill(-n.p.cmd.Process.Pid, syscall.SIGKILL)
	<-n.p.exited
	if cs, ok := cpuSeconds(n.p); ok {
		n.deadCPU += cs
	}
	n.p, n.killed, n.killedAt = nil, true, at
}

// cpu is the CPU seconds of all the node's processes: the killed one and the last one.
func (n *node) cpu() (float64, bool) {
	cs, ok := cpuSeconds(n.p)
	return n.deadCPU + cs, ok || n.killed
}

// fleet is the nodes of a run while it runs.
type fleet struct {
	lab    *netlab.Lab
	dir    string
	client string
	nodes  []*node
	start  time.Time
	// before are the counters at the start; payload is what each node must receive, which the
	// kill shares are of.
	before  netlab.Traffic
	payload int64
	// traffic is the last reading of the counters, at readAt.
	traffic netlab.Traffic
	readAt  time.Time
}

// trafficReadEvery spaces the readings of the counters that tell when to kill a node.
const trafficReadEvery = 200 * time.Millisecond

// step starts the nodes that are due, notes those that now hold the package and kills those
// that have downloaded their share. It returns how many nodes do not hold the package yet, and
// an error when a node's process has exited before it held it.
func (f *fleet) step(ctx context.Context, now time.Time) (pending int, err error) {
	at := now.Sub(f.start)
	for _, n := range f.nodes {
		if due, ok := n.dueAt(); ok && at >= due {
			if err := n.start(f.lab, f.dir, at); err != nil {
				return 0, err
			}
		}
		if !n.done && n.started {
			if _, err := os.Stat(n.nc.done); err == nil {
				n.done, n.doneAt = true, at
			}
		}
		n.startDelay(at)
		if n.done || n.p == nil {
			pending += btoi(!n.done)
			continue
		}
		pending++
		select {
		case <-n.p.exited:
			return 0, fmt.Errorf("node %s (%s) exited before it held the package: %v", n.host.Name, f.client, n.p.err)
		default:
		}
		if n.killAt == 0 || n.killed {
			continue
		}
		if now.Sub(f.readAt) >= trafficReadEvery {
			if f.traffic, err = f.lab.Traffic(ctx); err != nil {
				return 0, err
			}
			f.readAt = now
		}
		if got := f.traffic.Down[n.host.Name] - f.before.Down[n.host.Name]; float64(got) >= n.killAt*float64(f.payload) {
			n.kill(at)
		}
	}
	return pending, nil
}

// startDelay notes, once per start, when the node's process has first written to its log,
// at after the run's start. pkgsync writes its first line (-v) right after it parsed its
// flags, so the time from the start to then is the time the machine took to run it: on a
// machine with every core busy, seconds (a process in the lab waits its turn behind every
// node's threads, which real nodes, each on its own machine, do not).
func (n *node) startDelay(at time.Duration) {
	if n.p == nil || n.outSeen || n.logf == nil {
		return
	}
	if fi, err := n.logf.Stat(); err == nil && fi.Size() > n.logMark {
		n.outSeen = true
		n.startDelays = append(n.startDelays, at-n.lastStartAt)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// watch runs the fleet until every node holds the package, one fails, or the run times out,
// logging progress every 10 s.
func (f *fleet) watch(ctx context.Context, timeout time.Duration, log io.Writer) error {
	defer func() {
		for _, n := range f.nodes {
			if n.p == nil {
				continue
			}
			select {
			case <-n.p.exited:
				n.exitedEarly = true
			default:
			}
		}
	}()
	deadline := f.start.Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastReport := f.start
	for {
		now := time.Now()
		pending, err := f.step(ctx, now)
		if err != nil || pending == 0 {
			return err
		}
		if now.After(deadline) {
			return fmt.Errorf("%d of %d nodes did not finish within %v", pending, len(f.nodes), timeout)
		}
		if now.Sub(lastReport) >= 10*time.Second {
			lastReport = now
			fmt.Fprintf(log, "    %d/%d nodes done after %.0fs\n", len(f.nodes)-pending, len(f.nodes), now.Sub(f.start).Seconds())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
