// Command trackerload measures the embedded tracker under the load of a fleet: it starts
// `pkgsync tracker` on loopback, pinned to one core with GOMAXPROCS=1, registers 10,000 peers over
// 100 packages, then replays their re-announces over keep-alive connections from the other cores
// (tracker/loadgen) twice: in a closed loop, as fast as the server answers, which gives the most it
// serves, and in an open loop at --rate announces per second (20,000, the goal of issue 19), whose
// latencies count from when each announce was due and so include the queueing a closed loop
// hides (see tracker/loadgen). It prints announces per second, per second of the server's CPU
// time (which other processes on the machine distort less than the wall-clock rate), the server's
// CPU time per announce and the kernel's part of it (on loopback the kernel delivers each answer
// into the load generator's socket inside the server's write, work a NIC does on a network), p50/p99
// latency, the load generator's own CPU time per announce (it must stay well below the server's
// for the figures to be the server's), how long the server and the generator were ready to run
// but waited for a CPU that other processes held (latency neither can help), and the server's
// resident memory per registered peer, per run with the load average at its start, and as
// medians:
//
//	go run ./cmd/trackerload                       # 3 runs, 10,000 peers x 100 packages
//	go run ./cmd/trackerload --quiet               # the same without the announce log
//	go run ./cmd/trackerload --rate 0              # the closed loop only
//	go run ./cmd/trackerload --url http://127.0.0.1:6969/announce --runs 1   # a tracker already running
//
// Memory is the growth of the server's VmRSS while the peers register, over the peers: it counts
// what the Go heap keeps for them and what the runtime holds around it. The tracker package's
// BenchmarkLoad gives the live heap alone (runtime.MemStats).
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/tracker/loadgen"
)

type options struct {
	bin, url               string
	peers, packages, conns int
	announces, runs        int
	rate                   float64
	duration               time.Duration
	serverCPU, clientCPU   string
	quiet                  bool
	trackerArgs            []string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	fs := pflag.NewFlagSet("trackerload", pflag.ExitOnError)
	fs.StringVar(&o.bin, "pkgsync", "", "pkgsync binary to run (default: build ./cmd/pkgsync of this checkout)")
	fs.StringVar(&o.url, "url", "", "announce URL of a tracker already running (default: start one per run)")
	fs.IntVar(&o.peers, "peers", 10000, "peers")
	fs.IntVar(&o.packages, "packages", 100, "packages (torrents) the peers are spread over")
	fs.IntVar(&o.conns, "conns", 32, "keep-alive connections, one announce in flight on each")
	fs.IntVar(&o.announces, "announces", 200000, "re-announces measured per run (at most)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "time bound of each run's measured phase")
	fs.Float64Var(&o.rate, "rate", 20000, "announces per second of the open-loop replay (0: closed loop only)")
	fs.IntVar(&o.runs, "runs", 3, "runs; medians are reported")
	fs.StringVar(&o.serverCPU, "server-cpu", "0", "CPU list the server is pinned to with taskset, GOMAXPROCS=1 (\"\": not pinned)")
	fs.StringVar(&o.clientCPU, "client-cpu", "1-", "CPU list this load generator pins itself to (\"\": not pinned)")
	fs.BoolVar(&o.quiet, "quiet", false, "run the tracker with --quiet-announces (default: announce log to a file)")
	fs.StringArrayVar(&o.trackerArgs, "tracker-arg", nil, "extra argument for pkgsync tracker (repeatable)")
	fs.Parse(os.Args[1:])
	if err := pinSelf(o.clientCPU); err != nil {
		fmt.Fprintln(os.Stderr, "trackerload:", err)
		os.Exit(1)
	}
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "trackerload:", err)
		os.Exit(1)
	}
}

