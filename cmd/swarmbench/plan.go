package main

import (
	"fmt"
	"strings"
)

// The scenarios.
const (
	scenarioFanout  = "fanout"  // origin with a web seed only, N empty nodes
	scenarioClassic = "classic" // the origin also runs a BitTorrent seeder
	scenarioDelta   = "delta"   // N nodes hold v1 and update to v2 at once
	scenarioTwoDC   = "twodc"   // N/2 nodes on each side of a shaped inter-DC link, origin in the first
)

var allScenarios = []string{scenarioFanout, scenarioClassic, scenarioDelta, scenarioTwoDC}

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
}

// The modes. Rates and sizes keep the runs bandwidth-bound on a 2-core machine. Measured there
// at 25 Mbit/s, 16 pkgsync nodes used about 1.4 CPU seconds each to receive and pass on 32 MiB
// (aria2c nodes a third of that, so the kernel's share of it is small): at the bound that is
// nearly both cores, so a fast client would be measured against the CPU, not the network. At
// 10 Mbit/s it is under half the machine, and every run reports its CPU use to show it.
var (
	modeSmoke = mode{name: "smoke", size: 4 * mib, nodeRate: 25 * mbit, interDCFactor: 2,
		runs:    []scenarioRun{{scenarioFanout, 4}, {scenarioDelta, 4}},
		clients: []string{clientPkgsync}}
	modeShort = mode{name: "short", size: 16 * mib, nodeRate: 10 * mbit, interDCFactor: 2,
		runs:    []scenarioRun{{scenarioFanout, 16}, {scenarioDelta, 16}},
		clients: allClients}
	modeFull = mode{name: "full", size: 32 * mib, nodeRate: 10 * mbit, interDCFactor: 2,
		runs: []scenarioRun{{scenarioFanout, 4}, {scenarioFanout, 8}, {scenarioFanout, 16},
			{scenarioClassic, 16}, {scenarioDelta, 16}, {scenarioTwoDC, 16}},
		clients: allClients}
)

// overrides are the flags that change a mode's defaults; zero values keep them.
type overrides struct {
	clients, scenarios []string
	nodes              []int
	size               int64
	nodeRate           int64
	originRate         int64
	interDCRate        int64
}

// plan expands a mode into runs: for each scenario and node count, one run per client, so that
// the clients of one scenario sit side by side in the table.
func plan(m mode, o overrides) ([]spec, error) {
	clients := m.clients
	if len(o.clients) > 0 {
		clients = o.clients
	}
	for _, c := range clients {
		if !contains(allClients, c) {
			return nil, fmt.Errorf("unknown client %q: want some of %s", c, strings.Join(allClients, ","))
		}
	}
	for _, s := range o.scenarios {
		if !contains(allScenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q: want some of %s", s, strings.Join(allScenarios, ","))
		}
	}
	size, rate := m.size, m.nodeRate
	if o.size > 0 {
		size = o.size
	}
	if size < mib {
		return nil, fmt.Errorf("package size %d: want at least 1 MiB", size)
	}
	if o.nodeRate > 0 {
		rate = o.nodeRate
	}
	originRate, interDC := rate, rate*m.interDCFactor
	if o.originRate > 0 {
		originRate = o.originRate
	}
	if o.interDCRate > 0 {
		interDC = o.interDCRate
	}
	runs := m.runs
	if len(o.scenarios) > 0 {
		// The scenarios asked for, at the mode's node counts (or at 16 if the mode has none).
		var rs []scenarioRun
		for _, s := range o.scenarios {
			found := false
			for _, r := range m.runs {
				if r.scenario == s {
					rs, found = append(rs, r), true
				}
			}
			if !found {
				rs = append(rs, scenarioRun{s, 16})
			}
		}
		runs = rs
	}
	if len(o.nodes) > 0 {
		var rs []scenarioRun
		seen := map[string]bool{}
		for _, r := range runs {
			if seen[r.scenario] {
				continue
			}
			seen[r.scenario] = true
			for _, n := range o.nodes {
				rs = append(rs, scenarioRun{r.scenario, n})
			}
		}
		runs = rs
	}
	var specs []spec
	for _, r := range runs {
		if r.nodes < 1 || r.nodes > 99 {
			return nil, fmt.Errorf("%d nodes: want 1 to 99", r.nodes)
		}
		if r.scenario == scenarioTwoDC && r.nodes < 2 {
			return nil, fmt.Errorf("two data centers need at least 2 nodes, got %d", r.nodes)
		}
		for _, c := range clients {
			sp := spec{Scenario: r.scenario, Client: c, Nodes: r.nodes, Size: size, NodeRate: rate, OriginRate: originRate}
			if r.scenario == scenarioTwoDC {
				sp.InterDCRate = interDC
			}
			specs = append(specs, sp)
		}
	}
	return specs, nil
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
