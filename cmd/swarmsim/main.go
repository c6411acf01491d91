// Command swarmsim simulates a pkgsync fan-out across a fleet too large for the lab: thousands
// of nodes in sites and racks, the tracker's capped peer lists, nodes that start at random
// offsets, die and come back. The origin decisions are made by package originplan, the code bt
// runs; the rest of the model is in package swarmsim.
//
//	go run ./cmd/swarmsim --nodes 10000 --size 10G --json r.json   # one run
//	go run ./cmd/swarmsim --table --json fleet.json --png fleet.png  # the fleet table
//	go run ./cmd/swarmsim --table --nodes 1000 --size 1G            # its 1,000-node 1 GiB rows
//	go run ./cmd/swarmsim --validate --lab runs.json                 # the model against a swarmbench run
//	go run ./cmd/swarmsim --nodes 1000 --size 1G --cpuprofile cpu.out # where a run's time goes
//
// --nodes, --size, --sites, --splay, --churn and --tracker take comma-separated lists; the runs
// are every combination. With --table, a list flag not given takes the fleet table's values
// (1,000 and 10,000 nodes; 1 GiB and 10 GiB; one site and two; no splay and 60 s; no churn and
// 1%; pkgsync's tracker and a stock one); without it, the first of them. Every run has 50
// racks per site, 10 Gbit/s nodes and a 10 Gbit/s origin unless told otherwise.
//
// Output: a Markdown table on stdout (and --md FILE), {"runs": [...]} in --json FILE with per
// run nodes, bytes, A_s, B_s, efficiency, origin_bytes_ratio, interdc_bytes_ratio, p50_s, p99_s
// and the scenario, and a PNG (--png FILE): the completion-time CDF of every run, and its
// origin and inter-site bytes over F. A is when the last node completed, counted from the first
// start; p50 and p99 are of each node's own time from its start; B = max(F/u_origin, F/d_node,
// N*F/(u_origin + sum of uploads)), and F over the inter-site rate when that is capped. The
// JSON holds only simulated figures, so the same flags give the same bytes; the wall time of
// each run goes to stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/internal/progress"

	"github.com/pkgsync/pkgsync/swarmsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "swarmsim:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	table, validate                   bool
	jsonPath, mdPath, pngPath, lab    string
	cpuProfile                        string
	nodes, sizes, sites, splays       string
	churns, trackers                  string
	racks, maxPeers, maxConns, pipe   int
	fetchers                          int
	rate, originRate, rackRate, inter float64
	have                              float64
	claimDelay                        time.Duration
	down                              time.Duration
	noSiteRule, noElect               bool
	seed                              uint64
}