// pinSelf re-executes this program under taskset -c cpus, once. (sched_setaffinity from Go pins
// only the calling thread; a process started under taskset has every thread pinned.)
func pinSelf(cpus string) error {
	if cpus == "" || os.Getenv("TRACKERLOAD_PINNED") != "" {
		return nil
	}
	cpus = expandOpenRange(cpus)
	if cpus == "1-0" {
		return fmt.Errorf("--client-cpu: this machine has one CPU; pass --client-cpu \"\" --server-cpu \"\"")
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("--client-cpu %s: %w (install util-linux, or pass --client-cpu \"\")", cpus, err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := append(os.Environ(), "TRACKERLOAD_PINNED="+cpus)
	return syscall.Exec(ts, append([]string{ts, "-c", cpus, self}, os.Args[1:]...), env)
}

// expandOpenRange turns "1-" into "1-N" for the last CPU N of this machine.
func expandOpenRange(cpus string) string {
	if strings.HasSuffix(cpus, "-") {
		return cpus + strconv.Itoa(runtime.NumCPU()-1)
	}
	return cpus
}

// phase is one replay: what the load generator measured, and the CPU time it and the server
// took.
type phase struct {
	res       loadgen.Result
	serverCPU float64 // seconds; -1 when unknown
	// serverSys is the part of serverCPU spent in the kernel on the server's behalf: its reads
	// and writes, and on loopback also the delivery of each answer into the load generator's
	// socket, which the server's write runs.
	serverSys float64
	// serverWait is how long the server's threads were ready to run but waited for a CPU that
	// other processes held, in seconds (-1 when unknown): latency the server cannot help.
	serverWait float64
	clientCPU  float64 // seconds of this process
	clientWait float64 // as serverWait, for this process
}

// perCPU is the replay's announces per second of server CPU time: what one core serves when the
// server has it to itself, also on a machine where other processes take turns on that core.
func (p phase) perCPU() float64 {
	if p.serverCPU <= 0 {
		return 0
	}
	return float64(p.res.Announces) / p.serverCPU
}

// serverPerAnnounce is the server's CPU time per announce and the kernel's part of it, in
// microseconds.
func (p phase) serverPerAnnounce() (all, sys float64) {
	if p.res.Announces == 0 || p.serverCPU < 0 {
		return 0, 0
	}
	n := float64(p.res.Announces)
	return p.serverCPU / n * 1e6, p.serverSys / n * 1e6
}

// clientPerAnnounce is the load generator's CPU time per announce, in microseconds.
func (p phase) clientPerAnnounce() float64 {
	if p.res.Announces == 0 {
		return 0
	}
	return p.clientCPU / float64(p.res.Announces) * 1e6
}

func (p phase) String() string {
	s := p.res.String()
	if p.serverCPU >= 0 {
		all, sys := p.serverPerAnnounce()
		s += fmt.Sprintf("\n                 server CPU %.2f s, %.0f announces per CPU-second (%.1f µs per announce, %.1f µs of it in the kernel)", p.serverCPU, p.perCPU(), all, sys)
	}
	if p.serverWait >= 0 {
		s += fmt.Sprintf("; server waited %.2f s for a CPU", p.serverWait)
	}
	s += fmt.Sprintf("; load generator CPU %.1f µs per announce", p.clientPerAnnounce())
	if p.clientWait >= 0 {
		s += fmt.Sprintf(", waited %.2f s for a CPU", p.clientWait)
	}
	return s
}

type runResult struct {
	loadavg      string
	reg          loadgen.Result
	closed, open phase   // open: zero Announces without --rate
	rssPerPeer   float64 // -1 when unknown
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	if o.url == "" && o.bin == "" {
		dir, err := os.MkdirTemp("", "trackerload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.bin = filepath.Join(dir, "pkgsync")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "./cmd/pkgsync")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building pkgsync (run trackerload from the repository root, or pass --pkgsync): %w", err)
		}
	}
	if o.rate < 0 {
		return fmt.Errorf("--rate %v: want announces per second, or 0 for the closed loop only", o.rate)
	}
	fmt.Fprintf(stdout, "tracker load: %d peers over %d packages, %d keep-alive connections, %d re-announces or %v per replay; server on CPU %q with GOMAXPROCS=1, load generator on CPU %q\n",
		o.peers, o.packages, o.conns, o.announces, o.duration, o.serverCPU, os.Getenv("TRACKERLOAD_PINNED"))
	var results []runResult
	for i := range o.runs {
		r, err := oneRun(ctx, o)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		rss := "n/a"
		if r.rssPerPeer >= 0 {
			rss = fmt.Sprintf("%.0f B", r.rssPerPeer)
		}
		fmt.Fprintf(stdout, "run %d (load average at start: %s): server RSS per peer %s\n  register:      %v\n  replay closed: %v\n", i+1, r.loadavg, rss, r.reg, r.closed)
		if o.rate > 0 {
			fmt.Fprintf(stdout, "  replay open:   %v\n", r.open)
		}
		results = append(results, r)
	}
	printMedians(stdout, results, o.rate > 0)
	return nil
}

// printMedians prints the medians of the runs as a Markdown table.
func printMedians(w io.Writer, results []runResult, open bool) {
	med := func(f func(runResult) float64) float64 {
		xs := make([]float64, len(results))
		for i, r := range results {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		if len(xs)%2 == 1 {
			return xs[len(xs)/2]
		}
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) }
	fmt.Fprintf(w, "\n| medians of %d runs | announces/s | per server CPU-second | server CPU per announce (kernel) | p50 | p99 | load generator CPU per announce |\n| --- | --- | --- | --- | --- | --- | --- |\n", len(results))
	row := func(name string, p func(runResult) phase) {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.1f µs (%.1f µs) | %.0f µs | %.0f µs | %.1f µs |\n", name,
			med(func(r runResult) float64 { return p(r).res.Rate() }),
			med(func(r runResult) float64 { return p(r).perCPU() }),
			med(func(r runResult) float64 { all, _ := p(r).serverPerAnnounce(); return all }),
			med(func(r runResult) float64 { _, sys := p(r).serverPerAnnounce(); return sys }),
			med(func(r runResult) float64 { return us(p(r).res.P50) }),
			med(func(r runResult) float64 { return us(p(r).res.P99) }),
			med(func(r runResult) float64 { return p(r).clientPerAnnounce() }))
	}
	row("replay, closed loop", func(r runResult) phase { return r.closed })
	if open {
		row(fmt.Sprintf("replay, open loop at %.0f/s", results[0].open.res.Offered), func(r runResult) phase { return r.open })
	}
	fmt.Fprintf(w, "| register (event=started) | %.0f | | | %.0f µs | %.0f µs | |\n",
		med(func(r runResult) float64 { return r.reg.Rate() }),
		med(func(r runResult) float64 { return us(r.reg.P50) }),
		med(func(r runResult) float64 { return us(r.reg.P99) }))
	fmt.Fprintf(w, "\nserver RSS per registered peer: %.0f B (median)\n", med(func(r runResult) float64 { return r.rssPerPeer }))
}

