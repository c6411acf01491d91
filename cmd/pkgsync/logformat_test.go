package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// logRecord is a line of the log on stderr, read back: time, level and msg, and the other keys.
type logRecord struct {
	time, level, msg string
	attrs            map[string]string
}

// textLine is a line of --log-format text: slog's key=value pairs, time, level and msg first.
var (
	textLine = regexp.MustCompile(`^time=(\S+) level=([A-Z]+) msg=("(?:[^"\\]|\\.)*"|\S+)(.*)$`)
	textAttr = regexp.MustCompile(` ([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)`)
)

func parseTextRecord(line string) (logRecord, error) {
	m := textLine.FindStringSubmatch(line)
	if m == nil {
		return logRecord{}, errors.New("not time=... level=... msg=...")
	}
	r := logRecord{time: m[1], level: m[2], msg: unquote(m[3]), attrs: map[string]string{}}
	rest := m[4]
	for _, a := range textAttr.FindAllStringSubmatch(rest, -1) {
		r.attrs[a[1]] = unquote(a[2])
		rest = strings.Replace(rest, a[0], "", 1)
	}
	if rest != "" {
		return logRecord{}, fmt.Errorf("%q is not key=value", rest)
	}
	return r, nil
}

func unquote(s string) string {
	if strings.HasPrefix(s, `"`) {
		var u string
		if json.Unmarshal([]byte(s), &u) == nil {
			return u
		}
	}
	return s
}

func parseJSONRecord(line string) (logRecord, error) {
	var obj map[string]any
	if err := json.Unmarshal([]byte(line), &obj); err != nil {
		return logRecord{}, err
	}
	r := logRecord{attrs: map[string]string{}}
	for k, v := range obj {
		s := fmt.Sprint(v)
		if b, ok := v.(map[string]any); ok {
			j, _ := json.Marshal(b)
			s = string(j)
		}
		switch k {
		case "time":
			r.time = s
		case "level":
			r.level = s
		case "msg":
			r.msg = s
		default:
			r.attrs[k] = s
		}
	}
	if r.time == "" || r.level == "" || r.msg == "" {
		return logRecord{}, errors.New("no time, level or msg")
	}
	return r, nil
}

// parseLog reads every line of stderr as a record of format, failing the test on a line that
// is not one.
func parseLog(t *testing.T, format, stderr string) []logRecord {
	t.Helper()
	parse := map[string]func(string) (logRecord, error){"text": parseTextRecord, "json": parseJSONRecord}[format]
	var out []logRecord
	for i, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		r, err := parse(line)
		if err != nil {
			t.Fatalf("line %d of stderr is not a %s log record: %v\n%s", i+1, format, err, line)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.time); err != nil {
			t.Fatalf("line %d: time %q: %v", i+1, r.time, err)
		}
		out = append(out, r)
	}
	return out
}

// TestUpdateLogFormat runs update -v in the swarm (the origin its web seed) with each
// --log-format: every line on stderr is a record of that format with time, level and msg, the
// updater's records and the swarm's among them, both naming the package with the same key.
func TestUpdateLogFormat(t *testing.T) {
	v1 := randomBytes(20, 3<<20)
	v2 := edited(v1, 21, 8)
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			node := t.TempDir()
			old, out := filepath.Join(node, "v1.tar"), filepath.Join(node, "pkg.tar")
			writeFile(t, old, v1)
			code, stdout, stderr := pkgsync(t, "update", "-v", "--log-format", format, "--json", "--seed-time", "0",
				"--listen", "127.0.0.1:0", "--old", old, "-o", out, base+"pkg.tar.torrent")
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			sameFile(t, out, v2)
			if res := parseUpdateJSON(t, stdout); res.BytesReused == 0 || res.BytesFromOrigin == 0 {
				t.Fatalf("want an update that reused and fetched: %+v", res)
			}
			recs := parseLog(t, format, stderr)
			seen := map[string]int{}
			for _, r := range recs {
				who, _, _ := strings.Cut(r.msg, ": ")
				if r.attrs["torrent"] == "pkg.tar" {
					seen[who]++
				}
			}
			for _, who := range []string{"update", "bt"} {
				if seen[who] == 0 {
					t.Errorf("no %q record names torrent=pkg.tar (records naming it, by package: %v):\n%s", who, seen, stderr)
				}
			}
			if !slices.ContainsFunc(recs, func(r logRecord) bool { return r.msg == "update: synced and renamed into place" }) {
				t.Errorf("no record of the rename:\n%s", stderr)
			}
		})
	}
}

