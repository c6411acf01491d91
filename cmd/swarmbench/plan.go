package main

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/originplan"
	pkgtracker "github.com/pkgsync/pkgsync/tracker"
)

// The scenarios.
const (
	scenarioFanout  = "fanout"  // origin with a web seed only, N empty nodes
	scenarioClassic = "classic" // the origin also runs a BitTorrent seeder
	scenarioDelta   = "delta"   // N nodes hold v1 and update to v2 at once
	scenarioTwoDC   = "twodc"   // N/2 nodes on each side of a shaped inter-DC link, origin in the first
	// scenarioScale is a fan-out as a fleet run by cron sees it: the nodes start over a splay,
	// know only the peers of a capped peer list, and some are killed mid-transfer and restarted.
	scenarioScale = "scale"
)

var allScenarios = []string{scenarioFanout, scenarioClassic, scenarioDelta, scenarioTwoDC, scenarioScale}

// The trackers a run can use.
const (
	// trackerEmbedded is pkgsync serve --tracker: the origin is also the tracker.
	trackerEmbedded = "embedded"
	// trackerOpentracker is Debian's opentracker on the origin's host, beside pkgsync serve as a
	// plain web seed: the stock setup.
	trackerOpentracker = "opentracker"
)

var allTrackers = []string{trackerEmbedded, trackerOpentracker}

// maxNodes is the most nodes a run can have: node addresses are 198.18.DC.10 to .249.
const maxNodes = 240

// churnRestart is how long a killed node stays down before it is started again, as in swarmsim.
const churnRestart = 5 * time.Second

const (
	kib  = 1 << 10
	mib  = 1 << 20
	mbit = 1_000_000 // tc's "mbit"
)

// spec is one run: one scenario with one client as the nodes.
type spec struct {
	Scenario string
	Client   string
	Nodes    int
	Size     int64 // F, the package (v2) is about this size
	// Shaped rates in bits per second: every node's upload and download, the origin's upload
	// and download, and the inter-DC link in each direction (twodc only).
	NodeRate, OriginRate, InterDCRate int64
	swarm
	// Tracker is trackerEmbedded or trackerOpentracker.
	Tracker string
	// Seed draws the splay offsets and which nodes are killed, and when: the clients of one
	// scenario get the same draws. Rep counts the repetitions of the same run from 1.
	Seed uint64
	Rep  int
}

// swarm is how the nodes meet and come and go.
type swarm struct {
	// MaxPeers caps the peers of each tracker answer (0: the tracker's own cap).
	MaxPeers int
	// OriginFetchers is the embedded tracker's --origin-fetchers, as the run passes it (0: off;
	// pkgsync serve's default unless --origin-fetchers says otherwise, see defaultFetchers).
	OriginFetchers int
	// Splay spreads the nodes' starts: each starts at a uniform random offset in [0, Splay).
	Splay time.Duration
	// Churn is the share of nodes (rounded) killed with SIGKILL once, at a random point of their
	// download, and started again churnRestart later.
	Churn float64
}

// mode is a set of runs: --smoke, --short or the full default.
type mode struct {
	name     string
	size     int64
	nodeRate int64
	// interDCFactor times nodeRate is the inter-DC rate.
	interDCFactor int64
	runs          []scenarioRun
	clients       []string
}

type scenarioRun struct {
	scenario string
	nodes    int
	// size and nodeRate replace the mode's when set; swarm is the scenario's own, and tracker
	// its tracker when not the embedded one.
	size, nodeRate int64
	swarm          swarm
	tracker        string
}

// scaleRun is the scale scenario of issue 19 in the full mode and alone: 64 nodes, peer lists
// of 16, starts over 20 s, 10% of the nodes killed and restarted. The package and the rates are
// smaller than the other scenarios' so that 64 nodes stay bandwidth-bound on 2 cores.
var scaleRun = scenarioRun{scenario: scenarioScale, nodes: 64, size: 8 * mib, nodeRate: 4 * mbit,
	swarm: swarm{MaxPeers: 16, Splay: 20 * time.Second, Churn: 0.10}}