func parseArgs(args []string, stderr io.Writer) (*options, error) {
	fs := pflag.NewFlagSet("swarmsim", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.table, "table", false, "run the fleet table (list flags not given take its values)")
	fs.BoolVar(&o.validate, "validate", false, "run the lab's scenarios through the model and compare with --lab")
	fs.StringVar(&o.lab, "lab", "", "a swarmbench JSON (--json of cmd/swarmbench) to compare with, for --validate")
	fs.StringVar(&o.jsonPath, "json", "", "write the runs as JSON {\"runs\": [...]} to this file")
	fs.StringVar(&o.mdPath, "md", "", "write the Markdown table to this file too")
	fs.StringVar(&o.pngPath, "png", "", "draw the completion-time CDFs and the origin and inter-site bytes to this PNG")
	fs.StringVar(&o.nodes, "nodes", "10000", "nodes (a comma-separated list)")
	fs.StringVar(&o.sizes, "size", "10G", "package size, a byte count or with K, M or G (a list)")
	fs.StringVar(&o.sites, "sites", "1", "sites, the origin in the first (a list)")
	fs.StringVar(&o.splays, "splay", "0s", "each node starts at a uniform random offset below this (a list)")
	fs.StringVar(&o.churns, "churn", "0", "share of nodes killed once mid-run and restarted --down later, 0 to 1 (a list)")
	fs.StringVar(&o.trackers, "tracker", "pkgsync", "pkgsync (ranked peer lists, origin roles) or stock (random peer lists) (a list)")
	fs.IntVar(&o.racks, "racks", 50, "racks per site")
	fs.Float64Var(&o.rate, "rate", 10000, "each node's upload and download in Mbit/s")
	fs.Float64Var(&o.originRate, "origin-rate", 10000, "the origin's upload in Mbit/s")
	fs.Float64Var(&o.rackRate, "rack-rate", 0, "each rack's link to its site, each way, in Mbit/s (0: not a bottleneck)")
	fs.Float64Var(&o.inter, "interdc-rate", 0, "the link between two sites, each way, in Mbit/s (0: not a bottleneck)")
	fs.IntVar(&o.fetchers, "fetchers", 0, "origin fetchers pkgsync's tracker names per swarm (0: as many as a peer list holds, at most 128)")
	fs.IntVar(&o.maxPeers, "max-peers", 200, "the tracker's cap on a peer list")
	fs.IntVar(&o.maxConns, "max-conns", 128, "connections per node (pkgsync's default)")
	fs.BoolVar(&o.noElect, "no-elect", false, "under a stock tracker, nodes do not elect origin fetchers among themselves (each cuts blocks among the peers it is connected to)")
	fs.IntVar(&o.pipe, "pipeline", 8, "pieces a node fetches from peers at once")
	fs.Float64Var(&o.have, "have", 0, "delta: the share of pieces every node already has")
	fs.DurationVar(&o.down, "down", 5*time.Second, "how long a churned node stays down")
	fs.DurationVar(&o.claimDelay, "claim-delay", 0, "how long after a node starts an origin fetch its peers see its claim (0: at once, as every other message)")
	fs.BoolVar(&o.noSiteRule, "no-site-rule", false, "with several sites, nodes have no topology (every peer allowed)")
	fs.Uint64Var(&o.seed, "seed", 1, "the random seed: the same flags and seed give the same JSON")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the runs to this file (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.table {
		fleet := map[string]*string{"nodes": &o.nodes, "size": &o.sizes, "sites": &o.sites, "splay": &o.splays,
			"churn": &o.churns, "tracker": &o.trackers}
		values := map[string]string{"nodes": "1000,10000", "size": "1G,10G", "sites": "1,2", "splay": "0s,60s",
			"churn": "0,0.01", "tracker": "pkgsync,stock"}
		for name, p := range fleet {
			if !fs.Changed(name) {
				*p = values[name]
			}
		}
	}
	if o.validate && o.lab == "" {
		return nil, errors.New("--validate needs --lab FILE, a swarmbench JSON (go run ./cmd/swarmbench --short --json FILE)")
	}
	return &o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// A run of 10,000 nodes keeps a few hundred MB live and allocates steadily (rounds, flows):
	// collecting when the heap has grown by twice the live part, not once, collects half as often.
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		stopProfile, err := startProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer func() {
			if err := stopProfile(); err != nil {
				fmt.Fprintln(stderr, "swarmsim:", err)
			}
		}()
	}
	if o.validate {
		return validate(ctx, o, stdout, stderr)
	}
	scs, err := o.scenarios()
	if err != nil {
		return err
	}
	runs, err := runAll(ctx, scs, stderr)
	if err != nil {
		return err
	}
	return o.write(runs, stdout)
}

// startProfile starts writing a CPU profile to path; the function it returns stops it and
// closes the file.
func startProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return nil
	}, nil
}

// runAll runs the scenarios one after the other, logging each to stderr.
func runAll(ctx context.Context, scs []swarmsim.Scenario, stderr io.Writer) ([]*swarmsim.Result, error) {
	var runs []*swarmsim.Result
	for i, sc := range scs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		last := start
		sc.Progress = func(t time.Duration, done int, origin int64) {
			if time.Since(last) >= 10*time.Second {
				last = time.Now()
				fmt.Fprintf(stderr, "swarmsim: run %d/%d %s: at %s simulated, %d of %d nodes done, the origin sent %.2f F, %s\n",
					i+1, len(scs), sc.Name, t.Round(time.Millisecond), done, sc.Nodes, float64(origin)/float64(sc.Size),
					time.Since(start).Round(time.Second))
			}
		}
		r, err := swarmsim.Run(ctx, sc)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "swarmsim: run %d/%d %s: %d events in %s\n", i+1, len(scs), sc.Name, r.Events,
			time.Since(start).Round(time.Millisecond))
		runs = append(runs, r)
	}
	return runs, nil
}