// TestServeLogFormat: serve -v --log-format json writes where it listens and a record per
// request, and nothing else, as JSON lines.
func TestServeLogFormat(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pkg.tar"), []byte("the package"))
	ctx, cancel := context.WithCancel(context.Background())
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{dir, "-v", "--log-format", "json", "--listen", "127.0.0.1:0", "--no-make"}, io.Discard, &stderr)
	}()
	listening := regexp.MustCompile(`listening on (http://[0-9.:]+/)`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(10 * time.Millisecond) {
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start: %q", stderr.String())
		}
	}
	resp, getErr := http.Get(url + "pkg.tar")
	if getErr == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if getErr != nil {
		t.Fatal(getErr)
	}
	recs := parseLog(t, "json", stderr.String())
	if len(recs) != 2 || recs[0].attrs["url"] != url ||
		recs[1].msg != "origin: request" || recs[1].attrs["path"] != "/pkg.tar" || recs[1].attrs["status"] != "200" || recs[1].attrs["bytes"] != "11" {
		t.Fatalf("want the listening record and one request record:\n%s", stderr.String())
	}
}

// TestBadLogFormat: a --log-format that is neither text nor json is a usage error (exit 2) that
// names the flag and the values it takes, on every command that has the flag.
func TestBadLogFormat(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args  []string
		value string // as the message quotes it
	}{
		{[]string{"update", "--log-format", "xml", "--old", "v1.tar", "http://127.0.0.1:1/pkg.tar.torrent"}, "xml"},
		{[]string{"update", "--log-format", "", "http://127.0.0.1:1/pkg.tar.torrent"}, ""},
		{[]string{"sync", "--log-format", "xml", "http://127.0.0.1:1/index.json", dir}, "xml"},
		{[]string{"seed", "--log-format", "xml", filepath.Join(dir, "pkg.tar.torrent")}, "xml"},
		{[]string{"serve", "--log-format", "xml", dir}, "xml"},
		{[]string{"tracker", "--log-format=JSON"}, "JSON"},
	}
	for _, tt := range tests {
		code, stdout, stderr := pkgsync(t, tt.args...)
		want := fmt.Sprintf("pkgsync %s: usage: --log-format %q: want text or json\n", tt.args[0], tt.value)
		if code != 2 || !strings.HasPrefix(stderr, want) || stdout != "" {
			t.Errorf("pkgsync %q: exit %d, stdout %q, stderr %q; want 2 and %q", tt.args, code, stdout, stderr, want)
		}
	}
}

// TestFailureLineLogFormat: the line a failed command ends with is a JSON record under
// --log-format json (level ERROR, the command, the error), and the usual "pkgsync CMD: ERR"
// line otherwise, wherever the flag stands among the others.
func TestFailureLineLogFormat(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.tar.torrent")
	tests := []struct {
		name string
		args []string
		json bool
	}{
		{"json", []string{"update", "--log-format", "json", "--no-swarm", "--old", "v1.tar", missing}, true},
		{"json after a flag with a value", []string{"update", "--old", "v1.tar", "--log-format=json", missing}, true},
		{"text", []string{"update", "--log-format", "text", "--old", "v1.tar", missing}, false},
		{"no flag", []string{"update", "--old", "v1.tar", missing}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := pkgsync(t, tt.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !tt.json {
				if !strings.HasPrefix(last, "pkgsync update: ") || !strings.Contains(last, "missing.tar.torrent") {
					t.Fatalf("last line %q, want \"pkgsync update: ...missing.tar.torrent...\"", last)
				}
				return
			}
			for _, l := range lines {
				if _, err := parseJSONRecord(l); err != nil {
					t.Errorf("stderr line %q is not a JSON record: %v", l, err)
				}
			}
			r, err := parseJSONRecord(last)
			if err != nil {
				t.Fatal(err)
			}
			if r.level != "ERROR" || r.attrs["command"] != "update" || !strings.Contains(r.attrs["err"], "missing.tar.torrent") {
				t.Fatalf("last record %+v, want level ERROR, command update and an err naming the file", r)
			}
		})
	}
}