// oneRun starts a tracker (unless --url names one), registers the peers and replays announces,
// in a closed loop and then, with --rate, in an open one.
func oneRun(ctx context.Context, o options) (runResult, error) {
	r := runResult{rssPerPeer: -1, loadavg: "n/a"}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.loadavg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	url, pid := o.url, 0
	if url == "" {
		srv, err := startTracker(ctx, o)
		if err != nil {
			return r, err
		}
		defer srv.stop()
		url, pid = srv.url, srv.cmd.Process.Pid
	}
	cfg := loadgen.Config{
		URL: url, Peers: o.peers, Packages: o.packages, Conns: o.conns,
		Announces: o.announces, Duration: o.duration,
	}
	load, err := loadgen.New(cfg)
	if err != nil {
		return r, err
	}
	rssBefore, rssErr := rssOf(pid)
	if r.reg, err = load.Register(ctx); err != nil {
		return r, fmt.Errorf("registering the peers: %w", err)
	}
	if rssAfter, err := rssOf(pid); err == nil && rssErr == nil {
		r.rssPerPeer = float64(rssAfter-rssBefore) / float64(o.peers)
	}
	if r.closed, err = measure(ctx, load, pid); err != nil {
		return r, fmt.Errorf("replaying announces in a closed loop: %w", err)
	}
	if o.rate > 0 {
		cfg.Rate = o.rate
		if load, err = loadgen.New(cfg); err != nil {
			return r, err
		}
		if r.open, err = measure(ctx, load, pid); err != nil {
			return r, fmt.Errorf("replaying announces at %.0f/s: %w", o.rate, err)
		}
	}
	return r, nil
}

