package main

import (
	"encoding/json"
	"testing"
)

// TestDemoSwarm runs the README's main job at a small size: an origin with the embedded tracker
// and 4 nodes holding v1 update to v2 at once. Every node must verify v2, and the origin must
// send each missing byte about once, not once per node.
func TestDemoSwarm(t *testing.T) {
	out := mustPkgsync(t, "demo", "--nodes", "4", "--size", "8388608", "--edits", "12", "--json")
	var res struct {
		Nodes []struct {
			BytesTotal      int64 `json:"bytes_total"`
			BytesReused     int64 `json:"bytes_reused"`
			BytesFromPeers  int64 `json:"bytes_from_peers"`
			BytesFromOrigin int64 `json:"bytes_from_origin"`
		} `json:"nodes"`
		Missing    int64 `json:"missing_bytes_per_node"`
		FromOrigin int64 `json:"origin_package_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("demo --json: %v: %q", err, out)
	}
	if len(res.Nodes) != 4 || res.Missing <= 0 {
		t.Fatalf("demo result: %+v", res)
	}
	if float64(res.FromOrigin) >= 1.5*float64(res.Missing) {
		t.Fatalf("origin sent %d bytes for %d missing bytes per node: not origin-once (%+v)", res.FromOrigin, res.Missing, res.Nodes)
	}
	var fromPeers int64
	for _, n := range res.Nodes {
		fromPeers += n.BytesFromPeers
	}
	if fromPeers == 0 {
		t.Fatalf("no node got anything from a peer: %+v", res.Nodes)
	}
	t.Logf("missing per node %d, origin sent %d (%.2fx), peers sent %d", res.Missing, res.FromOrigin, float64(res.FromOrigin)/float64(res.Missing), fromPeers)
}
