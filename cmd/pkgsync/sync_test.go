package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pkgsync/pkgsync/dirsync"
)

// TestSync publishes versions of two package lines and keeps a node's folder current with them:
// each new version is built from the newest older one in the folder, fetching only the changed
// bytes; two versions per line are kept, the older ones removed only once the new one is in
// place; a run with nothing new costs the origin one conditional request; a version that fails
// to verify leaves the folder as it was.
func TestSync(t *testing.T) {
	pub, dir := t.TempDir(), t.TempDir()
	base, srv := startOrigin(t, pub)
	app := [][]byte{randomBytes(200, 3<<20)}
	for i := 1; i < 5; i++ {
		app = append(app, edited(app[i-1], uint64(200+i), 6))
	}
	db := [][]byte{randomBytes(300, 1<<20)}
	db = append(db, edited(db[0], 301, 3))
	publishAs := func(name string, data []byte) {
		writeFile(t, filepath.Join(pub, name), data)
		mustPkgsync(t, "make", filepath.Join(pub, name), "--url", base+name)
	}
	publishAs("app-1.0.tar", app[0])
	publishAs("app-1.1.tar", app[1])
	publishAs("app-1.2.tar", app[2])
	publishAs("db-1.img", db[0])
	publishAs("db-2.img", db[1])
	writeFile(t, filepath.Join(dir, "app-1.0.tar"), app[0])
	writeFile(t, filepath.Join(dir, "db-1.img"), db[0])

	index := base + "index.json"
	syncRun := func(wantCode int, extra ...string) dirsync.Result {
		t.Helper()
		code, out, errs := pkgsync(t, append(append([]string{"sync", "--no-swarm", "--json"}, extra...), index, dir)...)
		if code != wantCode {
			t.Fatalf("sync: exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, out, errs)
		}
		var r dirsync.Result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("sync --json printed %q: %v", out, err)
		}
		return r
	}
	line := func(r dirsync.Result, name string) dirsync.PackageResult {
		t.Helper()
		for _, p := range r.Packages {
			if p.Line == name {
				return p
			}
		}
		t.Fatalf("no result for line %s in %+v", name, r.Packages)
		return dirsync.PackageResult{}
	}
	versionsIn := func(prefix string) []string {
		t.Helper()
		var out []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if n := e.Name(); len(n) > len(prefix) && n[:len(prefix)] == prefix && filepath.Ext(n) != ".part" {
				out = append(out, n)
			}
		}
		return out
	}
	checkUpdate := func(p dirsync.PackageResult, name string, old []string) {
		t.Helper()
		if p.Status != dirsync.Updated || p.Name != name || !slices.Equal(p.Old, old) {
			t.Fatalf("%s: %s %s from %v, want updated %s from %v (%s)", p.Line, p.Status, p.Name, p.Old, name, old, p.Error)
		}
		u := p.Update
		// The origin's bytes are the changed blocks, plus the framing of a multipart answer.
		if missing := u.BytesTotal - u.BytesReused; u.BytesFromOrigin < missing || u.BytesFromOrigin > missing+2048 || u.BytesReused == 0 {
			t.Errorf("%s: %d bytes from the origin, %d reused; want only the %d changed bytes", name, u.BytesFromOrigin, u.BytesReused, missing)
		}
	}

	// From version 1 to the newest of each line.
	r := syncRun(exitUpdated)
	checkUpdate(line(r, "app"), "app-1.2.tar", []string{"app-1.0.tar"})
	checkUpdate(line(r, "db"), "db-2.img", []string{"db-1.img"})
	sameFile(t, filepath.Join(dir, "app-1.2.tar"), app[2])
	sameFile(t, filepath.Join(dir, "db-2.img"), db[1])
	if got := versionsIn("app-"); !slices.Equal(got, []string{"app-1.0.tar", "app-1.2.tar"}) {
		t.Errorf("app versions in the folder: %v, want the two newest", got)
	}

	// Nothing new: one conditional request, answered 304.
	before := srv.Stats()
	r = syncRun(0)
	after := srv.Stats()
	if !r.NotModified || after.Requests-before.Requests != 1 || after.BodyBytes != before.BodyBytes {
		t.Errorf("a run with nothing new: not_modified %v, %d requests and %d body bytes to the origin; want one 304",
			r.NotModified, after.Requests-before.Requests, after.BodyBytes-before.BodyBytes)
	}
	if p := line(r, "app"); p.Status != dirsync.Current {
		t.Errorf("app: %s, want current", p.Status)
	}

	// A new version: built from the newest older one, and the oldest goes.
	publishAs("app-1.3.tar", app[3])
	r = syncRun(exitUpdated, "--only", "app")
	p := line(r, "app")
	checkUpdate(p, "app-1.3.tar", []string{"app-1.2.tar"})
	if !slices.Equal(p.Removed, []string{"app-1.0.tar"}) || len(r.Packages) != 1 {
		t.Errorf("removed %v with %d lines synced; want app-1.0.tar removed, app alone synced", p.Removed, len(r.Packages))
	}
	if got := versionsIn("app-"); !slices.Equal(got, []string{"app-1.2.tar", "app-1.3.tar"}) {
		t.Errorf("app versions in the folder: %v", got)
	}
	sameFile(t, filepath.Join(dir, "app-1.3.tar"), app[3])

	// A version whose data does not match its .torrent (the origin's copy is damaged): the
	// update fails and nothing is removed.
	publishAs("app-1.4.tar", app[4])
	bad := append([]byte(nil), app[4]...)
	for i := 0; i < len(bad); i += 4096 {
		bad[i] ^= 0xff
	}
	writeFile(t, filepath.Join(pub, "app-1.4.tar"), bad)
	r = syncRun(1)
	if p := line(r, "app"); p.Status != dirsync.Failed || p.Error == "" || len(p.Removed) != 0 {
		t.Errorf("damaged app-1.4.tar: %+v, want failed with nothing removed", p)
	}
	if got := versionsIn("app-"); !slices.Equal(got, []string{"app-1.2.tar", "app-1.3.tar"}) {
		t.Errorf("after a failed update, app versions in the folder: %v, want them untouched", got)
	}
	sameFile(t, filepath.Join(dir, "app-1.3.tar"), app[3])

	// A line the index does not list is an error of its own.
	if r := syncRun(1, "--only", "nosuch"); line(r, "nosuch").Status != dirsync.Failed {
		t.Errorf("--only nosuch: %+v", r.Packages)
	}
}
