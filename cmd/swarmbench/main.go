// Command swarmbench measures how fast pkgsync fans a package out across a data center, against
// the physical bound and against stock BitTorrent clients (aria2c and python3-libtorrent) in the
// same run, on one Linux machine. It needs root (for ip netns and tc) and iproute2.
//
//	go run ./cmd/swarmbench --smoke                  # N = 4, 4 MiB, pkgsync only, a 6-node scale run, a fan-out under opentracker: seconds (CI runs it)
//	go run ./cmd/swarmbench --short                  # fan-out at N = 16 and delta fan-out at N = 16, all three clients: under 10 minutes
//	go run ./cmd/swarmbench                          # full: fan-out at N = 4, 8, 16, classic, delta, two data centers, scale at 64
//	go run ./cmd/swarmbench --scenarios scale --repeat 3 --json scale.json   # issue 19's scale runs, medians of 3
//	go run ./cmd/swarmbench --scenarios fanout --nodes 48 --tracker opentracker --size 8M --rate 5
//	go run ./cmd/swarmbench --short --json runs.json --md runs.md --png runs.png --clients pkgsync,aria2
//	go run ./cmd/swarmbench --from runs.json --png runs.png   # redraw the table and chart of a saved run (--from a.json,b.json: both)
//	go run ./cmd/swarmbench --cleanup                # remove what a killed run left behind
//
// # The lab
//
// Every host is a network namespace: the origin and N nodes, each wired by a veth pair to a
// bridge in a "switch" namespace. Each host's upload is shaped with tc tbf on its own end of
// the pair and its download on the switch's end (10 Mbit/s each way by default, 25 in
// --smoke; --rate, --origin-rate) with a 256 KB bucket and up to 200 ms of queue (netem is
// not available here, so there is no added delay). In the two-data-center scenario there are two bridges,
// joined by a veth pair shaped to --interdc-rate (default twice the node rate), with half the
// nodes and the origin on the first. Addresses are in 198.18.0.0/15 (RFC 2544's benchmark
// range); the namespaces have no route out. Names start with a prefix unique to the run
// ("psb" and five hex digits), and everything is removed at the end, on failure and on
// Ctrl-C; --cleanup removes what a killed run left.
//
// The origin is `pkgsync serve --tracker`: an HTTP server that is the torrents' web seed
// (BEP 19 url-list) and the tracker, whose peer lists --max-peers K caps; every node starts
// from the .torrent's URL on it. With --tracker opentracker, Debian's opentracker runs on the
// origin's host instead (port 6969, whitelisting the package's and its .zsync's info hashes),
// and pkgsync serve is the web seed only: a stock setup. opentracker's cap on a peer list is
// fixed when it is built (200, numwant below it), so it takes no --max-peers. The package is
// deterministic pseudo-random data (F = --size: 32 MiB in the full run, 16 MiB in --short,
// 4 MiB in --smoke, 8 MiB in scale); v2 is v1 with about one scattered edit per MiB
// (overwrites, insertions, deletions of 4-60 KiB).
//
// # Nodes that come and go
//
// --splay D starts each node at a uniform random offset in [0, D), as cron with a random delay
// does; --churn P kills round(P*N) nodes with SIGKILL, each once, when its host's download
// counter reaches a random share in [0.1, 0.9) of what it must receive (so the kill falls
// inside its transfer whatever the client's speed), and starts the same command again 5 s
// later, on what the killed process left on disk. The draws come from --seed (printed, and in
// the JSON) and are the same for every client of a scenario; --repeat R runs everything R
// times with seeds SEED to SEED+R-1 and adds a table of the medians.
//
// # Scenarios
//
//   - fanout: N empty nodes fetch the package; the origin is a web seed only.
//   - classic: the same, and the origin also runs a BitTorrent seeder (pkgsync seed).
//   - delta: N nodes hold v1 and update to v2 at once. pkgsync gets v1 as --old; aria2c and
//     libtorrent find v1 at their output path and keep the pieces whose hashes still match
//     (what they can do with an old version; an insertion shifts every later piece).
//   - twodc: N/2 nodes on each side of the inter-DC link, the origin on the first side.
//   - scale: a fan-out as a fleet run from cron sees it (issue 19): N = 64 nodes, peer lists of
//     K = 16, starts over D = 20 s, P = 10% of the nodes killed and restarted; 8 MiB at 4
//     Mbit/s, so that 64 nodes fit on 2 cores. The flags change each of these. Its goals: every
//     node, restarted ones included, ends with the package; the origin sends at most 1.1 F of
//     it; the last node is done within D + 1.5 B ((A-D)/B <= 1.5).
//
// Every scenario runs once with each client (--clients) as the nodes: pkgsync update, aria2c
// and a python3-libtorrent script, the stock ones tuned for a LAN (no DHT, LPD, PEX,
// encryption or UPnP, 128+ peers, no unchoke limit, libtorrent on TCP only), all with the
// torrent's web seed and the origin's tracker.
//
// # What is measured
//
//   - A: seconds from starting the nodes until the last one holds the verified package (the
//     file pkgsync renames into place once verified; aria2c's download-complete hook; libtorrent
//     reporting that it seeds). Every node's file, a restarted node's too, is checked against
//     the package's SHA-1 at the end. With a splay, (A-D)/B, and per node its start and its
//     own transfer time.
//   - B = max(F/u_origin, F/d_node, N*F/(u_origin + N*u_node)) for the shaped rates, and at least
//     F/inter-DC rate with two data centers; in delta F is the changed bytes. B/A is the
//     efficiency. TCP/IP and BitTorrent framing take about 4% of a shaped link, so B/A cannot
//     quite reach 1.
//   - Bytes per host from the veth counters of the switch ports, whatever the client: the
//     origin's upload over F (over the changed bytes in delta), each host's upload over F, the
//     largest upload over the mean (origin included), and the bytes over the inter-DC link, per
//     direction and as the larger direction over F. The origin's own count of HTTP file bytes is
//     in the JSON too, per path, and origin_meta_bytes: the body bytes of everything but the
//     package (the .torrent, the .zsync, an index), with origin_meta_requests, the requests
//     for them (HEADs and 304s included, whose headers the count leaves out).
//   - CPU: the machine's busy share (100% = every core) over the run, mean and busiest second,
//     from /proc/stat, which includes anything else the machine runs; and the CPU seconds of
//     the node processes (their rusage). A run is bandwidth-bound while these stay well below
//     the machine's capacity. 16 pkgsync nodes used about 1.4 CPU seconds each per 32 MiB
//     passed on at 25 Mbit/s, which at the bound is nearly two cores: hence 10 Mbit/s by
//     default, where they stay under half of a 2-core machine. Each run also reports the CPU
//     seconds per node and the machine's load average at its start and end.
//
// A run that does not finish within 25 times B for the whole package (at least 2 minutes) after
// the splay, or whose node exits early (other than by a kill of --churn), is reported with its error and the benchmark goes on; the exit
// status is then 1.
//
// # Output
//
// A Markdown table on stdout (and --md PATH), a JSON file (--json PATH) of the form
// {"seed": ..., "args": [...], "runs": [...]} with one object per scenario and client (fields
// scenario, client, nodes, bytes, tracker, max_peers, splay_s, churn, A_s, B_s, efficiency,
// A_minus_splay_over_B, origin_bytes_ratio, origin_meta_bytes, interdc_bytes_ratio,
// max_upload_share, cpu_percent, clients_cpu_s_per_node, load_avg_start, killed,
// restarted_verified, ... and per-host details), and a PNG chart (--png PATH): per run, each node's
// completion time against B, and each host's upload as a share of F.
//
// pkgsync is built from this checkout once per invocation (or given with --pkgsync). Runs go
// one after the other: on a 2-core machine two benchmarks at once would measure each other.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/internal/progress"

	"github.com/pkgsync/pkgsync/cmd/swarmbench/internal/netlab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "swarmbench:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	smoke, short, keep, cleanup bool
	jsonPath, mdPath, pngPath   string
	pkgsync, work               string
	from                        []string
	o                           overrides
	rate, originRate, interDC   float64
	size                        string
	pieceSize                   int64
	repeat                      int
	seed                        uint64
}

