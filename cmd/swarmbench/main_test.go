package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/cmd/swarmbench/internal/netlab"
	"github.com/pkgsync/pkgsync/internal/testtool"
)

// TestSmoke runs `swarmbench --smoke` for real (namespaces, tc, pkgsync built from this
// checkout) and checks what it reports: every node completed and verified, the killed and
// restarted ones of the scale run too, plausible figures, and nothing left behind.
func TestSmoke(t *testing.T) {
	testtool.NeedRoot(t)
	testtool.Need(t, "ip", "tc", "go", "opentracker")
	dir := t.TempDir()
	jsonPath, pngPath, mdPath := filepath.Join(dir, "runs.json"), filepath.Join(dir, "runs.png"), filepath.Join(dir, "runs.md")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"--smoke", "--json", jsonPath, "--png", pngPath, "--md", mdPath}, &stdout, &stderr)
	t.Logf("stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("swarmbench --smoke: %v\n%s", err, stdout.String())
	}

	// Nothing of the run's prefix may remain.
	m := regexp.MustCompile(`namespaces (psb[0-9a-f]{5})\*`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatal("the run did not name its namespace prefix on stderr")
	}
	if left, err := netlab.Namespaces(context.Background(), m[1]); err != nil || len(left) > 0 {
		t.Errorf("namespaces left behind: %v (%v)", left, err)
		netlab.Cleanup(context.Background(), m[1])
	}

	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Runs []smokeRun `json:"runs"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("%s: %v", jsonPath, err)
	}
	var scenarios []string
	for _, r := range rep.Runs {
		scenarios = append(scenarios, checkSmokeRun(t, r))
	}
	if strings.Join(scenarios, ",") != "fanout/pkgsync,delta/pkgsync,scale/pkgsync,fanout/opentracker" {
		t.Errorf("scenarios %v, want fanout, delta, scale, fanout under opentracker", scenarios)
	}

	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if img, err := png.Decode(f); err != nil || img.Bounds().Dy() != headerH+4*rowH {
		t.Errorf("chart: %v, bounds %v", err, img)
	}
	md, err := os.ReadFile(mdPath)
	if err != nil || !strings.Contains(string(md), "| fanout | pkgsync | 4 | 4.0 MiB | opentracker |") || !bytes.Equal(md, stdout.Bytes()) {
		t.Errorf("the Markdown file differs from stdout or lacks the fanout row (%v):\n%s", err, md)
	}
}

// smokeRun is what TestSmoke reads of a run in the JSON.
type smokeRun struct {
	Scenario          string   `json:"scenario"`
	Client            string   `json:"client"`
	Nodes             int      `json:"nodes"`
	Bytes             int64    `json:"bytes"`
	Tracker           string   `json:"tracker"`
	MaxPeers          int      `json:"max_peers"`
	SplayS            float64  `json:"splay_s"`
	Churn             float64  `json:"churn"`
	OriginMetaBytes   *int64   `json:"origin_meta_bytes"`
	Killed            int      `json:"killed"`
	RestartedVerified int      `json:"restarted_verified"`
	A                 *float64 `json:"A_s"`
	B                 float64  `json:"B_s"`
	Efficiency        *float64 `json:"efficiency"`
	OriginBytesRatio  float64  `json:"origin_bytes_ratio"`
	InterDCBytesRatio *float64 `json:"interdc_bytes_ratio"`
	MaxUploadShare    float64  `json:"max_upload_share"`
	CPUPercent        *float64 `json:"cpu_percent"`
	Completed         int      `json:"completed"`
	Verified          int      `json:"verified"`
	Error             string   `json:"error"`
	Hosts             []struct {
		Name         string   `json:"name"`
		Role         string   `json:"role"`
		Completed    *bool    `json:"completed"`
		Verified     *bool    `json:"verified"`
		StartS       *float64 `json:"start_s"`
		KilledAtS    *float64 `json:"killed_at_s"`
		RestartedAtS *float64 `json:"restarted_at_s"`
	} `json:"hosts"`
}

// checkSmokeRun checks one run of the smoke and returns its name: the scenario and the client,
// or the tracker when it is not the embedded one.
func checkSmokeRun(t *testing.T, r smokeRun) string {
	t.Helper()
	name := r.Scenario + "/" + r.Client
	if r.Tracker != trackerEmbedded {
		name = r.Scenario + "/" + r.Tracker
	}
	// The scale run: 6 nodes, peer lists of 3, starts over 3 s, 2 nodes killed.
	n, killed, k, splay := 4, 0, 0, 0.0
	if r.Scenario == scenarioScale {
		n, killed, k, splay = 6, 2, 3, 3
	}
	if r.Client != clientPkgsync || r.Nodes != n || r.Bytes < 4*mib {
		t.Errorf("%s: client %s, %d nodes, %d bytes; want pkgsync, %d nodes, about 4 MiB", name, r.Client, r.Nodes, r.Bytes, n)
	}
	if r.Error != "" || r.Completed != n || r.Verified != n {
		t.Errorf("%s: %d completed, %d verified, error %q; want all %d and none", name, r.Completed, r.Verified, r.Error, n)
	}
	if r.MaxPeers != k || r.SplayS != splay || r.Killed != killed || r.RestartedVerified != killed {
		t.Errorf("%s: max_peers %d, splay_s %v, killed %d, restarted_verified %d; want %d, %v, %d, %d",
			name, r.MaxPeers, r.SplayS, r.Killed, r.RestartedVerified, k, splay, killed, killed)
	}
	// The first node to start can get the .torrent from the origin only.
	if r.OriginMetaBytes == nil || *r.OriginMetaBytes < 1000 {
		t.Errorf("%s: origin_meta_bytes %v; want at least one .torrent", name, optI(r.OriginMetaBytes))
	}
	if r.A == nil || r.Efficiency == nil || *r.Efficiency <= 0 || *r.Efficiency > 1 {
		t.Errorf("%s: A %v, efficiency %v; want efficiency in (0, 1]", name, r.A, r.Efficiency)
	} else if math.Abs(r.B / *r.A - *r.Efficiency) > 1e-9 {
		t.Errorf("%s: efficiency %v is not B/A = %v/%v", name, *r.Efficiency, r.B, *r.A)
	}
	if r.OriginBytesRatio <= 0 || r.MaxUploadShare <= 0 || r.CPUPercent == nil || r.InterDCBytesRatio != nil {
		t.Errorf("%s: origin_bytes_ratio %v, max_upload_share %v, cpu_percent %v, interdc_bytes_ratio %v",
			name, r.OriginBytesRatio, r.MaxUploadShare, r.CPUPercent, r.InterDCBytesRatio)
	}
	nodes, restarted := 0, 0
	for _, h := range r.Hosts {
		if h.Role != "node" {
			continue
		}
		nodes++
		if h.Completed == nil || !*h.Completed || h.Verified == nil || !*h.Verified {
			t.Errorf("%s: node %s is not completed and verified", name, h.Name)
		}
		// Started within the splay (and the watch's tick after it, late on a loaded machine).
		if h.StartS == nil || *h.StartS > splay+5 {
			t.Errorf("%s: node %s started at %v s, want within [0, %v s)", name, h.Name, h.StartS, splay)
		}
		if h.KilledAtS != nil {
			restarted++
			if h.RestartedAtS == nil || *h.RestartedAtS < *h.KilledAtS+churnRestart.Seconds() || *h.KilledAtS < *h.StartS {
				t.Errorf("%s: node %s started at %v s, killed at %v s, restarted at %v; want a restart %v after the kill",
					name, h.Name, *h.StartS, *h.KilledAtS, h.RestartedAtS, churnRestart)
			}
		}
	}
	if nodes != n || len(r.Hosts) != n+1 || restarted != killed {
		t.Errorf("%s: %d hosts, %d nodes, %d restarted; want the origin, %d nodes, %d restarted", name, len(r.Hosts), nodes, restarted, n, killed)
	}
	return name
}

func TestBound(t *testing.T) {
	const f = 10 * 1_000_000 / 8 // 10 Mbit in bytes: one second at 10 Mbit/s
	tests := []struct {
		name              string
		n                 int
		uo, u, d, interDC int64
		want              float64
		payload           int64
	}{
		{"equal links, one node", 1, 10 * mbit, 10 * mbit, 10 * mbit, 0, 1, f},
		{"equal links: F/u whatever N", 16, 10 * mbit, 10 * mbit, 10 * mbit, 0, 1, f},
		{"slow origin", 16, 5 * mbit, 10 * mbit, 10 * mbit, 0, 2, f},
		{"slow downloads", 4, 10 * mbit, 10 * mbit, 5 * mbit, 0, 2, f},
		{"slow node uploads: the swarm's capacity", 16, 10 * mbit, 1 * mbit, 100 * mbit, 0, 160.0 / 26, f},
		{"slow inter-DC link", 16, 10 * mbit, 10 * mbit, 10 * mbit, 5 * mbit, 2, f},
		{"fast inter-DC link changes nothing", 16, 10 * mbit, 10 * mbit, 10 * mbit, 20 * mbit, 1, f},
		{"delta: the payload is the changed bytes", 16, 10 * mbit, 10 * mbit, 10 * mbit, 0, 0.1, f / 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bound(tt.payload, tt.n, tt.uo, tt.u, tt.d, tt.interDC)
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("bound = %v s, want %v s", got, tt.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name    string
		m       mode
		o       overrides
		want    []string // scenario/client/nodes
		wantErr string
	}{
		{name: "smoke", m: modeSmoke, want: []string{"fanout/pkgsync/4", "delta/pkgsync/4", "scale/pkgsync/6 K=3 D=3s P=34%", "fanout/pkgsync/4 opentracker"}},
		{name: "short", m: modeShort, want: []string{"fanout/pkgsync/16", "fanout/aria2/16", "fanout/libtorrent/16",
			"delta/pkgsync/16", "delta/aria2/16", "delta/libtorrent/16"}},
		{name: "full has every scenario", m: modeFull, o: overrides{clients: []string{"pkgsync"}}, want: []string{
			"fanout/pkgsync/4", "fanout/pkgsync/8", "fanout/pkgsync/16", "classic/pkgsync/16", "delta/pkgsync/16", "twodc/pkgsync/16",
			"scale/pkgsync/64 K=16 D=20s P=10% 8MiB 4Mbit"}},
		{name: "scale, every client", m: modeFull, o: overrides{scenarios: []string{"scale"}}, want: []string{
			"scale/pkgsync/64 K=16 D=20s P=10% 8MiB 4Mbit", "scale/aria2/64 K=16 D=20s P=10% 8MiB 4Mbit", "scale/libtorrent/64 K=16 D=20s P=10% 8MiB 4Mbit"}},
		{name: "scale's own settings are overridden", m: modeShort,
			o: overrides{clients: []string{"pkgsync"}, scenarios: []string{"scale"}, nodes: []int{128}, size: 2 * mib, nodeRate: 3 * mbit,
				maxPeers: ptr(8), splay: ptr(time.Minute), churn: ptr(0.25)},
			want: []string{"scale/pkgsync/128 K=8 D=1m0s P=25% 2MiB 3Mbit"}},
		{name: "fanout with the new options", m: modeShort,
			o:    overrides{clients: []string{"pkgsync"}, scenarios: []string{"fanout"}, nodes: []int{64}, maxPeers: ptr(16)},
			want: []string{"fanout/pkgsync/64 K=16"}},
		{name: "opentracker", m: modeShort, o: overrides{clients: []string{"aria2"}, scenarios: []string{"fanout"}, nodes: []int{48}, tracker: "opentracker"},
			want: []string{"fanout/aria2/48 opentracker"}},
		{name: "scale under opentracker uncapped", m: modeShort, o: overrides{clients: []string{"pkgsync"}, scenarios: []string{"scale"}, tracker: "opentracker", maxPeers: ptr(0)},
			want: []string{"scale/pkgsync/64 D=20s P=10% 8MiB 4Mbit opentracker"}},
		{name: "opentracker has no cap to set", m: modeShort, o: overrides{scenarios: []string{"scale"}, tracker: "opentracker"}, wantErr: "--max-peers needs --tracker embedded"},
		{name: "origin fetchers", m: modeShort, o: overrides{clients: []string{"pkgsync"}, scenarios: []string{"fanout"}, originFetchers: ptr(4)},
			want: []string{"fanout/pkgsync/16 R=4"}},
		{name: "origin fetchers need the embedded tracker", m: modeShort, o: overrides{scenarios: []string{"fanout"}, tracker: "opentracker", originFetchers: ptr(4)},
			wantErr: "only the embedded tracker names origin fetchers"},
		{name: "negative origin fetchers", m: modeSmoke, o: overrides{originFetchers: ptr(-1)}, wantErr: "--origin-fetchers -1"},
		{name: "origin roles off", m: modeShort, o: overrides{clients: []string{"pkgsync"}, scenarios: []string{"fanout"}, originFetchers: ptr(0)},
			want: []string{"fanout/pkgsync/16 R=0"}},
		{name: "unknown tracker", m: modeSmoke, o: overrides{tracker: "chihaya"}, wantErr: `unknown tracker "chihaya"`},
		{name: "churn above 1", m: modeSmoke, o: overrides{churn: ptr(1.5)}, wantErr: "--churn 1.5"},
		{name: "negative splay", m: modeSmoke, o: overrides{splay: ptr(-time.Second)}, wantErr: "--splay -1s"},
		{name: "negative peer cap", m: modeSmoke, o: overrides{maxPeers: ptr(-1)}, wantErr: "--max-peers -1"},
		{name: "scenario not in the mode runs at 16", m: modeSmoke, o: overrides{scenarios: []string{"twodc"}}, want: []string{"twodc/pkgsync/16"}},
		{name: "node counts", m: modeFull, o: overrides{clients: []string{"aria2"}, scenarios: []string{"fanout", "delta"}, nodes: []int{2, 3}},
			want: []string{"fanout/aria2/2", "fanout/aria2/3", "delta/aria2/2", "delta/aria2/3"}},
		{name: "unknown client", m: modeSmoke, o: overrides{clients: []string{"transmission"}}, wantErr: "unknown client"},
		{name: "unknown scenario", m: modeSmoke, o: overrides{scenarios: []string{"mesh"}}, wantErr: "unknown scenario"},
		{name: "too small", m: modeSmoke, o: overrides{size: 1000}, wantErr: "at least 1 MiB"},
		{name: "too many nodes", m: modeSmoke, o: overrides{nodes: []int{241}}, wantErr: "1 to 240"},
		{name: "two DCs need two nodes", m: modeSmoke, o: overrides{scenarios: []string{"twodc"}, nodes: []int{1}}, wantErr: "at least 2 nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := plan(tt.m, tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range specs {
				// The swarm's settings when set, and the size and rate when they are not the mode's.
				d := s.Scenario + "/" + s.Client + "/" + strconv.Itoa(s.Nodes)
				if s.MaxPeers > 0 {
					d += fmt.Sprintf(" K=%d", s.MaxPeers)
				}
				if s.OriginFetchers != defaultFetchers(s.Tracker, s.MaxPeers) {
					d += fmt.Sprintf(" R=%d", s.OriginFetchers)
				}
				if s.Splay > 0 {
					d += fmt.Sprintf(" D=%v P=%g%%", s.Splay, 100*s.Churn)
				}
				if s.Size != tt.m.size {
					d += fmt.Sprintf(" %dMiB %dMbit", s.Size/mib, s.NodeRate/mbit)
				}
				if s.Tracker != trackerEmbedded {
					d += " " + s.Tracker
				}
				got = append(got, d)
				if (s.Scenario == scenarioTwoDC) != (s.InterDCRate > 0) || s.NodeRate <= 0 || s.OriginRate <= 0 {
					t.Errorf("%+v: rates", s)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("runs %v, want %v", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestVersions(t *testing.T) {
	for _, size := range []int64{1 * mib, 4 * mib, 9*mib + 12345} {
		v1, v2, changed := versions(size, 1)
		if int64(len(v1)) != size {
			t.Errorf("size %d: v1 has %d bytes", size, len(v1))
		}
		if bytes.Equal(v1, v2) || changed <= 0 || changed > size/10 {
			t.Errorf("size %d: %d bytes changed; want some, at most a tenth", size, changed)
		}
		// Most of v2 is v1: the first edit is at least 60 KiB in, so the heads agree.
		if !bytes.Equal(v1[:60<<10], v2[:60<<10]) {
			t.Errorf("size %d: v2 does not start like v1", size)
		}
		w1, w2, wc := versions(size, 1)
		if sha1.Sum(w1) != sha1.Sum(v1) || sha1.Sum(w2) != sha1.Sum(v2) || wc != changed {
			t.Errorf("size %d: versions are not deterministic", size)
		}
		o1, _, _ := versions(size, 2)
		if bytes.Equal(o1, v1) {
			t.Errorf("size %d: seeds 1 and 2 give the same v1", size)
		}
	}
}

func TestParseCPU(t *testing.T) {
	tests := []struct {
		stat      string
		busy, all uint64
		wantErr   bool
	}{
		{stat: "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3", busy: 160, all: 1000},
		{stat: "cpu 1 2 3 4 5 6 7", wantErr: true},
		{stat: "cpu0 1 2 3 4 5 6 7 8", wantErr: true},
		{stat: "cpu 1 2 x 4 5 6 7 8", wantErr: true},
		{stat: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseCPU(tt.stat)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseCPU(%q) error %v, want error %v", tt.stat, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && (got.busy != tt.busy || got.total != tt.all) {
			t.Errorf("parseCPU(%q) = %+v, want busy %d of %d", tt.stat, got, tt.busy, tt.all)
		}
	}
	if p := percent(cpuTimes{10, 100}, cpuTimes{60, 200}); p != 50 {
		t.Errorf("percent = %v, want 50", p)
	}
	if p := percent(cpuTimes{10, 100}, cpuTimes{10, 100}); p != 0 {
		t.Errorf("percent over no time = %v, want 0", p)
	}
}

// TestParseArgsSwarm: the swarm's flags are overrides only when given (else the scenario's
// own apply), and the seed is the clock's unless given.
func TestParseArgsSwarm(t *testing.T) {
	opt, err := parseArgs([]string{"--scenarios", "scale", "--max-peers", "0", "--splay", "90s", "--churn", "0.2",
		"--tracker", "opentracker", "--repeat", "3", "--seed", "7"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	o := opt.o
	if o.maxPeers == nil || *o.maxPeers != 0 || o.splay == nil || *o.splay != 90*time.Second || o.churn == nil || *o.churn != 0.2 ||
		o.tracker != trackerOpentracker || opt.repeat != 3 || opt.seed != 7 {
		t.Errorf("parsed as %+v, %+v", opt, o)
	}
	opt, err = parseArgs([]string{"--scenarios", "scale"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if opt.o.maxPeers != nil || opt.o.splay != nil || opt.o.churn != nil || opt.repeat != 1 || opt.seed == 0 {
		t.Errorf("without the flags: %+v, %+v; want no overrides, 1 repetition and a seed from the clock", opt, opt.o)
	}
}

func TestRepeatSpecs(t *testing.T) {
	specs := []spec{{Scenario: "a", Client: "x"}, {Scenario: "a", Client: "y"}}
	got := repeatSpecs(specs, 3, 100)
	var desc []string
	for _, sp := range got {
		desc = append(desc, fmt.Sprintf("%s/%d/%d", sp.Client, sp.Seed, sp.Rep))
	}
	if want := "x/100/1 y/100/1 x/101/2 y/101/2 x/102/3 y/102/3"; strings.Join(desc, " ") != want {
		t.Errorf("repeatSpecs = %v, want %s", desc, want)
	}
}

func TestDrawSchedule(t *testing.T) {
	tests := []struct {
		nodes      int
		splay      time.Duration
		churn      float64
		wantKilled int
	}{
		{64, 20 * time.Second, 0.10, 6},
		{6, 3 * time.Second, 0.34, 2},
		{16, 0, 0, 0},
		{10, time.Minute, 1, 10},
		{3, time.Second, 0.1, 0},
	}
	for _, tt := range tests {
		sp := spec{Nodes: tt.nodes, swarm: swarm{Splay: tt.splay, Churn: tt.churn}, Seed: 42}
		starts, kills := drawSchedule(sp)
		killed := 0
		for i := range tt.nodes {
			if starts[i] < 0 || (tt.splay == 0 && starts[i] != 0) || (tt.splay > 0 && starts[i] >= tt.splay) {
				t.Errorf("%+v: node %d starts at %v, want in [0, %v)", tt, i, starts[i], tt.splay)
			}
			if kills[i] != 0 {
				killed++
				if kills[i] < 0.1 || kills[i] >= 0.9 {
					t.Errorf("%+v: node %d is killed at %v of its download, want in [0.1, 0.9)", tt, i, kills[i])
				}
			}
		}
		if killed != tt.wantKilled {
			t.Errorf("%+v: %d nodes killed, want %d", tt, killed, tt.wantKilled)
		}
		s2, k2 := drawSchedule(sp)
		if !slices.Equal(starts, s2) || !slices.Equal(kills, k2) {
			t.Errorf("%+v: two draws with one seed differ", tt)
		}
		sp.Seed++
		if s3, k3 := drawSchedule(sp); tt.splay > 0 && tt.nodes > 1 && slices.Equal(starts, s3) && slices.Equal(kills, k3) {
			t.Errorf("%+v: seeds 42 and 43 draw the same", tt)
		}
	}
}

// TestDueAt: a node starts at its offset, once; a killed one again churnRestart after the kill,
// once.
func TestDueAt(t *testing.T) {
	running := &proc{}
	tests := []struct {
		name   string
		n      node
		want   time.Duration
		wantOK bool
	}{
		{"not started", node{startAt: 3 * time.Second}, 3 * time.Second, true},
		{"running", node{startAt: 3 * time.Second, started: true, p: running}, 0, false},
		{"done and stopped", node{started: true, done: true}, 0, false},
		{"killed", node{started: true, killed: true, killedAt: 7 * time.Second}, 7*time.Second + churnRestart, true},
		{"restarted", node{started: true, killed: true, restarted: true, p: running}, 0, false},
		{"restarted and stopped", node{started: true, killed: true, restarted: true}, 0, false},
	}
	for _, tt := range tests {
		if got, ok := tt.n.dueAt(); got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: dueAt = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseLoadAvg(t *testing.T) {
	tests := []struct {
		in   string
		want *[3]float64
	}{
		{"0.52 0.58 0.59 1/467 12345\n", &[3]float64{0.52, 0.58, 0.59}},
		{"12.00 3.5 0 2/9 1", &[3]float64{12, 3.5, 0}},
		{"0.52 0.58", nil},
		{"0.52 x 0.59 1/467 12345", nil},
		{"", nil},
	}
	for _, tt := range tests {
		got := parseLoadAvg(tt.in)
		if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
			t.Errorf("parseLoadAvg(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: []string{"--smoke", "--short"}, wantErr: "exclude"},
		{args: []string{"--size", "big"}, wantErr: "size"},
		{args: []string{"--rate", "-5"}, wantErr: "positive"},
		{args: []string{"extra"}, wantErr: "unexpected"},
		{args: []string{"--repeat", "0"}, wantErr: "--repeat 0"},
		{args: []string{"--splay", "soon"}, wantErr: "splay"},
		{args: []string{"--short", "--clients", "pkgsync,aria2", "--rate", "12.5", "--size", "8M"}},
	}
	for _, tt := range tests {
		opt, err := parseArgs(tt.args, &bytes.Buffer{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
			continue
		}
		if !opt.short || opt.o.nodeRate != 12_500_000 || opt.o.size != 8<<20 || strings.Join(opt.o.clients, ",") != "pkgsync,aria2" {
			t.Errorf("%v parsed as %+v", tt.args, opt)
		}
	}
}

// sampleRuns are results as run makes them: a good one, a delta, a two-DC one and a failed one.
func sampleRuns() []*Run {
	f := func(v float64) *float64 { return &v }
	yes, no := true, false
	changed, meta := int64(300<<10), int64(45<<10)
	host := func(name, role string, up uint64, share float64, done *float64) HostResult {
		h := HostResult{Name: name, Role: role, UploadBytes: up, UploadShare: share, CompletionS: done}
		if role == "node" {
			h.Completed, h.Verified = &no, &no
			if done != nil {
				h.Completed, h.Verified = &yes, &yes
			}
		}
		return h
	}
	runs := []*Run{
		{Scenario: "fanout", Client: "pkgsync", Nodes: 2, Bytes: 16 << 20, PayloadBytes: 16 << 20, NodeRateMbit: 10, OriginRateMbit: 10, Tracker: "embedded",
			A: f(15), B: 13.4, Efficiency: f(13.4 / 15), MedianS: f(14.5), OriginBytesRatio: 1.02, OriginPackageRatio: f(0.98), MaxUploadShare: 1.02, UploadMaxOverMean: 1.1,
			OriginMetaBytes: &meta, CPUPercent: 41, CPUPeakPercent: 60, ClientsCPUSPerNode: 1.25, LoadAvgStart: &[3]float64{0.5, 1, 2},
			Completed: 2, Verified: 2, Hosts: []HostResult{host("o", "origin", 1, 1.02, nil), host("n00", "node", 1, 0.9, f(14)), host("n01", "node", 1, 1, f(15))}},
		{Scenario: "delta", Client: "aria2", Nodes: 2, Bytes: 16 << 20, ChangedBytes: &changed, PayloadBytes: changed, NodeRateMbit: 10, OriginRateMbit: 10,
			A: f(40), B: 0.5, Efficiency: f(0.5 / 40), OriginBytesRatio: 80, MaxUploadShare: 80, UploadMaxOverMean: 3,
			Notes: []string{"aria2 nodes start with v1"}, Completed: 2, Verified: 2,
			Hosts: []HostResult{host("o", "origin", 1, 80, nil), host("n00", "node", 1, 2, f(39)), host("n01", "node", 1, 0, f(40))}},
		{Scenario: "twodc", Client: "libtorrent", Nodes: 2, Bytes: 16 << 20, PayloadBytes: 16 << 20, NodeRateMbit: 10, OriginRateMbit: 10,
			InterDCRateMbit: f(20), InterDCBytesRatio: f(1.5), B: 13.4, Completed: 1, Verified: 1, Error: "1 of 2 nodes did not finish",
			Hosts: []HostResult{host("o", "origin", 1, 3, nil), host("n00", "node", 1, 0.5, f(60)), host("n01", "node", 1, 0, nil)}},
		{Scenario: "scale", Client: "pkgsync", Nodes: 3, Bytes: 8 << 20, PayloadBytes: 8 << 20, NodeRateMbit: 4, OriginRateMbit: 4,
			Tracker: "embedded", MaxPeers: 2, SplayS: 20, Churn: 0.34, A: f(40), B: 16.8, Efficiency: f(16.8 / 40), AMinusSplayOverB: f(20 / 16.8),
			OriginBytesRatio: 1.05, OriginMetaBytes: &meta, Completed: 3, Verified: 3, Killed: 1, RestartedVerified: 1,
			Hosts: []HostResult{host("o", "origin", 1, 1.05, nil), host("n00", "node", 1, 1, f(30)), host("n01", "node", 1, 1, f(35)), host("n02", "node", 1, 1, f(40))}},
	}
	for _, r := range runs { // the runs had pkgsync serve's default origin fetchers
		r.OriginFetchers = defaultFetchers(cmp.Or(r.Tracker, trackerEmbedded), r.MaxPeers)
	}
	return runs
}

func TestMarkdown(t *testing.T) {
	md := markdown(&report{Mode: "test", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), CPUs: 2, Runs: sampleRuns()})
	for _, want := range []string{
		"## swarmbench test, 2026-01-02 03:04 UTC, 2 CPUs",
		"| fanout | pkgsync | 2 | 16 MiB | embedded | 15.0 | 14.5 | 13.4 | 0.89 | – | 1.02 F | 0.98 F | 22.5 KiB | – | 102% F | 1.10 | 41/60 | 1.25 | 0.50 | 2/2 |",
		"| delta | aria2 | 2 | 16 MiB (300 KiB new) | embedded | 40.0 | – | 0.50 | 0.01 | – | 80.00 new | – | – | – | 8000% new |",
		"| twodc | libtorrent | 2 | 16 MiB | embedded | – | – | 13.4 | – | – | 0.00 F | – | – | 1.50 F |",
		"| scale | pkgsync | 3 | 8.0 MiB | embedded K=2 D=20s P=34% | 40.0 | – | 16.8 | 0.42 | 1.19 | 1.05 F | – | 15.0 KiB | – | 0% F | 0.00 | 0/0 | 0.00 | – | 3/3 (killed 1/1) |",
		"inter-DC link 20 each way",
		"delta, aria2: aria2 nodes start with v1.",
		"**1 of 2 nodes did not finish**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, "\n| "); n != 6 {
		t.Errorf("%d table lines, want the header, its rule and 4 runs:\n%s", n, md)
	}
	if strings.Contains(md, "Medians") {
		t.Errorf("a table of medians of runs that ran once:\n%s", md)
	}
}

func TestJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.json")
	if err := writeJSON(path, &report{Mode: "test", Runs: sampleRuns()}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Runs []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil || len(rep.Runs) != 4 {
		t.Fatalf("%v, %d runs", err, len(rep.Runs))
	}
	for _, k := range []string{"scenario", "client", "nodes", "bytes", "A_s", "B_s", "efficiency",
		"origin_bytes_ratio", "origin_meta_bytes", "origin_meta_requests", "interdc_bytes_ratio", "max_upload_share", "cpu_percent",
		"clients_cpu_s_per_node", "load_avg_start", "load_avg_end", "tracker", "max_peers", "splay_s", "churn", "seed", "rep",
		"A_minus_splay_over_B", "killed", "restarted_verified"} {
		for i, r := range rep.Runs {
			if _, ok := r[k]; !ok {
				t.Errorf("run %d lacks %q", i, k)
			}
		}
	}
	if rep.Runs[0]["interdc_bytes_ratio"] != nil || rep.Runs[2]["interdc_bytes_ratio"] != 1.5 || rep.Runs[2]["A_s"] != nil {
		t.Errorf("nulls: interdc %v and %v, A %v", rep.Runs[0]["interdc_bytes_ratio"], rep.Runs[2]["interdc_bytes_ratio"], rep.Runs[2]["A_s"])
	}
	// What swarmsim --validate reads of a scale run.
	if sc := rep.Runs[3]; sc["max_peers"] != 2.0 || sc["splay_s"] != 20.0 || sc["churn"] != 0.34 || sc["origin_meta_bytes"] != 45.0*1024 {
		t.Errorf("scale run: max_peers %v, splay_s %v, churn %v, origin_meta_bytes %v", sc["max_peers"], sc["splay_s"], sc["churn"], sc["origin_meta_bytes"])
	}
}

func TestChart(t *testing.T) {
	img, err := chart(sampleRuns())
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != chartW || b.Dy() != headerH+4*rowH {
		t.Fatalf("chart is %v", b)
	}
	// The failed node of the third run is a full-height red bar; the first run's bars are blue.
	seen := map[color.RGBA]bool{}
	for y := 0; y < img.Bounds().Dy(); y++ {
		for x := 0; x < chartW; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			seen[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}] = true
		}
	}
	for name, c := range map[string]color.RGBA{"node": colNode, "failed": colFailed, "origin": colOrigin, "upload": colUpload, "bound": colBound} {
		if !seen[c] {
			t.Errorf("no %s colour in the chart", name)
		}
	}
	path := filepath.Join(t.TempDir(), "c.png")
	if err := writeChart(path, sampleRuns()); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 20<<10 {
		t.Errorf("the chart file: %v, %v", st, err)
	}
	if err := writeChart(filepath.Join(t.TempDir(), "c.png"), nil); err != nil {
		t.Errorf("chart of no runs: %v", err)
	}
}

func TestRoundTicks(t *testing.T) {
	tests := []struct {
		t      roundTicks
		lo, hi float64
		want   string
	}{
		{roundTicks{n: 8, integers: true}, -0.6, 3.6, "0 1 2 3"},
		{roundTicks{n: 8, integers: true}, -0.6, 15.6, "0 5 10 15"},
		{roundTicks{n: 6}, 0, 1.95, "0 0.5 1 1.5"},
		{roundTicks{n: 6}, 0, 39, "0 10 20 30"},
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range tt.t.Ticks(tt.lo, tt.hi) {
			got = append(got, tk.Label)
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%+v.Ticks(%v, %v) = %q, want %q", tt.t, tt.lo, tt.hi, got, tt.want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	tests := []struct{ in, want float64 }{
		{0, 1}, {0.3, 0.3}, {0.31, 0.4}, {1, 1}, {1.01, 1.2}, {4.2, 5}, {13.4, 15}, {57, 60}, {100, 100}, {101, 120}, {115.5, 120}, {850, 1000},
	}
	for _, tt := range tests {
		if got := niceCeil(tt.in); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCollect(t *testing.T) {
	dir := t.TempDir()
	pkg := []byte("the package")
	ds := &dataset{sha1: sha1.Sum(pkg), size: 1000}
	mk := func(name string, content []byte, done bool, at float64) *node {
		out := filepath.Join(dir, name+".out")
		if content != nil {
			if err := os.WriteFile(out, content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return &node{host: &netlab.Host{Name: name, Addr: netip.MustParseAddr("198.18.0.10"), DC: 1},
			nc: nodeCmd{out: out}, done: done, doneAt: time.Duration(at * float64(time.Second))}
	}
	nodes := []*node{mk("n00", pkg, true, 3), mk("n01", pkg, true, 5), mk("n02", []byte("corrupt"), true, 4), mk("n03", nil, false, 0)}
	if err := os.WriteFile(filepath.Join(dir, "n03.log"), []byte("one\ntwo\nthree\nfour\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	traffic := netlab.Traffic{
		Up:      map[string]uint64{"o": 1500, "n00": 1000, "n01": 500, "n02": 0, "n03": 0},
		Down:    map[string]uint64{"o": 10, "n00": 1000, "n01": 1000, "n02": 1000, "n03": 20},
		InterDC: [2]uint64{1200, 300},
	}
	interDC := 20.0
	res := &Run{Scenario: scenarioTwoDC, Client: clientAria2, Nodes: 4, Bytes: 1000, PayloadBytes: 1000, B: 2, InterDCRateMbit: &interDC}
	res.collect(nodes, traffic, ds, dir)

	if res.Completed != 3 || res.Verified != 2 || res.A != nil || res.Efficiency != nil {
		t.Errorf("completed %d, verified %d, A %v, efficiency %v; want 3, 2 and no A with a node missing", res.Completed, res.Verified, res.A, res.Efficiency)
	}
	if res.MedianS == nil || *res.MedianS != 4 {
		t.Errorf("median %v, want 4 (of 3, 4, 5)", res.MedianS)
	}
	if res.OriginBytes != 1500 || res.OriginBytesRatio != 1.5 || res.MaxUploadShare != 1.5 || res.UploadMaxOverMean != 1500/(3000.0/5) {
		t.Errorf("origin %d (%v F), max upload %v, max/mean %v", res.OriginBytes, res.OriginBytesRatio, res.MaxUploadShare, res.UploadMaxOverMean)
	}
	if res.InterDCBytes == nil || *res.InterDCBytes != [2]uint64{1200, 300} || res.InterDCBytesRatio == nil || *res.InterDCBytesRatio != 1.2 {
		t.Errorf("inter-DC %v, ratio %v; want [1200 300], 1.2", res.InterDCBytes, res.InterDCBytesRatio)
	}
	if len(res.Hosts) != 5 || res.Hosts[0].Role != "origin" || res.Hosts[0].Completed != nil {
		t.Fatalf("hosts %+v", res.Hosts)
	}
	n02, n03 := res.Hosts[3], res.Hosts[4]
	if !*n02.Completed || *n02.Verified || !strings.Contains(n02.Error, "does not match") {
		t.Errorf("corrupt node: %+v", n02)
	}
	if *n03.Completed || n03.CompletionS != nil || !strings.Contains(n03.Error, "did not hold the package") || !strings.Contains(n03.Error, "two | three | four") {
		t.Errorf("unfinished node: %+v", n03)
	}
	if h := res.Hosts[1]; !*h.Completed || !*h.Verified || *h.CompletionS != 3 || h.UploadShare != 1 || h.Error != "" {
		t.Errorf("good node: %+v", h)
	}

	// With every node verified, A is the last one and the efficiency B/A.
	res = &Run{Scenario: scenarioFanout, Client: clientAria2, Nodes: 2, Bytes: 1000, PayloadBytes: 1000, B: 2}
	res.collect(nodes[:2], traffic, ds, dir)
	if res.A == nil || *res.A != 5 || res.Efficiency == nil || *res.Efficiency != 0.4 || res.InterDCBytesRatio != nil {
		t.Errorf("A %v, efficiency %v, inter-DC %v; want 5, 0.4, none", res.A, res.Efficiency, res.InterDCBytesRatio)
	}

	// With a splay: n00 started at 1 s, n01 was killed at 2 s and restarted at 7 s; its CPU
	// counts the killed process's too.
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	nodes[0].started, nodes[0].startedAt = true, sec(1)
	n1 := nodes[1]
	n1.started, n1.startedAt, n1.killed, n1.killedAt, n1.restarted, n1.restartedAt, n1.deadCPU = true, sec(0.5), true, sec(2), true, sec(7), 1.5
	res = &Run{Scenario: scenarioScale, Client: clientAria2, Nodes: 2, Bytes: 1000, PayloadBytes: 1000, B: 2, SplayS: 3}
	res.collect(nodes[:2], traffic, ds, dir)
	h0, h1 := res.Hosts[1], res.Hosts[2]
	switch {
	case res.Killed != 1 || res.RestartedVerified != 1 || res.ClientsCPUS != 1.5 || res.ClientsCPUSPerNode != 0.75:
		t.Errorf("killed %d, restarted and verified %d, CPU %v s (%v per node); want 1, 1, 1.5, 0.75",
			res.Killed, res.RestartedVerified, res.ClientsCPUS, res.ClientsCPUSPerNode)
	case res.AMinusSplayOverB == nil || *res.AMinusSplayOverB != 1 || res.MedianTransferS == nil || *res.MedianTransferS != 3.25:
		t.Errorf("(A-D)/B %v, median transfer %v; want (5-3)/2 = 1 and the mean of 2 and 4.5", optF(res.AMinusSplayOverB, "%v"), optF(res.MedianTransferS, "%v"))
	case *h0.StartS != 1 || *h0.TransferS != 2 || h0.KilledAtS != nil || h0.RestartedAtS != nil:
		t.Errorf("n00: %+v", h0)
	case *h1.StartS != 0.5 || *h1.TransferS != 4.5 || *h1.KilledAtS != 2 || *h1.RestartedAtS != 7 || *h1.CPUS != 1.5:
		t.Errorf("n01: %+v", h1)
	}
}

func TestSetOriginStats(t *testing.T) {
	st := &httpStats{BodyBytes: 10_700}
	st.Files = map[string]struct {
		Requests  int64 `json:"requests"`
		BodyBytes int64 `json:"body_bytes"`
	}{
		"/" + pkgName:              {Requests: 12, BodyBytes: 10_000},
		"/" + pkgName + ".torrent": {Requests: 4, BodyBytes: 600},
		"/" + pkgName + ".zsync":   {Requests: 1, BodyBytes: 100},
		"/index.json":              {Requests: 3, BodyBytes: 0}, // HEADs or 304s
	}
	res := &Run{PayloadBytes: 5000}
	res.setOriginStats(st)
	if res.OriginMetaBytes == nil || *res.OriginMetaBytes != 700 || res.OriginMetaRequests == nil || *res.OriginMetaRequests != 8 {
		t.Errorf("origin_meta_bytes %v, origin_meta_requests %v; want 700 and 8", res.OriginMetaBytes, res.OriginMetaRequests)
	}
	if res.OriginPackageRatio == nil || *res.OriginPackageRatio != 2 || *res.OriginHTTPBytes != 10_700 || res.OriginHTTPFiles["/index.json"] != 0 {
		t.Errorf("package ratio %v, HTTP bytes %v, files %v", res.OriginPackageRatio, res.OriginHTTPBytes, res.OriginHTTPFiles)
	}
}

// TestMediansTable: runs repeated with --repeat get one line of medians per configuration,
// over the runs that have each figure.
func TestMediansTable(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	meta := int64(64 << 10)
	run := func(client string, a, originRatio, load float64, failed bool) *Run {
		r := &Run{Scenario: "scale", Client: client, Nodes: 64, Bytes: 8 << 20, NodeRateMbit: 4, OriginRateMbit: 4,
			Tracker: "embedded", MaxPeers: 16, OriginFetchers: 16, SplayS: 20, Churn: 0.1, B: 16, OriginBytesRatio: originRatio,
			OriginMetaBytes: &meta, CPUPercent: 50, ClientsCPUSPerNode: 1, LoadAvgStart: &[3]float64{load, 0, 0},
			Verified: 64, Hosts: []HostResult{{Role: "origin"}}}
		if failed {
			r.Verified, r.Error = 63, "1 of 64 nodes did not finish"
			return r
		}
		r.A, r.Efficiency, r.AMinusSplayOverB = f(a), f(16/a), f((a-20)/16)
		return r
	}
	runs := []*Run{
		run("pkgsync", 40, 1.05, 1, false), run("aria2", 60, 3, 1.5, false),
		run("pkgsync", 44, 1.2, 2, false), run("aria2", 0, 4, 2.5, true),
		run("pkgsync", 36, 1.1, 0.5, false), run("aria2", 80, 5, 3, false),
	}
	md := mediansTable(runs)
	for _, want := range []string{
		"| scale | pkgsync | 64 | 8.0 MiB | embedded K=16 D=20s P=10% | 3/3 | 40.0 | 0.40 | 1.25 | 1.10 F | – | 1.0 KiB | 50 | 1.00 | 0.50-2.00 | 192/192 |",
		"| scale | aria2 | 64 | 8.0 MiB | embedded K=16 D=20s P=10% | 2/3 | 70.0 | 0.23 | 3.12 | 4.00 F | – | 1.0 KiB | 50 | 1.00 | 1.50-3.00 | 191/192 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("medians lack %q:\n%s", want, md)
		}
	}
	if got := mediansTable(runs[:2]); got != "" {
		t.Errorf("medians of runs that ran once:\n%s", got)
	}
}

// TestBuildLabFails: a lab whose hosts cannot be made (tc refuses a zero rate) is an error with
// nothing left behind. It was a panic: the cleanup closed a lab the error return had cleared.
func TestBuildLabFails(t *testing.T) {
	testtool.NeedRoot(t)
	testtool.Need(t, "ip", "tc")
	prefix, err := netlab.NewPrefix()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer netlab.Cleanup(ctx, prefix)
	_, _, _, err = buildLab(ctx, prefix, spec{Scenario: scenarioFanout, Client: clientPkgsync, Nodes: 2, Size: 1 << 20, NodeRate: 10e6})
	if err == nil {
		t.Fatal("a lab with a zero origin rate was built")
	}
	if left, lerr := netlab.Namespaces(ctx, prefix); lerr != nil || len(left) > 0 {
		t.Errorf("namespaces left behind: %v (%v)", left, lerr)
	}
}

// A node's start delay is the time from its process's start to its first log line, noted once
// per start: a restarted node's counts from its restart and from what its log held then.
func TestStartDelay(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "n00.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := &node{p: &proc{}, logf: f, lastStartAt: time.Second}
	n.startDelay(2 * time.Second)
	if len(n.startDelays) != 0 {
		t.Fatalf("a delay %v noted before the log was written", n.startDelays)
	}
	f.WriteString("first line\n")
	n.startDelay(3500 * time.Millisecond)
	f.WriteString("second line\n")
	n.startDelay(4 * time.Second)
	if want := []time.Duration{2500 * time.Millisecond}; !slices.Equal(n.startDelays, want) {
		t.Fatalf("delays %v, want %v", n.startDelays, want)
	}
	// The restart: what the log held before does not count.
	fi, _ := f.Stat()
	n.lastStartAt, n.logMark, n.outSeen = 10*time.Second, fi.Size(), false
	n.startDelay(11 * time.Second)
	f.WriteString("after the restart\n")
	n.startDelay(13 * time.Second)
	if want := []time.Duration{2500 * time.Millisecond, 3 * time.Second}; !slices.Equal(n.startDelays, want) {
		t.Fatalf("delays %v, want %v", n.startDelays, want)
	}
	// A node that is down notes nothing.
	n.p, n.outSeen = nil, false
	f.WriteString("more\n")
	n.startDelay(20 * time.Second)
	if len(n.startDelays) != 2 {
		t.Fatalf("a node without a process noted %v", n.startDelays)
	}
}