// measure runs load's replay and takes the CPU time the server (pid, 0 for none) and this
// process spent on it.
func measure(ctx context.Context, load *loadgen.Load, pid int) (phase, error) {
	p := phase{serverCPU: -1, serverWait: -1, clientWait: -1}
	cpuBefore, sysBefore, cpuErr := cpuSplitOf(pid)
	waitBefore, waitErr := runQueueWait(pid)
	selfBefore := selfCPU()
	selfWaitBefore, selfWaitErr := runQueueWait(os.Getpid())
	var err error
	if p.res, err = load.Replay(ctx); err != nil {
		return p, err
	}
	p.clientCPU = selfCPU() - selfBefore
	if selfWaitAfter, err := runQueueWait(os.Getpid()); err == nil && selfWaitErr == nil {
		p.clientWait = selfWaitAfter - selfWaitBefore
	}
	if cpuAfter, sysAfter, err := cpuSplitOf(pid); err == nil && cpuErr == nil {
		p.serverCPU, p.serverSys = cpuAfter-cpuBefore, sysAfter-sysBefore
	}
	if waitAfter, err := runQueueWait(pid); err == nil && waitErr == nil {
		p.serverWait = waitAfter - waitBefore
	}
	return p, nil
}

// runQueueWait sums, over the threads of a process, the time they were runnable but waited for a
// CPU, in seconds: the second field of /proc/PID/task/TID/schedstat, in nanoseconds (kernels with
// schedstats, which is every common distribution kernel).
func runQueueWait(pid int) (float64, error) {
	if pid == 0 {
		return 0, fmt.Errorf("no server process")
	}
	paths, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(paths) == 0 {
		return 0, fmt.Errorf("/proc/%d/task/*/schedstat: no thread statistics", pid)
	}
	var ns int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that has exited
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return 0, fmt.Errorf("%s: %q, want run time, wait time and slices", p, b)
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: wait time %q: %w", p, f[1], err)
		}
		ns += v
	}
	return float64(ns) / 1e9, nil
}

// selfCPU is the user and system CPU seconds of this process so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

type server struct {
	cmd *exec.Cmd
	url string
	dir string
}

var listeningRE = regexp.MustCompile(`listening on (http://[^/\s]+)/`)

// startTracker runs pkgsync tracker on a free loopback port and waits for its listening line.
func startTracker(ctx context.Context, o options) (*server, error) {
	dir, err := os.MkdirTemp("", "trackerload-run-")
	if err != nil {
		return nil, err
	}
	args := []string{"tracker", "--listen", "127.0.0.1:0"}
	if o.quiet {
		args = append(args, "--quiet-announces")
	} else {
		args = append(args, "--announce-log", filepath.Join(dir, "announces.jsonl"))
	}
	args = append(args, o.trackerArgs...)
	name := o.bin
	if o.serverCPU != "" {
		args = append([]string{"-c", o.serverCPU, o.bin}, args...)
		name = "taskset"
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	s := &server{cmd: cmd, dir: dir}
	found := make(chan string, 1)
	var tail strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			} else if tail.Len() < 4096 {
				tail.WriteString(sc.Text() + "\n")
			}
		}
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			s.stop()
			return nil, fmt.Errorf("pkgsync tracker exited before listening: %s", tail.String())
		}
		s.url = u + "/announce"
		return s, nil
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("pkgsync tracker did not say where it listens within 30 s")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

// cpuOf reads the user and system CPU seconds of a process (all its threads) from /proc.
func cpuOf(pid int) (float64, error) {
	all, _, err := cpuSplitOf(pid)
	return all, err
}

// cpuSplitOf reads the CPU seconds of a process (all its threads) from /proc: user and system
// together, and system alone.
func cpuSplitOf(pid int) (all, sys float64, err error) {
	if pid == 0 {
		return 0, 0, fmt.Errorf("no server process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 13", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: bad utime %q or stime %q", pid, f[11], f[12])
	}
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux architecture Go runs on
	return float64(utime+stime) / ticksPerSecond, float64(stime) / ticksPerSecond, nil
}

// rssOf reads VmRSS (bytes) of a process from /proc.
func rssOf(pid int) (int64, error) {
	if pid == 0 {
		return 0, fmt.Errorf("no server process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
