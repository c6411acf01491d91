package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/metrics/metricstest"
	"github.com/pkgsync/pkgsync/updater"
)

// TestServeAndTrackerMetrics runs `pkgsync serve --tracker` and `pkgsync tracker`, scrapes
// their /metrics over HTTP and reads them with the Prometheus text parser: a range served moves
// the package's byte counter by exactly the body sent, an announce moves the announce counter by
// one, and the swarm and peer gauges count the announcing peer.
func TestServeAndTrackerMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app-1.0.tar"), randomBytes(41, 200000))
	for _, args := range [][]string{
		{"serve", dir, "--listen", "127.0.0.1:0", "--tracker", "--quiet-announces"},
		{"tracker", "--listen", "127.0.0.1:0", "--quiet-announces"},
	} {
		t.Run(args[0], func(t *testing.T) {
			base := startCommand(t, args...)
			before := metricstest.Scrape(t, base+"/metrics")
			if args[0] == "serve" {
				sent := []string{"package", "app-1.0.tar", "kind", "data", "status", "206"}
				body := getRange(t, base+"/app-1.0.tar", "bytes=5000-70535")
				after := metricstest.Scrape(t, base+"/metrics")
				if d := after.Get("pkgsync_origin_sent_bytes_total", sent...) - before.Get("pkgsync_origin_sent_bytes_total", sent...); d != float64(len(body)) || len(body) != 65536 {
					t.Errorf("a range of %d bytes moved the sent bytes of %q by %v", len(body), sent, d)
				}
				if d := after.Get("pkgsync_origin_requests_total", "method", "GET", "status", "206") - before.Get("pkgsync_origin_requests_total", "method", "GET", "status", "206"); d != 1 {
					t.Errorf("a range request moved requests{GET,206} by %v, want 1", d)
				}
				before = after
			}
			if reason := announceFrom(t, "127.0.0.1", base, ""); reason != "" {
				t.Fatalf("announce refused: %s", reason)
			}
			after := metricstest.Scrape(t, base+"/metrics")
			ok := []string{"event", "none", "result", "ok"}
			if d := after.Get("pkgsync_tracker_announces_total", ok...) - before.Get("pkgsync_tracker_announces_total", ok...); d != 1 {
				t.Errorf("an announce moved announces%q by %v, want 1", ok, d)
			}
			for name, want := range map[string]float64{"pkgsync_tracker_swarms": 1, "pkgsync_tracker_peers": 1, "pkgsync_tracker_seeders": 0} {
				if got, present := after.Value(name); !present || got != want {
					t.Errorf("after one leecher announced: %s = %v (present %v), want %v", name, got, present, want)
				}
			}
			if _, present := after.Value("process_open_fds"); !present {
				t.Errorf("no process_open_fds: the process's metrics are missing")
			}
		})
	}
}

// getRange GETs one range of url and returns the body of the 206.
func getRange(t *testing.T, url, rng string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", rng)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("GET %s %s: %s (%v)", url, rng, resp.Status, err)
	}
	return body
}

// checkFile compares samples of a textfile with want: name, then label pairs, then the value.
func checkFile(t *testing.T, step string, fams metricstest.Families, want []sample) {
	t.Helper()
	for _, w := range want {
		if got, ok := fams.Value(w.name, w.labels...); !ok || got != w.value {
			t.Errorf("%s: %s%q = %v (present %v), want %v", step, w.name, w.labels, got, ok, w.value)
		}
	}
}

type sample struct {
	name   string
	labels []string
	value  float64
}

// resultSamples are the three result gauges of a run whose result is result.
func resultSamples(name, result string, labels ...string) []sample {
	var out []sample
	for _, r := range []string{"updated", "current", "failed"} {
		v := 0.0
		if r == result {
			v = 1
		}
		out = append(out, sample{name, append(append([]string{}, labels...), "result", r), v})
	}
	return out
}