func parseArgs(args []string, stdout io.Writer) (*options, error) {
	fs := pflag.NewFlagSet("swarmbench", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	var opt options
	fs.BoolVar(&opt.smoke, "smoke", false, "N = 4, 4 MiB, pkgsync only: fan-out, delta, a 6-node scale run and a fan-out under opentracker: about a minute")
	fs.BoolVar(&opt.short, "short", false, "fan-out at N = 16 and one delta fan-out, every client: under 10 minutes")
	fs.StringVar(&opt.jsonPath, "json", "", "write the results as JSON {\"runs\": [...]} to this file")
	fs.StringVar(&opt.mdPath, "md", "", "write the Markdown table to this file too")
	fs.StringVar(&opt.pngPath, "png", "", "write the chart (completion time and upload share per node) to this PNG file")
	fs.StringSliceVar(&opt.o.clients, "clients", nil, "clients to run as the nodes: pkgsync,aria2,libtorrent (default: all; pkgsync in --smoke)")
	fs.StringSliceVar(&opt.o.scenarios, "scenarios", nil, "only these scenarios: fanout,classic,delta,twodc,scale")
	fs.IntSliceVar(&opt.o.nodes, "nodes", nil, "node counts to run each scenario at, up to 240 (default: the mode's; 64 in scale)")
	fs.StringVar(&opt.size, "size", "", "package size, e.g. 64M (default: 4M smoke, 16M short, 32M full; 8M in scale)")
	fs.Float64Var(&opt.rate, "rate", 0, "every node's upload and download in Mbit/s (default: 25 smoke, else 10; 4 in scale)")
	fs.Float64Var(&opt.originRate, "origin-rate", 0, "the origin's upload and download in Mbit/s (default: --rate)")
	fs.Float64Var(&opt.interDC, "interdc-rate", 0, "the inter-DC link in Mbit/s each way (default: twice --rate)")
	originFetchers := fs.Int("origin-fetchers", 0, "the embedded tracker's origin fetchers per swarm (pkgsync serve --origin-fetchers; default: its own, 128 or --max-peers if fewer; 0: off)")
	maxPeers := fs.Int("max-peers", 0, "the tracker's cap on each peer list (default: the scenario's, 16 in scale; 0: the tracker's own, 200)")
	splay := fs.Duration("splay", 0, "each node starts at a uniform random offset in [0, D) (default: the scenario's, 20s in scale)")
	churn := fs.Float64("churn", 0, "that share of the nodes is killed once mid-download and restarted 5s later (default: the scenario's, 0.1 in scale)")
	fs.StringVar(&opt.o.tracker, "tracker", "", "the tracker: embedded (pkgsync serve --tracker) or opentracker (Debian's, beside pkgsync serve as a web seed)")
	fs.IntVar(&opt.repeat, "repeat", 1, "run everything this many times (with seeds SEED, SEED+1, ...) and add a table of the medians")
	fs.Uint64Var(&opt.seed, "seed", 0, "seed of the splay and churn draws, the same for every client of a scenario (default: from the clock; printed)")
	fs.Int64Var(&opt.pieceSize, "piece-size", 0, "the package's piece size in bytes, a power of two (default: pkgsync make's choice)")
	fs.StringVar(&opt.pkgsync, "pkgsync", "", "pkgsync binary to use (default: build ./cmd/pkgsync of this checkout)")
	fs.StringVar(&opt.work, "work", "", "work folder (default: a temporary one, removed at the end)")
	fs.BoolVar(&opt.keep, "keep", false, "keep the work folder: logs and files of every run")
	fs.StringSliceVar(&opt.from, "from", nil, "run nothing: render the Markdown, JSON and chart of earlier runs' JSON files (several: their runs together, with the medians)")
	fs.BoolVar(&opt.cleanup, "cleanup", false, "remove the namespaces (and their processes) that killed runs left, then exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: swarmbench [--smoke|--short] [flags]\n\nFlags:\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if opt.smoke && opt.short {
		return nil, errors.New("--smoke and --short exclude each other")
	}
	if fs.Changed("origin-fetchers") {
		opt.o.originFetchers = originFetchers
	}
	if fs.Changed("max-peers") {
		opt.o.maxPeers = maxPeers
	}
	if fs.Changed("splay") {
		opt.o.splay = splay
	}
	if fs.Changed("churn") {
		opt.o.churn = churn
	}
	if opt.repeat < 1 {
		return nil, fmt.Errorf("--repeat %d: want 1 or more", opt.repeat)
	}
	if !fs.Changed("seed") {
		opt.seed = uint64(time.Now().UnixNano())
	}
	if opt.size != "" {
		n, err := progress.ParseSize(opt.size)
		if err != nil {
			return nil, err
		}
		opt.o.size = n
	}
	for _, r := range []float64{opt.rate, opt.originRate, opt.interDC} {
		if r < 0 {
			return nil, fmt.Errorf("rate %g Mbit/s: want a positive rate", r)
		}
	}
	opt.o.nodeRate = int64(opt.rate * mbit)
	opt.o.originRate = int64(opt.originRate * mbit)
	opt.o.interDCRate = int64(opt.interDC * mbit)
	return &opt, nil
}

// run is the whole command; tests call it with their own arguments and writers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	opt, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	if opt.cleanup {
		names, err := netlab.Cleanup(context.Background(), netlab.PrefixBase)
		fmt.Fprintf(stdout, "removed %d namespaces: %s\n", len(names), strings.Join(names, " "))
		return err
	}
	if len(opt.from) > 0 {
		return renderFrom(opt, stdout)
	}
	m := modeFull
	switch {
	case opt.smoke:
		m = modeSmoke
	case opt.short:
		m = modeShort
	}
	specs, err := plan(m, opt.o)
	if err != nil {
		return err
	}
	specs = repeatSpecs(specs, opt.repeat, opt.seed)
	if err := checkLab(); err != nil {
		return err
	}
	work, remove, err := workFolder(opt)
	if err != nil {
		return err
	}
	if remove {
		defer os.RemoveAll(work)
	}
	tl, err := setUpTools(ctx, opt, specs, work)
	if err != nil {
		return err
	}
	prefix, err := netlab.NewPrefix()
	if err != nil {
		return err
	}
	// Each run removes its lab; this catches anything a failure in between left.
	defer func() {
		if _, cerr := netlab.Cleanup(context.Background(), prefix); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	b := &bench{prefix: prefix, work: work, tools: tl, keep: opt.keep, log: stderr, data: map[int64]*dataset{}, pieceSize: opt.pieceSize}
	fmt.Fprintf(stderr, "swarmbench %s: %d runs, seed %d, namespaces %s*, work folder %s\n", m.name, len(specs), opt.seed, prefix, work)

	started := time.Now()
	runs, err := runSpecs(ctx, b, specs, stderr)
	fmt.Fprintf(stderr, "swarmbench: %d runs in %.0fs\n", len(runs), time.Since(started).Seconds())
	rep := &report{Mode: m.name, Date: started.UTC().Truncate(time.Second), CPUs: runtime.NumCPU(), Seed: opt.seed,
		Args: args, Runs: runs}
	if werr := writeOutputs(opt, rep, stdout); werr != nil {
		err = errors.Join(err, werr)
	}
	if err == nil {
		err = firstRunError(runs)
	}
	return err
}

