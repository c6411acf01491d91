package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUpdateCurrentCostsA304 checks what a cron run on a current package costs: after an update,
// the next run asks for the .torrent with If-None-Match and, on a 304, finds OUT current from the
// record the update left beside it, with no body from the origin and without hashing OUT. A
// write to OUT or a new .torrent makes the run check in full again.
func TestUpdateCurrentCostsA304(t *testing.T) {
	v1 := randomBytes(400, 2<<20)
	v2 := edited(v1, 401, 5)
	pub, dir := t.TempDir(), t.TempDir()
	base, srv := startOrigin(t, pub)
	publish(t, pub, base, v2)
	out := filepath.Join(dir, "pkg.tar")
	writeFile(t, out, v1)
	update := func() updateJSON {
		t.Helper()
		return parseUpdateJSON(t, mustPkgsync(t, "update", "--no-swarm", "--json", "-o", out, base+"pkg.tar.torrent"))
	}
	if u := update(); u.UpToDate {
		t.Fatal("the first run found v1 current")
	}
	sameFile(t, out, v2)
	if _, err := os.Stat(filepath.Join(dir, ".pkg.tar.pkgsync")); err != nil {
		t.Fatalf("no record beside OUT: %v", err)
	}

	before := srv.Stats()
	u := update()
	after := srv.Stats()
	if !u.UpToDate {
		t.Fatal("the second run did not find OUT current")
	}
	if reqs, body := after.Requests-before.Requests, after.BodyBytes-before.BodyBytes; reqs != 1 || body != 0 {
		t.Errorf("a run on a current package: %d requests and %d body bytes to the origin, want one 304 and no body", reqs, body)
	}

	// OUT written to (same size, a later time): the record no longer vouches for it.
	damaged := append([]byte(nil), v2...)
	damaged[12345] ^= 1
	writeFile(t, out, damaged)
	later := time.Now().Add(time.Second)
	os.Chtimes(out, later, later)
	if u := update(); u.UpToDate {
		t.Fatal("a changed OUT was taken for current")
	}
	sameFile(t, out, v2)

	// A new version: the .torrent changed, the ETag with it.
	v3 := edited(v2, 402, 5)
	publish(t, pub, base, v3)
	if u := update(); u.UpToDate {
		t.Fatal("a new version was taken for current")
	}
	sameFile(t, out, v3)
}