// The modes. Rates and sizes keep the runs bandwidth-bound on a 2-core machine. Measured there
// at 25 Mbit/s, 16 pkgsync nodes used about 1.4 CPU seconds each to receive and pass on 32 MiB
// (aria2c nodes a third of that, so the kernel's share of it is small): at the bound that is
// nearly both cores, so a fast client would be measured against the CPU, not the network. At
// 10 Mbit/s it is under half the machine, and every run reports its CPU use to show it.
var (
	// The smoke's scale run is tiny: 6 nodes, peer lists of 3, starts over 3 s, 2 nodes killed;
	// and a fan-out goes through opentracker.
	modeSmoke = mode{name: "smoke", size: 4 * mib, nodeRate: 25 * mbit, interDCFactor: 2,
		runs: []scenarioRun{{scenario: scenarioFanout, nodes: 4}, {scenario: scenarioDelta, nodes: 4},
			{scenario: scenarioScale, nodes: 6, swarm: swarm{MaxPeers: 3, Splay: 3 * time.Second, Churn: 0.34}},
			{scenario: scenarioFanout, nodes: 4, tracker: trackerOpentracker}},
		clients: []string{clientPkgsync}}
	modeShort = mode{name: "short", size: 16 * mib, nodeRate: 10 * mbit, interDCFactor: 2,
		runs:    []scenarioRun{{scenario: scenarioFanout, nodes: 16}, {scenario: scenarioDelta, nodes: 16}},
		clients: allClients}
	modeFull = mode{name: "full", size: 32 * mib, nodeRate: 10 * mbit, interDCFactor: 2,
		runs: []scenarioRun{{scenario: scenarioFanout, nodes: 4}, {scenario: scenarioFanout, nodes: 8},
			{scenario: scenarioFanout, nodes: 16}, {scenario: scenarioClassic, nodes: 16},
			{scenario: scenarioDelta, nodes: 16}, {scenario: scenarioTwoDC, nodes: 16}, scaleRun},
		clients: allClients}
)

// overrides are the flags that change a mode's defaults; zero values (nil pointers) keep them.
type overrides struct {
	clients, scenarios []string
	nodes              []int
	size               int64
	nodeRate           int64
	originRate         int64
	interDCRate        int64
	maxPeers           *int
	originFetchers     *int // nil: pkgsync serve's default
	splay              *time.Duration
	churn              *float64
	tracker            string
}

// plan expands a mode into runs: for each scenario and node count, one run per client, so that
// the clients of one scenario sit side by side in the table.
func plan(m mode, o overrides) ([]spec, error) {
	clients := m.clients
	if len(o.clients) > 0 {
		clients = o.clients
	}
	if err := checkNames(o, clients); err != nil {
		return nil, err
	}
	var specs []spec
	for _, r := range selectRuns(m, o) {
		sp, err := runSpec(m, o, r)
		if err != nil {
			return nil, err
		}
		tracker := cmp.Or(o.tracker, r.tracker, trackerEmbedded)
		sp.Tracker = tracker
		if o.originFetchers == nil {
			sp.OriginFetchers = defaultFetchers(tracker, sp.MaxPeers)
		}
		if tracker == trackerOpentracker && sp.MaxPeers > 0 {
			return nil, fmt.Errorf("%s with --max-peers %d: opentracker's cap on a peer list is fixed when it is built "+
				"(200, and a client's numwant below it), so --max-peers needs --tracker %s (--max-peers 0 runs uncapped)",
				r.scenario, sp.MaxPeers, trackerEmbedded)
		}
		if tracker == trackerOpentracker && sp.OriginFetchers > 0 {
			return nil, fmt.Errorf("%s with --origin-fetchers %d: only the embedded tracker names origin fetchers (--tracker %s)",
				r.scenario, sp.OriginFetchers, trackerEmbedded)
		}
		for _, c := range clients {
			sp.Client = c
			specs = append(specs, sp)
		}
	}
	return specs, nil
}

// checkNames checks the clients, scenarios and tracker asked for.
func checkNames(o overrides, clients []string) error {
	for _, c := range clients {
		if !contains(allClients, c) {
			return fmt.Errorf("unknown client %q: want some of %s", c, strings.Join(allClients, ","))
		}
	}
	for _, s := range o.scenarios {
		if !contains(allScenarios, s) {
			return fmt.Errorf("unknown scenario %q: want some of %s", s, strings.Join(allScenarios, ","))
		}
	}
	if o.tracker != "" && !contains(allTrackers, o.tracker) {
		return fmt.Errorf("unknown tracker %q: want one of %s", o.tracker, strings.Join(allTrackers, ","))
	}
	return nil
}