// renderFrom renders the Markdown, JSON and chart of earlier runs' JSON files (--from): the
// runs of all of them, under the first one's mode, date and seed.
func renderFrom(opt *options, stdout io.Writer) error {
	var all report
	for i, path := range opt.from {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var rep report
		if err := json.Unmarshal(raw, &rep); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if i == 0 {
			all = rep
			continue
		}
		all.Runs = append(all.Runs, rep.Runs...)
	}
	return writeOutputs(opt, &all, stdout)
}

// checkLab checks that this process can build the lab: root, ip and tc.
func checkLab() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: the lab is made of network namespaces (ip netns) shaped with tc")
	}
	for _, t := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found (apt-get install -y iproute2): %w", t, err)
		}
	}
	return nil
}

// workFolder returns --work, made if missing, or a new temporary folder that the caller
// removes at the end (remove) unless --keep.
func workFolder(opt *options) (work string, remove bool, err error) {
	if opt.work != "" {
		return opt.work, false, os.MkdirAll(opt.work, 0o755)
	}
	work, err = os.MkdirTemp("", "swarmbench-")
	return work, err == nil && !opt.keep, err
}

// setUpTools finds (or builds) the pkgsync binary and checks that every client the runs
// use can run, writing their helper scripts into work.
func setUpTools(ctx context.Context, opt *options, specs []spec, work string) (*tools, error) {
	bin := opt.pkgsync
	if bin == "" {
		var err error
		if bin, err = buildPkgsync(ctx, work); err != nil {
			return nil, err
		}
	}
	var clients []string
	opentracker := false
	for _, sp := range specs {
		if !contains(clients, sp.Client) {
			clients = append(clients, sp.Client)
		}
		opentracker = opentracker || sp.Tracker == trackerOpentracker
	}
	return findTools(ctx, clients, opentracker, bin, work)
}

