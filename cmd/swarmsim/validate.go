package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/pkgsync/pkgsync/swarmsim"
)

// labRun is what --validate reads of one run in a swarmbench JSON.
type labRun struct {
	Scenario         string   `json:"scenario"`
	Client           string   `json:"client"`
	Nodes            int      `json:"nodes"`
	Bytes            int64    `json:"bytes"`
	ChangedBytes     *int64   `json:"changed_bytes"`
	NodeRateMbit     float64  `json:"node_rate_mbit"`
	OriginRateMbit   float64  `json:"origin_rate_mbit"`
	InterDCRateMbit  *float64 `json:"interdc_rate_mbit"`
	A                *float64 `json:"A_s"`
	OriginBytesRatio float64  `json:"origin_bytes_ratio"`
	InterDCRatio     *float64 `json:"interdc_bytes_ratio"`
	// The scale scenario's options (issue 19); absent in older files.
	MaxPeers *int     `json:"max_peers"`
	SplayS   *float64 `json:"splay_s"`
	Churn    *float64 `json:"churn"`
}

// labScenarios are the swarmbench scenarios the model covers. classic (a BitTorrent seeder
// beside the origin) is not one: the model has no seeder on the origin's host.
var labScenarios = []string{"fanout", "delta", "twodc", "scale"}

// readLab reads the pkgsync runs of a swarmbench JSON, grouped by scenario and node count.
func readLab(path string) (map[string][]labRun, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var doc struct {
		Runs []labRun `json:"runs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: not a swarmbench JSON: %w", path, err)
	}
	groups := map[string][]labRun{}
	var order []string
	for i, r := range doc.Runs {
		if r.Client != "pkgsync" || !slices.Contains(labScenarios, r.Scenario) {
			continue
		}
		if r.Nodes < 1 || r.Bytes <= 0 || r.NodeRateMbit <= 0 || r.OriginRateMbit <= 0 {
			return nil, nil, fmt.Errorf("%s: run %d (%s, N = %d): nodes, bytes, node_rate_mbit and origin_rate_mbit must be positive",
				path, i, r.Scenario, r.Nodes)
		}
		k := fmt.Sprintf("%s/%d", r.Scenario, r.Nodes)
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	if len(order) == 0 {
		return nil, nil, fmt.Errorf("%s: no pkgsync run of %v", path, labScenarios)
	}
	return groups, order, nil
}

// labScenario is the model of a lab run: one switch (one rack), the lab's rates, and the
// scenario's own settings.
func labScenario(r labRun, seed uint64) swarmsim.Scenario {
	sc := swarmsim.Scenario{
		Name: fmt.Sprintf("%s/%d", r.Scenario, r.Nodes), Nodes: r.Nodes, Size: r.Bytes, Sites: 1, Racks: 1,
		NodeRate: mbit(r.NodeRateMbit), OriginRate: mbit(r.OriginRateMbit), Tracker: swarmsim.TrackerPkgsync,
		SiteRule: true, Seed: seed,
	}
	switch r.Scenario {
	case "delta":
		if r.ChangedBytes != nil {
			sc.Have = max(0, 1-float64(*r.ChangedBytes)/float64(r.Bytes))
		}
	case "twodc":
		sc.Sites = 2
		if r.InterDCRateMbit != nil {
			sc.InterSiteRate = mbit(*r.InterDCRateMbit)
		}
	case "scale":
		sc.MaxPeers, sc.Splay, sc.Churn = 16, 20*time.Second, 0.1
		if r.MaxPeers != nil {
			sc.MaxPeers = *r.MaxPeers
		}
		if r.SplayS != nil {
			sc.Splay = time.Duration(*r.SplayS * float64(time.Second))
		}
		if r.Churn != nil {
			sc.Churn = *r.Churn
		}
	}
	return sc
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// validate runs every lab scenario through the model and prints both side by side: A within
// 20% and origin bytes within 10% of the lab's medians pass.
func validate(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	groups, order, err := readLab(o.lab)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "| scenario | N | lab runs | lab A s | model A s | model/lab A | lab origin / F | model origin / F | lab inter-site / F | model inter-site / F | within |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	var models []*swarmsim.Result
	for _, k := range order {
		runs := groups[k]
		var as, origins, inters []float64
		for _, r := range runs {
			if r.A != nil {
				as = append(as, *r.A)
			}
			origins = append(origins, r.OriginBytesRatio)
			if r.InterDCRatio != nil {
				inters = append(inters, *r.InterDCRatio)
			}
		}
		res, err := runAll(ctx, []swarmsim.Scenario{labScenario(runs[0], o.seed)}, stderr)
		if err != nil {
			return err
		}
		m := res[0]
		models = append(models, m)
		fmt.Fprintln(stdout, compareRow(runs[0], len(runs), as, origins, inters, m))
	}
	if o.jsonPath != "" || o.pngPath != "" || o.mdPath != "" {
		return o.write(models, io.Discard)
	}
	return nil
}

// compareRow is one line of the validation table.
func compareRow(r labRun, n int, as, origins, inters []float64, m *swarmsim.Result) string {
	labA, modelA, ratio := "never", "never", "-"
	ok := len(as) > 0 && m.A != nil
	if len(as) > 0 {
		labA = fmt.Sprintf("%.1f", median(as))
	}
	if m.A != nil {
		modelA = fmt.Sprintf("%.1f", *m.A)
	}
	if ok {
		q := *m.A / median(as)
		ratio = fmt.Sprintf("%.2f", q)
		ok = math.Abs(q-1) <= 0.2
	}
	lo := median(origins)
	ok = ok && math.Abs(m.OriginBytesRatio-lo) <= 0.1*lo
	labI, modelI := "-", "-"
	if len(inters) > 0 {
		labI = fmt.Sprintf("%.2f", median(inters))
	}
	if m.InterDCBytesRatio != nil {
		modelI = fmt.Sprintf("%.2f", *m.InterDCBytesRatio)
	}
	verdict := "no"
	if ok {
		verdict = "yes"
	}
	return fmt.Sprintf("| %s | %d | %d | %s | %s | %s | %.2f | %.2f | %s | %s | %s |",
		r.Scenario, r.Nodes, n, labA, modelA, ratio, lo, m.OriginBytesRatio, labI, modelI, verdict)
}