// selectRuns is the mode's runs, or the scenarios asked for at the mode's node counts (at the
// scale scenario's own, or 16, for one the mode lacks), at the node counts asked for if any.
func selectRuns(m mode, o overrides) []scenarioRun {
	runs := m.runs
	if len(o.scenarios) > 0 {
		var rs []scenarioRun
		for _, s := range o.scenarios {
			found := false
			for _, r := range m.runs {
				if r.scenario == s {
					rs, found = append(rs, r), true
				}
			}
			switch {
			case found:
			case s == scenarioScale:
				rs = append(rs, scaleRun)
			default:
				rs = append(rs, scenarioRun{scenario: s, nodes: 16})
			}
		}
		runs = rs
	}
	if len(o.nodes) == 0 {
		return runs
	}
	var rs []scenarioRun
	seen := map[string]bool{}
	for _, r := range runs {
		if seen[r.scenario] {
			continue
		}
		seen[r.scenario] = true
		for _, n := range o.nodes {
			r.nodes = n
			rs = append(rs, r)
		}
	}
	return rs
}

// defaultFetchers is the origin fetchers pkgsync serve --tracker names per swarm when not told:
// originplan.DefaultFetchers, at most its peer-list cap (maxPeers, 0 for the tracker's own);
// none under opentracker, which hands out no roles.
func defaultFetchers(tracker string, maxPeers int) int {
	if tracker != trackerEmbedded {
		return 0
	}
	return min(originplan.DefaultFetchers, cmp.Or(maxPeers, pkgtracker.DefaultMaxPeers))
}

// runSpec is run r of mode m with the overrides applied: sizes, rates and the swarm's settings.
func runSpec(m mode, o overrides, r scenarioRun) (spec, error) {
	size, rate := cmp.Or(o.size, r.size, m.size), cmp.Or(o.nodeRate, r.nodeRate, m.nodeRate)
	sp := spec{Scenario: r.scenario, Nodes: r.nodes, Size: size, NodeRate: rate,
		OriginRate: cmp.Or(o.originRate, rate), swarm: r.swarm}
	if r.scenario == scenarioTwoDC {
		sp.InterDCRate = cmp.Or(o.interDCRate, rate*m.interDCFactor)
	}
	if o.maxPeers != nil {
		sp.MaxPeers = *o.maxPeers
	}
	if o.originFetchers != nil {
		sp.OriginFetchers = *o.originFetchers
	}
	if o.splay != nil {
		sp.Splay = *o.splay
	}
	if o.churn != nil {
		sp.Churn = *o.churn
	}
	switch {
	case size < mib:
		return sp, fmt.Errorf("package size %d: want at least 1 MiB", size)
	case r.nodes < 1 || r.nodes > maxNodes:
		return sp, fmt.Errorf("%d nodes: want 1 to %d", r.nodes, maxNodes)
	case r.scenario == scenarioTwoDC && r.nodes < 2:
		return sp, fmt.Errorf("two data centers need at least 2 nodes, got %d", r.nodes)
	case sp.OriginFetchers < 0:
		return sp, fmt.Errorf("--origin-fetchers %d: want 0 (off) or more", sp.OriginFetchers)
	case sp.MaxPeers < 0:
		return sp, fmt.Errorf("--max-peers %d: want 1 or more, or 0 for the tracker's own cap", sp.MaxPeers)
	case sp.Splay < 0:
		return sp, fmt.Errorf("--splay %v: want 0 or more", sp.Splay)
	case sp.Churn < 0 || sp.Churn > 1:
		return sp, fmt.Errorf("--churn %g: want a share of the nodes from 0 to 1", sp.Churn)
	}
	return sp, nil
}

// bound is B in seconds: the least time in which an origin uploading at uo bits per second can
// give payload bytes to each of n nodes that upload at u and download at d, B = max(F/uo, F/d,
// n*F/(uo + n*u)); with an inter-DC link of interDC bits per second (0: none) the far data
// center must receive F over it, so B is at least F/interDC too.
func bound(payload int64, n int, uo, u, d, interDC int64) float64 {
	f := float64(payload) * 8
	b := max(f/float64(uo), f/float64(d), float64(n)*f/(float64(uo)+float64(n)*float64(u)))
	if interDC > 0 {
		b = max(b, f/float64(interDC))
	}
	return b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