// repeatSpecs is specs n times over, the i-th time (from 0) with seed+i: a repetition draws other
// splay offsets and kills, and every client of a scenario gets the same draws.
func repeatSpecs(specs []spec, n int, seed uint64) []spec {
	var out []spec
	for i := range n {
		for _, sp := range specs {
			sp.Seed, sp.Rep = seed+uint64(i), i+1
			out = append(out, sp)
		}
	}
	return out
}

// runSpecs runs the specs in order. A run that fails is recorded with its error and the
// others go on; an interrupt stops them and is returned.
func runSpecs(ctx context.Context, b *bench, specs []spec, stderr io.Writer) ([]*Run, error) {
	var runs []*Run
	for i, sp := range specs {
		fmt.Fprintf(stderr, "[%d/%d] %s with %s nodes, N=%d, F=%s, %g Mbit/s per node, %s, load average %s\n",
			i+1, len(specs), sp.Scenario, sp.Client, sp.Nodes, sizeString(sp.Size), float64(sp.NodeRate)/mbit,
			swarmString(sp.Tracker, sp.MaxPeers, sp.OriginFetchers, sp.Splay.Seconds(), sp.Churn), loadString(loadAvg()))
		r, rerr := b.run(ctx, i, sp)
		if rerr != nil {
			if ctx.Err() != nil {
				return runs, fmt.Errorf("interrupted during run %d: %w", i+1, rerr)
			}
			r = &Run{Scenario: sp.Scenario, Client: sp.Client, Nodes: sp.Nodes, Bytes: sp.Size, Tracker: sp.Tracker,
				MaxPeers: sp.MaxPeers, SplayS: sp.Splay.Seconds(), Churn: sp.Churn, Seed: sp.Seed, Rep: sp.Rep, Error: rerr.Error()}
		}
		fmt.Fprintf(stderr, "    %s\n", r.summary())
		runs = append(runs, r)
	}
	return runs, nil
}