// TestUpdateMetricsFile runs update with --metrics-file against an origin: an update, a run that
// finds OUT current, and a failed run each replace the file with their bytes by source, duration,
// result and time, read back with the Prometheus text parser; a run that finds OUT locked leaves
// the file alone, and a file in a missing folder is refused before anything is fetched.
func TestUpdateMetricsFile(t *testing.T) {
	v1 := randomBytes(50, 1<<20)
	v2 := edited(v1, 51, 4)
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	node, prom := t.TempDir(), filepath.Join(t.TempDir(), "pkgsync.prom")
	old, out := filepath.Join(node, "v1.tar"), filepath.Join(node, "pkg.tar")
	writeFile(t, old, v1)
	update := func(source string) (int, string) {
		code, stdout, stderr := pkgsync(t, "update", "--no-swarm", "--json", "--old", old, "-o", out, "--metrics-file", prom, source)
		if code == 1 && !strings.Contains(stderr, source) {
			t.Errorf("update %s: exit %d without naming the source: %s", source, code, stderr)
		}
		return code, stdout
	}
	lbl := []string{"output", out}
	for _, step := range []struct {
		name, source, result string
		code                 int
	}{
		{"an update", base + "pkg.tar.torrent", "updated", 0},
		{"OUT current", base + "pkg.tar.torrent", "current", 0},
		{"a failed run", base + "gone.tar.torrent", "failed", 1},
	} {
		start := time.Now()
		code, stdout := update(step.source)
		if code != step.code {
			t.Fatalf("%s: exit %d, want %d", step.name, code, step.code)
		}
		fams := metricstest.ReadFile(t, prom)
		var res updateJSON
		if code == 0 {
			res = parseUpdateJSON(t, stdout)
		}
		want := append(resultSamples("pkgsync_update_result", step.result, lbl...),
			sample{"pkgsync_update_bytes", append(lbl, "source", "reused"), float64(res.BytesReused)},
			sample{"pkgsync_update_bytes", append(lbl, "source", "peers"), float64(res.BytesFromPeers)},
			sample{"pkgsync_update_bytes", append(lbl, "source", "origin"), float64(res.BytesFromOrigin)})
		if code == 0 {
			want = append(want, sample{"pkgsync_update_duration_seconds", lbl, res.Seconds})
		}
		checkFile(t, step.name, fams, want)
		if step.result == "updated" && res.BytesFromOrigin == 0 {
			t.Errorf("%s: nothing came from the origin: %+v", step.name, res)
		}
		ts, _ := fams.Value("pkgsync_update_last_run_timestamp_seconds", lbl...)
		if end := time.Unix(0, int64(ts*1e9)); end.Before(start.Add(-time.Millisecond)) || end.After(time.Now()) {
			t.Errorf("%s: last run at %v, want within the run (%v..now)", step.name, end, start)
		}
	}

	// Another update holds OUT.lock: exit 3, and the file stays the holder's to write.
	lock, err := os.OpenFile(out+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(prom)
	writeFile(t, out, v1) // so that the run has something to do and reaches the lock
	if code, _ := update(base + "pkg.tar.torrent"); code != 3 {
		t.Errorf("update of a locked OUT: exit %d, want 3", code)
	}
	if after, _ := os.ReadFile(prom); string(after) != string(before) {
		t.Errorf("a run that found OUT locked rewrote %s", prom)
	}

	missing := filepath.Join(t.TempDir(), "none", "pkgsync.prom")
	code, _, stderr := pkgsync(t, "update", "--no-swarm", "--old", old, "-o", out, "--metrics-file", missing, base+"pkg.tar.torrent")
	if code != 1 || !strings.Contains(stderr, "--metrics-file "+missing) {
		t.Errorf("--metrics-file in a missing folder: exit %d, %q; want exit 1 naming it", code, stderr)
	}
}

// TestSyncMetricsFile runs sync with --metrics-file: per package line the bytes by source,
// duration and result of its update as --json reports them, and the run's result, duration and
// time; a run with nothing new says current, one whose package fails to verify failed.
func TestSyncMetricsFile(t *testing.T) {
	pub, dir := t.TempDir(), t.TempDir()
	base, _ := startOrigin(t, pub)
	app1 := randomBytes(60, 512<<10)
	db1 := randomBytes(61, 256<<10)
	publishAs := func(name string, data []byte) {
		writeFile(t, filepath.Join(pub, name), data)
		mustPkgsync(t, "make", filepath.Join(pub, name), "--url", base+name)
	}
	publishAs("app-1.0.tar", app1)
	publishAs("app-1.1.tar", edited(app1, 62, 3))
	publishAs("db-1.img", db1)
	writeFile(t, filepath.Join(dir, "app-1.0.tar"), app1)
	prom := filepath.Join(t.TempDir(), "sync.prom")
	d := []string{"dir", dir}
	for _, step := range []struct {
		name, result string
		code         int
		lines        map[string]string
	}{
		{"app updated, db fetched whole", "updated", exitUpdated, map[string]string{"app": "updated", "db": "updated"}},
		{"nothing new", "current", 0, map[string]string{"app": "current", "db": "current"}},
		{"a damaged version", "failed", 1, map[string]string{"app": "failed", "db": "current"}},
	} {
		if step.result == "failed" {
			publishAs("app-1.2.tar", edited(app1, 63, 3))
			writeFile(t, filepath.Join(pub, "app-1.2.tar"), edited(app1, 64, 3))
		}
		start := time.Now()
		code, stdout, stderr := pkgsync(t, "sync", "--no-swarm", "--json", "--metrics-file", prom, base+"index.json", dir)
		if code != step.code {
			t.Fatalf("%s: exit %d, want %d: %s", step.name, code, step.code, stderr)
		}
		var res syncJSON
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("%s: --json printed %q: %v", step.name, stdout, err)
		}
		fams := metricstest.ReadFile(t, prom)
		want := append(resultSamples("pkgsync_sync_result", step.result, d...), sample{"pkgsync_sync_duration_seconds", d, res.Seconds})
		for _, p := range res.Packages {
			if p.Status != step.lines[p.Line] {
				t.Errorf("%s: line %s %s, want %s (%s)", step.name, p.Line, p.Status, step.lines[p.Line], p.Error)
			}
			l := append(append([]string{}, d...), "line", p.Line)
			want = append(want, resultSamples("pkgsync_sync_package_result", p.Status, l...)...)
			want = append(want,
				sample{"pkgsync_sync_bytes", append(l, "source", "reused"), float64(p.Update.BytesReused)},
				sample{"pkgsync_sync_bytes", append(l, "source", "peers"), float64(p.Update.BytesFromPeers)},
				sample{"pkgsync_sync_bytes", append(l, "source", "origin"), float64(p.Update.BytesFromOrigin)},
				sample{"pkgsync_sync_package_duration_seconds", l, p.Update.Seconds})
			if p.Status == "updated" && p.Update.BytesFromOrigin == 0 {
				t.Errorf("%s: line %s updated with nothing from the origin", step.name, p.Line)
			}
		}
		if len(res.Packages) != 2 {
			t.Errorf("%s: %d lines in --json, want 2", step.name, len(res.Packages))
		}
		checkFile(t, step.name, fams, want)
		ts, _ := fams.Value("pkgsync_sync_last_run_timestamp_seconds", d...)
		if end := time.Unix(0, int64(ts*1e9)); end.Before(start.Add(-time.Millisecond)) || end.After(time.Now()) {
			t.Errorf("%s: last run at %v, want within the run (%v..now)", step.name, end, start)
		}
	}
}

