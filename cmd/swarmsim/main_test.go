package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestScenarios(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		count int
		first string
	}{
		{"defaults: one run", nil, 1, "n10000-10G-1site-splay0s-churn0-pkgsync"},
		{"lists multiply", []string{"--nodes", "10,20", "--tracker", "pkgsync,stock", "--size", "1M"}, 4, "n10-1M-1site-splay0s-churn0-pkgsync"},
		{"the fleet table", []string{"--table"}, 64, "n1000-1G-1site-splay0s-churn0-pkgsync"},
		{"the fleet table at one size", []string{"--table", "--nodes", "10000", "--size", "10G"}, 16, "n10000-10G-1site-splay0s-churn0-pkgsync"},
		{"delta", []string{"--have", "0.5", "--splay", "1m"}, 1, "n10000-10G-1site-splay1m0s-churn0-pkgsync-have0.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseArgs(tc.args, new(bytes.Buffer))
			if err != nil {
				t.Fatal(err)
			}
			scs, err := o.scenarios()
			if err != nil {
				t.Fatal(err)
			}
			if len(scs) != tc.count || scs[0].Name != tc.first {
				t.Errorf("%d scenarios, the first %q; want %d, %q", len(scs), scs[0].Name, tc.count, tc.first)
			}
		})
	}
}

func TestArgErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--size", "10X"}, `--size "10X"`},
		{[]string{"--nodes", "ten"}, `--nodes "ten"`},
		{[]string{"--splay", "1 minute"}, `--splay "1 minute"`},
		{[]string{"--tracker", "udp", "--size", "1M", "--nodes", "2"}, `tracker "udp"`},
		{[]string{"--validate"}, "--validate needs --lab FILE"},
		{[]string{"--validate", "--lab", "testdata/missing.json"}, "missing.json"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--cpuprofile", "testdata/no/such/dir/cpu.out", "--nodes", "2", "--size", "1M"}, "--cpuprofile: open testdata/no/such/dir/cpu.out"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := run(context.Background(), tc.args, new(bytes.Buffer), new(bytes.Buffer))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error naming %q", tc.args, err, tc.want)
			}
		})
	}
}

// The same flags give the same JSON, and the files asked for are written (a CPU profile too).
func TestRunDeterministic(t *testing.T) {
	dir := t.TempDir()
	var outs [2][]byte
	for i := range outs {
		path := filepath.Join(dir, "r.json")
		args := []string{"--nodes", "30", "--size", "2M", "--rate", "10", "--origin-rate", "10", "--racks", "3",
			"--max-peers", "8", "--churn", "0.1", "--splay", "2s", "--sites", "1,2", "--json", path,
			"--png", filepath.Join(dir, "r.png"), "--md", filepath.Join(dir, "r.md"), "--cpuprofile", filepath.Join(dir, "cpu.out")}
		var stdout bytes.Buffer
		if err := run(context.Background(), args, &stdout, new(bytes.Buffer)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = b
		md, err := os.ReadFile(filepath.Join(dir, "r.md"))
		if err != nil || string(md) != stdout.String() || strings.Count(stdout.String(), "\n") != 4 {
			t.Errorf("--md %q (%v) against stdout %q", md, err, stdout.String())
		}
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Errorf("two runs with the same flags differ:\n%s\n%s", outs[0], outs[1])
	}
	var doc struct {
		Runs []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal(outs[0], &doc); err != nil || len(doc.Runs) != 2 {
		t.Fatalf("JSON: %v, %d runs", err, len(doc.Runs))
	}
	for _, k := range []string{"nodes", "bytes", "A_s", "B_s", "efficiency", "origin_bytes_ratio", "interdc_bytes_ratio", "p50_s", "p99_s"} {
		if _, ok := doc.Runs[1][k]; !ok {
			t.Errorf("the JSON lacks %q", k)
		}
	}
	if doc.Runs[0]["interdc_bytes_ratio"] != nil || doc.Runs[1]["interdc_bytes_ratio"] == nil {
		t.Errorf("interdc_bytes_ratio: %v with one site, %v with two", doc.Runs[0]["interdc_bytes_ratio"], doc.Runs[1]["interdc_bytes_ratio"])
	}
	if st, err := os.Stat(filepath.Join(dir, "r.png")); err != nil || st.Size() < 1000 {
		t.Errorf("the PNG: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "cpu.out")); err != nil || st.Size() == 0 {
		t.Errorf("the CPU profile: %v", err)
	}
}

func TestValidate(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--validate", "--lab", "testdata/lab.json"}, &stdout, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	// The header, its rule, and fanout/4, delta/4, twodc/4: classic and aria2 are not modelled.
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), stdout.String())
	}
	for i, want := range []string{"| fanout | 4 | 2 | 1.3 |", "| delta | 4 | 1 | never |", "| twodc | 4 | 1 | 1.6 |"} {
		if !strings.HasPrefix(lines[i+2], want) {
			t.Errorf("line %d = %q, want it to start %q", i+2, lines[i+2], want)
		}
	}
}

func TestLabScenario(t *testing.T) {
	changed, inter := int64(1<<20), 20.0
	sc := labScenario(labRun{Scenario: "delta", Nodes: 16, Bytes: 4 << 20, ChangedBytes: &changed,
		NodeRateMbit: 10, OriginRateMbit: 20}, 1)
	if sc.Have != 0.75 || sc.NodeRate != 1.25e6 || sc.OriginRate != 2.5e6 {
		t.Errorf("delta: have %v, rates %v %v", sc.Have, sc.NodeRate, sc.OriginRate)
	}
	sc = labScenario(labRun{Scenario: "twodc", Nodes: 16, Bytes: 1, NodeRateMbit: 10, OriginRateMbit: 10, InterDCRateMbit: &inter}, 1)
	if sc.Sites != 2 || sc.InterSiteRate != 2.5e6 || !sc.SiteRule {
		t.Errorf("twodc: %+v", sc)
	}
	sc = labScenario(labRun{Scenario: "scale", Nodes: 64, Bytes: 1, NodeRateMbit: 10, OriginRateMbit: 10}, 1)
	if sc.MaxPeers != 16 || sc.Splay != 20*time.Second || sc.Churn != 0.1 {
		t.Errorf("scale: %+v", sc)
	}
}
