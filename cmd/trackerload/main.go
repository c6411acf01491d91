// Command trackerload measures the embedded tracker under the load of a fleet: it starts
// `pkgsync tracker` on loopback, pinned to one core with GOMAXPROCS=1, registers 10,000 peers over
// 100 packages, then replays their re-announces over keep-alive connections from the other cores
// (tracker/loadgen), and prints announces per second, p50/p99 latency and the server's resident
// memory per registered peer, per run and as medians:
//
//	go run ./cmd/trackerload                       # 3 runs, 10,000 peers x 100 packages
//	go run ./cmd/trackerload --quiet               # the same without the announce log
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

type runResult struct {
	reg, replay loadgen.Result
	rssPerPeer  float64 // -1 when unknown
	cpu         float64 // server CPU seconds during the replay; -1 when unknown
}

// perCPU is the replay's announces per second of server CPU time: what one core serves when the
// server has it to itself, also on a machine where other processes take turns on that core.
func (r runResult) perCPU() float64 {
	if r.cpu <= 0 {
		return 0
	}
	return float64(r.replay.Announces) / r.cpu
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
	fmt.Fprintf(stdout, "tracker load: %d peers over %d packages, %d keep-alive connections, %d re-announces or %v per run; server on CPU %q with GOMAXPROCS=1, load generator on CPU %q\n",
		o.peers, o.packages, o.conns, o.announces, o.duration, o.serverCPU, os.Getenv("TRACKERLOAD_PINNED"))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(stdout, "load average before: %s", la)
	}
	var results []runResult
	for i := range o.runs {
		r, err := oneRun(ctx, o)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		rss, cpu := "n/a", "n/a"
		if r.rssPerPeer >= 0 {
			rss = fmt.Sprintf("%.0f B", r.rssPerPeer)
		}
		if r.cpu >= 0 {
			cpu = fmt.Sprintf("%.2f s, %.0f announces per CPU-second", r.cpu, r.perCPU())
		}
		fmt.Fprintf(stdout, "run %d: register: %v\n       replay:   %v\n       server CPU in the replay: %s; server RSS per peer: %s\n", i+1, r.reg, r.replay, cpu, rss)
		results = append(results, r)
	}
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
	fmt.Fprintf(stdout, "\n| medians of %d runs | announces/s | per server CPU-second | p50 | p99 | server RSS per peer |\n| --- | --- | --- | --- | --- | --- |\n", len(results))
	fmt.Fprintf(stdout, "| replay | %.0f | %.0f | %.0f µs | %.0f µs | %.0f B |\n",
		med(func(r runResult) float64 { return r.replay.Rate() }),
		med(func(r runResult) float64 { return r.perCPU() }),
		med(func(r runResult) float64 { return float64(r.replay.P50.Microseconds()) }),
		med(func(r runResult) float64 { return float64(r.replay.P99.Microseconds()) }),
		med(func(r runResult) float64 { return r.rssPerPeer }))
	fmt.Fprintf(stdout, "| register (event=started) | %.0f | | %.0f µs | %.0f µs | |\n",
		med(func(r runResult) float64 { return r.reg.Rate() }),
		med(func(r runResult) float64 { return float64(r.reg.P50.Microseconds()) }),
		med(func(r runResult) float64 { return float64(r.reg.P99.Microseconds()) }))
	return nil
}

// oneRun starts a tracker (unless --url names one), registers the peers and replays announces.
func oneRun(ctx context.Context, o options) (runResult, error) {
	r := runResult{rssPerPeer: -1, cpu: -1}
	url, pid := o.url, 0
	if url == "" {
		srv, err := startTracker(ctx, o)
		if err != nil {
			return r, err
		}
		defer srv.stop()
		url, pid = srv.url, srv.cmd.Process.Pid
	}
	load, err := loadgen.New(loadgen.Config{
		URL: url, Peers: o.peers, Packages: o.packages, Conns: o.conns,
		Announces: o.announces, Duration: o.duration,
	})
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
	cpuBefore, cpuErr := cpuOf(pid)
	if r.replay, err = load.Replay(ctx); err != nil {
		return r, fmt.Errorf("replaying announces: %w", err)
	}
	if cpuAfter, err := cpuOf(pid); err == nil && cpuErr == nil {
		r.cpu = cpuAfter - cpuBefore
	}
	return r, nil
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
	if pid == 0 {
		return 0, fmt.Errorf("no server process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count from after it.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 13", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime %q or stime %q", pid, f[11], f[12])
	}
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux architecture Go runs on
	return float64(utime+stime) / ticksPerSecond, nil
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