// syncJSON is what the test reads of sync --json; Update is zero where --json has none.
type syncJSON struct {
	Seconds  float64 `json:"seconds"`
	Packages []struct {
		Line   string     `json:"line"`
		Status string     `json:"status"`
		Error  string     `json:"error"`
		Update updateJSON `json:"update"`
	} `json:"packages"`
}

var seedListeningRE = regexp.MustCompile(`seed: listening on (\S+); interrupt to stop`)

// TestSeedMetrics runs `pkgsync seed --metrics-addr` and scrapes its /metrics while a peer
// connects to it and while a node updates from it: the torrents seeded (the package and its
// .zsync), the connected peers of the package, and its uploaded bytes, at least what the node
// says it took from peers.
func TestSeedMetrics(t *testing.T) {
	v1 := randomBytes(70, 2<<20)
	v2 := edited(v1, 71, 6)
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	torrent := filepath.Join(pub, "pkg.tar.torrent")
	raw, err := os.ReadFile(torrent)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := manifest.ParseTorrent(raw)
	if err != nil {
		t.Fatal(err)
	}
	zt, err := mt.ZsyncTorrent("")
	if err != nil || zt == nil {
		t.Fatalf("the .zsync as a torrent: %v, %v", zt, err)
	}
	ih := mt.InfoHash
	pkgLabels := []string{"package", "pkg.tar", "info_hash", ih.HexString()}

	ctx, cancel := context.WithCancel(context.Background())
	var stderr trackerStderr
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"seed", torrent, "--listen", "127.0.0.41:0", "--metrics-addr", "127.0.0.1:0"}, io.Discard, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("seed: exit %d: %s", code, stderr.String())
		}
	}()
	var metricsURL, seeder string
	waitFor(t, "seed to say where it listens", func() bool {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("seed exited with %d: %s", code, stderr.String())
		default:
		}
		if m := trackerListeningRE.FindStringSubmatch(stderr.String()); m != nil {
			metricsURL = m[1] + "/metrics"
		}
		if m := seedListeningRE.FindStringSubmatch(stderr.String()); m != nil {
			seeder = m[1]
		}
		return metricsURL != "" && seeder != ""
	})
	fams := metricstest.Scrape(t, metricsURL)
	if got := fams.Get("pkgsync_seed_torrents"); got != 2 {
		t.Errorf("torrents seeded %v, want 2 (pkg.tar and its .zsync): %s", got, stderr.String())
	}
	if got, ok := fams.Value("pkgsync_seed_uploaded_bytes_total", pkgLabels...); !ok || got != 0 {
		t.Errorf("uploaded before any peer: %v (present %v), want 0", got, ok)
	}

	// A peer that completes the handshake is counted while connected.
	c, err := net.Dial("tcp", seeder)
	if err != nil {
		t.Fatal(err)
	}
	hs := append([]byte("\x13BitTorrent protocol"), make([]byte, 8)...)
	hs = append(append(hs, ih[:]...), "-XX0001-metricstest0"...)
	if _, err := c.Write(hs); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, c) // take what the seeder sends, so it never blocks on us
	peers := func() float64 { return metricstest.Scrape(t, metricsURL).Get("pkgsync_seed_peers", pkgLabels...) }
	waitFor(t, "pkgsync_seed_peers 1 while a peer is connected", func() bool { return peers() == 1 })
	c.Close()
	waitFor(t, "pkgsync_seed_peers 0 once it left", func() bool { return peers() == 0 })

	// A node updates from the seeder (named with --peer; the torrent names no tracker).
	node := t.TempDir()
	old := filepath.Join(node, "v1.tar")
	writeFile(t, old, v1)
	var res struct {
		BytesFromPeers int64 `json:"bytes_from_peers"`
		ZsyncFromPeers int64 `json:"zsync_bytes_from_peers"`
	}
	out := mustPkgsync(t, "update", "--json", "--old", old, "-o", filepath.Join(node, "pkg.tar"), "--seed-time", "0",
		"--listen", "127.0.0.42:0", "--peer", seeder, base+"pkg.tar.torrent")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.BytesFromPeers == 0 {
		t.Fatalf("update from the seeder: %s (%v); want bytes from peers", out, err)
	}
	fams = metricstest.Scrape(t, metricsURL)
	if got := fams.Get("pkgsync_seed_uploaded_bytes_total", pkgLabels...); got < float64(res.BytesFromPeers) {
		t.Errorf("the seeder counts %v bytes uploaded, fewer than the %d the node took from peers", got, res.BytesFromPeers)
	}
	zsyncLabels := []string{"package", "pkg.tar.zsync", "info_hash", zt.InfoHash.HexString()}
	if got := fams.Get("pkgsync_seed_uploaded_bytes_total", zsyncLabels...); got < float64(res.ZsyncFromPeers) {
		t.Errorf("the seeder counts %v bytes of the .zsync uploaded, fewer than the %d the node took from peers", got, res.ZsyncFromPeers)
	}
}

func TestUpdateOutput(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		opt    updater.Options
		res    *updater.Result
		output string
	}{
		{"the run's OUT", updater.Options{Out: "/srv", Source: "http://o/p.tar.torrent"}, &updater.Result{Output: "/srv/p.tar"}, "/srv/p.tar"},
		{"-o before OUT is known", updater.Options{Out: "/srv/app.tar", Source: "http://o/p.tar.torrent"}, nil, "/srv/app.tar"},
		{"the URL's name", updater.Options{Source: "http://o/pkgs/p.tar.torrent?token=x#y"}, nil, filepath.Join(wd, "p.tar")},
		{"a local .zsync", updater.Options{Source: "../pkgs/p.tar.zsync"}, nil, filepath.Join(wd, "p.tar")},
		{"a relative OUT", updater.Options{Source: "http://o/p.tar.torrent"}, &updater.Result{Output: "out/p.tar"}, filepath.Join(wd, "out/p.tar")},
	}
	for _, tt := range tests {
		if got := updateOutput(tt.opt, tt.res); got != tt.output {
			t.Errorf("%s: output label %q, want %q", tt.name, got, tt.output)
		}
	}
}
