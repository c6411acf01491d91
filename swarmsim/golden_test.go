package swarmsim

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.json from this code")

// The runs of scenarios() give, byte for byte, the JSON in testdata/golden.json: a change
// meant to make the simulator faster must not change what it computes. A change of the
// model rewrites the file (go test ./swarmsim -run TestGolden -update) in the same commit,
// which then shows how every figure moved.
func TestGolden(t *testing.T) {
	var runs []*Result
	for _, sc := range append(scenarios(), lazy()) {
		r, err := Run(context.Background(), sc)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	got, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./swarmsim -run TestGolden -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the runs differ from %s:\n%s", path, firstDiff(got, want))
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := range min(len(g), len(w)) {
		if !bytes.Equal(g[i], w[i]) {
			return "line " + itoa(i+1) + ": got " + string(g[i]) + ", want " + string(w[i])
		}
	}
	return "one is a prefix of the other: got " + itoa(len(g)) + " lines, want " + itoa(len(w))
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
