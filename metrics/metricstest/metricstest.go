// Package metricstest reads Prometheus metrics back for tests: from a server's /metrics over
// HTTP, or from a textfile, through the Prometheus text parser, so that a test checks what a
// scraper would read.
package metricstest

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are parsed metric families by name.
type Families map[string]*dto.MetricFamily

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Scrape GETs url, as Prometheus does, and parses the answer; it fails t when either fails.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, body)
	}
	fams, err := Parse(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return fams
}

// ReadFile parses a textfile; it fails t when that fails.
func ReadFile(t testing.TB, path string) Families {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams, err := Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fams
}

// Value returns the value of the sample of the family name whose labels are exactly labels
// (name, value pairs), and whether there is one.
func (f Families) Value(name string, labels ...string) (float64, bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if !sameLabels(m.GetLabel(), labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// Get is Value, 0 when there is no such sample.
func (f Families) Get(name string, labels ...string) float64 {
	v, _ := f.Value(name, labels...)
	return v
}

// Series lists the label sets of the family name, each as "k=v,k=v" in the parser's order.
func (f Families) Series(name string) []string {
	var out []string
	if mf := f[name]; mf != nil {
		for _, m := range mf.GetMetric() {
			s := ""
			for i, lp := range m.GetLabel() {
				if i > 0 {
					s += ","
				}
				s += fmt.Sprintf("%s=%s", lp.GetName(), lp.GetValue())
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func sameLabels(got []*dto.LabelPair, want []string) bool {
	if len(want)%2 != 0 || len(got) != len(want)/2 {
		return false
	}
	for i := 0; i < len(want); i += 2 {
		if !slices.ContainsFunc(got, func(lp *dto.LabelPair) bool { return lp.GetName() == want[i] && lp.GetValue() == want[i+1] }) {
			return false
		}
	}
	return true
}
