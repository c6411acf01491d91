package main

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReportOnRealTrackerLog runs `pkgsync tracker --announce-log`, announces three peers of a
// 1000-byte package to it (one never completes) and one refused request, stops it, and runs
// `pkgsync report` on the log it wrote.
func TestReportOnRealTrackerLog(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "announces.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr trackerStderr
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tracker", "--listen", "127.0.0.1:0", "--announce-log", logPath}, io.Discard, &stderr)
	}()
	var base string
	for start := time.Now(); base == "" && time.Since(start) < 30*time.Second; time.Sleep(10 * time.Millisecond) {
		if m := trackerListeningRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("the tracker did not say where it listens: %s", stderr.String())
	}
	announce := func(peer int, event string, up, down, left int64) {
		t.Helper()
		q := url.Values{
			"info_hash": {"pkgsync-report-test!"}, "peer_id": {"-PS0001-00000000000" + strconv.Itoa(peer)},
			"port": {strconv.Itoa(7000 + peer)}, "uploaded": {strconv.FormatInt(up, 10)},
			"downloaded": {strconv.FormatInt(down, 10)}, "left": {strconv.FormatInt(left, 10)}, "compact": {"1"},
		}
		if event != "" {
			q.Set("event", event)
		}
		if peer == 0 {
			q.Set("port", "0") // refused: bad port
		}
		resp, err := http.Get(base + "/announce?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	announce(1, "started", 0, 0, 1000)
	announce(2, "started", 0, 0, 1000)
	announce(3, "started", 0, 0, 1000)
	announce(0, "started", 0, 0, 1000)
	time.Sleep(20 * time.Millisecond)
	announce(1, "completed", 0, 1000, 0)
	announce(2, "completed", 400, 1000, 0)
	announce(3, "", 300, 500, 500)
	announce(1, "stopped", 700, 1000, 0)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("pkgsync tracker: exit %d: %s", code, stderr.String())
	}

	pngPath, mdPath := filepath.Join(dir, "report.png"), filepath.Join(dir, "report.md")
	var stdout, rstderr bytes.Buffer
	if code := run(context.Background(), []string{"report", logPath, "--png", pngPath, "--md", mdPath}, &stdout, &rstderr); code != 0 {
		t.Fatalf("pkgsync report: exit %d: %s", code, rstderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"## 706b6773796e\n", // hex of "pkgsyn"
		"3 peers, 2 of 3 nodes completed. F = 1000 B (1000 bytes, the largest \"left\" announced)",
		"Origin: 1.10 F (peers' counters, a lower bound).", // 2500 downloaded - 1400 uploaded
		"| 1 | 127.0.0.1:7001 | +0.00 s | ",
		" | 1.00 | 0.70 | stopped |",
		"| 3 | 127.0.0.1:7003 | ",
		" | no (50% left) | 0.50 | 0.30 | (re-announce) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(rstderr.String(), "skipped 1 refused requests and 0 other lines") {
		t.Errorf("stderr does not count the refused request: %s", rstderr.String())
	}
	if md, err := os.ReadFile(mdPath); err != nil || string(md) != out {
		t.Errorf("--md wrote %q (%v), want stdout", md, err)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if img, err := png.Decode(f); err != nil || img.Bounds().Dx() != 1200 || st.Size() < 10<<10 {
		t.Errorf("--png: %v, %d bytes, decoded %v", err, st.Size(), img)
	}
}

func TestReportErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	writeFile(t, bad, []byte("pkgsync: listening\n{\"time\":\"x\",\"peer_id\":\"00\"}\n"))
	empty := filepath.Join(dir, "empty.jsonl")
	writeFile(t, empty, []byte("pkgsync: listening\n"))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"report"}, 2, "name at least one announce log"},
		{[]string{"report", bad}, 1, bad + `:2: announce without "info_hash"`},
		{[]string{"report", empty}, 1, "no announce in " + empty},
		{[]string{"report", empty, "--info-hash", "xyz"}, 2, `--info-hash "xyz": want hex digits`},
		{[]string{"report", filepath.Join(dir, "missing")}, 1, "missing: no such file"},
		{[]string{"report", empty, "--gap", "0s"}, 2, "--gap 0s: want a positive duration"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}

// TestReportStatsURL takes the origin's share from its /.pkgsync/stats over HTTP.
func TestReportStatsURL(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "announces.jsonl")
	writeFile(t, logPath, []byte(
		`{"time":"2026-12-06T19:57:26Z","info_hash":"b4468fec2e96caedfc8538cd3ff4f00d1cc1c02c","peer_id":"2d4754303030332daee65c13be48b6fe72945d25","peer":"10.0.0.1:6881","remote":"10.0.0.1:5","event":"started","uploaded":0,"downloaded":0,"left":2000,"numwant":-1,"peers":0}`+"\n"+
			`{"time":"2026-12-06T19:57:30Z","info_hash":"b4468fec2e96caedfc8538cd3ff4f00d1cc1c02c","peer_id":"2d4754303030332daee65c13be48b6fe72945d25","peer":"10.0.0.1:6881","remote":"10.0.0.1:6","event":"completed","uploaded":0,"downloaded":2000,"left":0,"numwant":-1,"peers":0}`+"\n"))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.pkgsync/stats" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"requests":3,"body_bytes":3500,"files":{"/pkg.tar":{"requests":2,"body_bytes":2500},"/pkg.tar.torrent":{"requests":1,"body_bytes":1000}}}`)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"report", logPath, "--stats", srv.URL + "/.pkgsync/stats"}, &stdout, &stderr); code != 0 {
		t.Fatalf("pkgsync report: exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"## b4468fec2e96 pkg.tar\n", "Origin: 1.25 F (stats /pkg.tar)", "min 4.00 s, median 4.00 s"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, stdout.String())
		}
	}
	code := run(context.Background(), []string{"report", logPath, "--stats", srv.URL + "/nothing"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "/nothing: 404 Not Found") {
		t.Errorf("--stats of a missing URL: exit %d, %s", code, stderr.String())
	}
}
