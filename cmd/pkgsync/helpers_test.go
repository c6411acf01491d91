package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/tracker"
)

// pkgsync runs one command line in-process and returns its exit status, stdout and stderr.
func pkgsync(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// mustPkgsync runs a command that must succeed.
func mustPkgsync(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := pkgsync(t, args...)
	if code != 0 {
		t.Fatalf("pkgsync %q: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte { return versions.Random(seed, n) }

// edited returns a copy of v1 with insertions, deletions and overwrites at scattered places.
func edited(v1 []byte, seed uint64, edits int) []byte {
	return versions.Edit(v1, seed, edits, 500, 3500)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startOrigin serves dir with pkgsync's own origin (Go's net/http underneath).
func startOrigin(t *testing.T, dir string) (string, *origin.Server) {
	t.Helper()
	srv, err := origin.New(dir, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts.URL + "/", srv
}

// startTracker starts pkgsync's embedded tracker on loopback for the test and returns its
// announce URL.
func startTracker(t *testing.T) string {
	t.Helper()
	return startTrackerOpts(t, tracker.Options{})
}

// startTrackerOpts is startTracker with the tracker's options.
func startTrackerOpts(t *testing.T, opts tracker.Options) string {
	t.Helper()
	tr := tracker.New(opts)
	ts := httptest.NewServer(tr.Handler())
	t.Cleanup(func() { ts.Close(); tr.Close() })
	return ts.URL + "/announce"
}

type updateJSON struct {
	Output           string  `json:"output"`
	UpToDate         bool    `json:"up_to_date"`
	BytesTotal       int64   `json:"bytes_total"`
	BytesReused      int64   `json:"bytes_reused"`
	BytesFromPeers   int64   `json:"bytes_from_peers"`
	BytesFromOrigin  int64   `json:"bytes_from_origin"`
	RequestsToOrigin int64   `json:"requests_to_origin"`
	Seconds          float64 `json:"seconds"`
	SHA1             string  `json:"sha1"`
}

func parseUpdateJSON(t *testing.T, out string) updateJSON {
	t.Helper()
	var u updateJSON
	if err := json.Unmarshal([]byte(out), &u); err != nil {
		t.Fatalf("update --json output %q: %v", out, err)
	}
	return u
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d expected", path, len(got), len(want))
	}
}