// write prints the table and writes the files asked for.
func (o *options) write(runs []*swarmsim.Result, stdout io.Writer) error {
	var md strings.Builder
	if err := swarmsim.WriteTable(&md, runs); err != nil {
		return err
	}
	if _, err := io.WriteString(stdout, md.String()); err != nil {
		return err
	}
	if o.mdPath != "" {
		if err := os.WriteFile(o.mdPath, []byte(md.String()), 0o644); err != nil {
			return fmt.Errorf("writing the table: %w", err)
		}
	}
	if o.jsonPath != "" {
		b, err := json.MarshalIndent(struct {
			Runs []*swarmsim.Result `json:"runs"`
		}{runs}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing the JSON: %w", err)
		}
	}
	if o.pngPath != "" {
		if err := drawChart(o.pngPath, runs); err != nil {
			return fmt.Errorf("drawing %s: %w", o.pngPath, err)
		}
	}
	return nil
}

// scenarios is every combination of the list flags.
func (o *options) scenarios() ([]swarmsim.Scenario, error) {
	nodes, err := parseList(o.nodes, "--nodes", func(s string) (int, error) { return strconv.Atoi(s) })
	if err != nil {
		return nil, err
	}
	sizes, err := parseList(o.sizes, "--size", progress.ParseSize)
	if err != nil {
		return nil, err
	}
	sites, err := parseList(o.sites, "--sites", func(s string) (int, error) { return strconv.Atoi(s) })
	if err != nil {
		return nil, err
	}
	splays, err := parseList(o.splays, "--splay", time.ParseDuration)
	if err != nil {
		return nil, err
	}
	churns, err := parseList(o.churns, "--churn", func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	if err != nil {
		return nil, err
	}
	trackers, err := parseList(o.trackers, "--tracker", func(s string) (string, error) { return s, nil })
	if err != nil {
		return nil, err
	}
	var out []swarmsim.Scenario
	for _, n := range nodes {
		for _, f := range sizes {
			for _, st := range sites {
				for _, sp := range splays {
					for _, ch := range churns {
						for _, tr := range trackers {
							out = append(out, o.scenario(n, f, st, sp, ch, tr))
						}
					}
				}
			}
		}
	}
	return out, nil
}

// mbit converts Mbit/s into bytes per second.
func mbit(r float64) float64 { return r * 1e6 / 8 }

func (o *options) scenario(n int, f int64, sites int, splay time.Duration, churn float64, tracker string) swarmsim.Scenario {
	sc := swarmsim.Scenario{
		Nodes: n, Size: f, Sites: sites, Racks: o.racks, NodeRate: mbit(o.rate), OriginRate: mbit(o.originRate),
		RackRate: mbit(o.rackRate), InterSiteRate: mbit(o.inter), Tracker: tracker, Fetchers: o.fetchers, MaxPeers: o.maxPeers,
		MaxConns: o.maxConns, SiteRule: !o.noSiteRule, Splay: splay, Churn: churn, Down: o.down, Have: o.have, ClaimDelay: o.claimDelay, NoElect: o.noElect,
		Pipeline: o.pipe, Seed: o.seed,
	}
	sc.Name = fmt.Sprintf("n%d-%s-%dsite-splay%s-churn%g-%s", n, swarmsim.SizeString(f), sites, splay, churn, tracker)
	if o.have > 0 {
		sc.Name += fmt.Sprintf("-have%g", o.have)
	}
	return sc
}

// parseList reads a comma-separated list with parse.
func parseList[T any](s, flag string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, s, err)
		}
		out = append(out, v)
	}
	return out, nil
}
