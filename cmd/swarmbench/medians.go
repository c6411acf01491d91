package main

import (
	"fmt"
	"slices"
	"strings"
)

// group is the runs of one configuration: the same scenario, client, N, package, rates and
// swarm settings, repeated with --repeat.
type group struct {
	first *Run
	runs  []*Run
}

// groupRuns groups the runs by configuration, in the order each first ran.
func groupRuns(runs []*Run) []*group {
	var gs []*group
	byKey := map[string]*group{}
	for _, r := range runs {
		k := fmt.Sprintf("%s|%s|%d|%d|%g|%g|%s", r.Scenario, r.Client, r.Nodes, r.Bytes, r.NodeRateMbit, r.OriginRateMbit,
			swarmString(r.Tracker, r.MaxPeers, r.OriginFetchers, r.SplayS, r.Churn))
		g := byKey[k]
		if g == nil {
			g = &group{first: r}
			byKey[k] = g
			gs = append(gs, g)
		}
		g.runs = append(g.runs, r)
	}
	return gs
}

// mediansTable renders, when some configuration ran more than once, the median of each figure
// over its runs (over the runs that have it: a failed run has no A), with the range of the load
// averages the runs started at. It is empty otherwise.
func mediansTable(runs []*Run) string {
	gs := groupRuns(runs)
	if !slices.ContainsFunc(gs, func(g *group) bool { return len(g.runs) > 1 }) {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n### Medians over the repetitions\n\n")
	b.WriteString("| scenario | client | N | F | swarm | runs ok | A s | B/A | (A-D)/B | origin sent | of it, package | origin meta/node | CPU % | CPU s/node | load avg | nodes ok |\n")
	b.WriteString("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, g := range gs {
		r := g.first
		ok, verified, nodes := 0, 0, 0
		var loads []float64
		for _, x := range g.runs {
			ok += btoi(x.Error == "")
			verified += x.Verified
			nodes += x.Nodes
			if x.LoadAvgStart != nil {
				loads = append(loads, x.LoadAvgStart[0])
			}
		}
		load := "–"
		if len(loads) > 0 {
			load = fmt.Sprintf("%.2f-%.2f", slices.Min(loads), slices.Max(loads))
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |\n",
			r.Scenario, r.Client, r.Nodes, sizeString(r.Bytes), swarmString(r.Tracker, r.MaxPeers, r.OriginFetchers, r.SplayS, r.Churn),
			ok, len(g.runs),
			medianOf(g.runs, "%.1f", func(x *Run) *float64 { return x.A }),
			medianOf(g.runs, "%.2f", func(x *Run) *float64 { return x.Efficiency }),
			medianOf(g.runs, "%.2f", func(x *Run) *float64 { return x.AMinusSplayOverB }),
			medianOf(g.runs, "%.2f "+r.unit(), func(x *Run) *float64 { return &x.OriginBytesRatio }),
			medianOf(g.runs, "%.3f "+r.unit(), func(x *Run) *float64 { return x.OriginPackageRatio }),
			medianOf(g.runs, "%.1f KiB", func(x *Run) *float64 {
				if x.OriginMetaBytes == nil || x.Nodes == 0 {
					return nil
				}
				v := float64(*x.OriginMetaBytes) / float64(x.Nodes) / kib
				return &v
			}),
			medianOf(g.runs, "%.0f", func(x *Run) *float64 { return &x.CPUPercent }),
			medianOf(g.runs, "%.2f", func(x *Run) *float64 { return &x.ClientsCPUSPerNode }),
			load, verified, nodes)
	}
	return b.String()
}

// medianOf prints the median of what get gives for the runs that were measured and have it,
// "–" if none does.
func medianOf(runs []*Run, format string, get func(*Run) *float64) string {
	var xs []float64
	for _, r := range runs {
		if v := get(r); v != nil && r.Hosts != nil {
			xs = append(xs, *v)
		}
	}
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf(format, median(xs))
}