// firstRunError is the error of the first run that failed, nil if none did.
func firstRunError(runs []*Run) error {
	for _, r := range runs {
		if r.Error != "" {
			return fmt.Errorf("%s with %s: %s", r.Scenario, r.Client, r.Error)
		}
	}
	return nil
}

// writeOutputs prints the Markdown table and writes the files asked for.
func writeOutputs(opt *options, rep *report, stdout io.Writer) error {
	md := markdown(rep)
	fmt.Fprint(stdout, md)
	if opt.mdPath != "" {
		if err := os.WriteFile(opt.mdPath, []byte(md), 0o644); err != nil {
			return fmt.Errorf("writing the Markdown: %w", err)
		}
	}
	if opt.jsonPath != "" {
		if err := writeJSON(opt.jsonPath, rep); err != nil {
			return err
		}
	}
	if opt.pngPath != "" {
		if err := writeChart(opt.pngPath, rep.Runs); err != nil {
			return err
		}
	}
	return nil
}

// buildPkgsync compiles ./cmd/pkgsync of the checkout that holds the working directory.
func buildPkgsync(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pkgsync")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pkgsync")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building pkgsync in %s: %w: %s", root, err, out)
	}
	return bin, nil
}

// repoRoot finds the pkgsync module's root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/pkgsync/pkgsync\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the pkgsync checkout: run from the repository or give --pkgsync")
		}
		dir = parent
	}
}
