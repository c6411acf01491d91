package swarmsim

import (
	"fmt"
	"io"
	"math"
	"slices"
)

// Result is what one run measured. Times are simulated seconds from the first start.
type Result struct {
	Scenario string  `json:"scenario"`
	Nodes    int     `json:"nodes"`
	Bytes    int64   `json:"bytes"`
	Pieces   int     `json:"pieces"`
	Sites    int     `json:"sites"`
	Racks    int     `json:"racks_per_site"`
	Tracker  string  `json:"tracker"`
	SplayS   float64 `json:"splay_s"`
	Churn    float64 `json:"churn"`
	Have     float64 `json:"have"`
	NodeRate float64 `json:"node_rate_bytes_per_s"`
	Origin   float64 `json:"origin_rate_bytes_per_s"`
	Seed     uint64  `json:"seed"`
	// MissingBytes is U, what every node lacks at the start (F without a delta).
	MissingBytes int64 `json:"missing_bytes"`

	// A is when the last node completed (null when some never did); B the bound.
	A          *float64 `json:"A_s"`
	B          float64  `json:"B_s"`
	Efficiency *float64 `json:"efficiency"`
	// P50 and P99 are of each node's own time, from its first start to its completion.
	P50 float64 `json:"p50_s"`
	P99 float64 `json:"p99_s"`

	OriginBytes       int64    `json:"origin_bytes"`
	OriginBytesRatio  float64  `json:"origin_bytes_ratio"`  // over U
	InterDCBytes      *int64   `json:"interdc_bytes"`       // the busier direction
	InterDCBytesRatio *float64 `json:"interdc_bytes_ratio"` // over U
	WastedBytes       int64    `json:"wasted_bytes"`        // moved by transfers cut short
	Completed         int      `json:"completed"`
	Events            int64    `json:"events"`

	// NodeTimes are each node's own times, for the CDF chart; not in the JSON.
	NodeTimes []float64 `json:"-"`
}

func (s *sim) result() *Result {
	sc := s.sc
	u := s.missingBytes()
	r := &Result{Scenario: sc.Name, Nodes: sc.Nodes, Bytes: sc.Size, Pieces: s.pieces, Sites: sc.Sites,
		Racks: sc.Racks, Tracker: sc.Tracker, SplayS: sc.Splay.Seconds(), Churn: sc.Churn, Have: sc.Have,
		NodeRate: sc.NodeRate, Origin: sc.OriginRate, Seed: sc.Seed, MissingBytes: int64(u),
		B: round3(s.bound()), OriginBytes: int64(math.Round(s.originBytes)),
		WastedBytes: int64(math.Round(s.wasted)), Events: s.events}
	r.OriginBytesRatio = round3(s.originBytes / u)
	last := 0.0
	for _, n := range s.nodes {
		if n.complete {
			r.Completed++
			last = max(last, n.doneAt)
			r.NodeTimes = append(r.NodeTimes, n.doneAt-n.firstStart)
		}
	}
	slices.Sort(r.NodeTimes)
	if r.Completed == sc.Nodes {
		a := round3(last)
		r.A = &a
		e := round3(s.bound() / last)
		r.Efficiency = &e
	}
	if len(r.NodeTimes) > 0 {
		r.P50 = round3(quantile(r.NodeTimes, 0.5))
		r.P99 = round3(quantile(r.NodeTimes, 0.99))
	}
	if sc.Sites > 1 {
		busiest := 0.0
		for a := range sc.Sites {
			for b := range sc.Sites {
				if a != b {
					busiest = max(busiest, s.crossBytes[a][b])
				}
			}
		}
		ib := int64(math.Round(busiest))
		ratio := round3(busiest / u)
		r.InterDCBytes, r.InterDCBytesRatio = &ib, &ratio
	}
	return r
}

// quantile is the q-quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// WriteTable writes the runs as a Markdown table.
func WriteTable(w io.Writer, runs []*Result) error {
	if _, err := fmt.Fprintln(w, "| scenario | nodes | F | sites | tracker | splay | churn | A s | B s | B/A | p50 s | p99 s | origin / F | inter-site / F |\n"+
		"|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"); err != nil {
		return err
	}
	for _, r := range runs {
		a, eff, inter := "never", "-", "-"
		if r.A != nil {
			a, eff = fmt.Sprintf("%.1f", *r.A), fmt.Sprintf("%.2f", *r.Efficiency)
		}
		if r.InterDCBytesRatio != nil {
			inter = fmt.Sprintf("%.2f", *r.InterDCBytesRatio)
		}
		if _, err := fmt.Fprintf(w, "| %s | %d | %s | %d | %s | %.0f s | %.0f%% | %s | %.1f | %s | %.1f | %.1f | %.2f | %s |\n",
			r.Scenario, r.Nodes, SizeString(r.Bytes), r.Sites, r.Tracker, r.SplayS, 100*r.Churn, a, r.B, eff,
			r.P50, r.P99, r.OriginBytesRatio, inter); err != nil {
			return err
		}
	}
	return nil
}

// SizeString writes a byte count in the largest binary unit that divides it, as --size reads it.
func SizeString(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix)
		}
	}
	return fmt.Sprint(n)
}
