package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/origin"
)

// TestUpdateHTTPSWithCAAndHeader serves the package over https with a private CA and requires an
// Authorization header: update must succeed with --ca-file and --header, and fail clearly
// without them.
func TestUpdateHTTPSWithCAAndHeader(t *testing.T) {
	v1 := randomBytes(80, 1<<20)
	v2 := edited(v1, 81, 4)
	pub := t.TempDir()
	srv, err := origin.New(pub, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	base := ts.URL + "/"
	publish(t, pub, base, v2)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	node := t.TempDir()
	old := filepath.Join(node, "v1.tar")
	writeFile(t, old, v1)
	out := filepath.Join(node, "pkg.tar")

	code, _, errs := pkgsync(t, "update", "--no-swarm", "--old", old, "-o", out, "-H", "Authorization: Bearer s3cret", base+"pkg.tar.torrent")
	if code == 0 || !strings.Contains(errs, "certificate") {
		t.Fatalf("without --ca-file: exit %d, %q; want a certificate error", code, errs)
	}
	code, _, errs = pkgsync(t, "update", "--no-swarm", "--old", old, "-o", out, "--ca-file", ca, base+"pkg.tar.torrent")
	if code == 0 || !strings.Contains(errs, "401") {
		t.Fatalf("without the header: exit %d, %q; want a 401 error", code, errs)
	}
	mustPkgsync(t, "update", "--no-swarm", "--old", old, "-o", out, "--ca-file", ca, "-H", "Authorization: Bearer s3cret", base+"pkg.tar.torrent")
	sameFile(t, out, v2)
}

// TestUpdateZsyncOfSameLength gives update the .zsync of another package of the very same
// length and name: only the data can tell, and update must refuse to install anything.
func TestUpdateZsyncOfSameLength(t *testing.T) {
	v2 := randomBytes(90, 1<<20)
	other := randomBytes(91, 1<<20)
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publish(t, pub, base, v2)
	otherDir := filepath.Join(pub, "other")
	writeFile(t, filepath.Join(otherDir, "pkg.tar"), other)
	mustPkgsync(t, "make", filepath.Join(otherDir, "pkg.tar"), "--url", base+"pkg.tar")
	node := t.TempDir()
	old := filepath.Join(node, "v1.tar")
	writeFile(t, old, other) // the old version matches the wrong .zsync perfectly
	out := filepath.Join(node, "pkg.tar")
	code, _, errs := pkgsync(t, "update", "--no-swarm", "--old", old, "-o", out, "--zsync", base+"other/pkg.tar.zsync", base+"pkg.tar.torrent")
	if code == 0 || !strings.Contains(errs, "verification failed") {
		t.Fatalf("exit %d, stderr %q: want a verification failure", code, errs)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("output installed although the .zsync does not belong to the torrent")
	}
	sameFile(t, old, other)
}
