package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/internal/testtool"
	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/tracker"
)

var httpsListeningRE = regexp.MustCompile(`listening on (https://[^/\s]+)/`)

// startTLSCommand runs a serving command line in-process until the test ends and returns the
// https base URL it says it listens at.
func startTLSCommand(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, io.Discard, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("pkgsync %q: exit %d: %s", args, code, stderr.String())
		}
	})
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(10 * time.Millisecond) {
		if m := httpsListeningRE.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("pkgsync %q exited with %d before listening: %s", args, code, stderr.String())
		default:
		}
	}
	t.Fatalf("pkgsync %q did not say it listens on https within 30 s: %s", args, stderr.String())
	return ""
}

// TestServeTLS runs `pkgsync serve --tracker --tls-cert --tls-key` with a private CA: the
// torrent it makes names https URLs, update with --ca-file builds the exact file through the
// swarm path (its announce reaches the embedded tracker over https, and the ranges come from
// the origin over https), and update without --ca-file fails naming the URL.
func TestServeTLS(t *testing.T) {
	certs := testtool.MakeCerts(t, t.TempDir())
	v1 := randomBytes(120, 2<<20)
	v2 := edited(v1, 121, 6)
	pub := t.TempDir()
	writeFile(t, filepath.Join(pub, "pkg.tar"), v2)
	announces := filepath.Join(t.TempDir(), "announces.jsonl")
	base := startTLSCommand(t, "serve", pub, "--listen", "127.0.0.1:0", "--tracker", "--announce-log", announces,
		"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey)

	node := t.TempDir()
	old := filepath.Join(node, "v1.tar")
	writeFile(t, old, v1)
	out := filepath.Join(node, "pkg.tar")
	code, _, errs := pkgsync(t, "update", "--old", old, "-o", out, "--seed-time", "0", "--listen", "127.0.0.1:0", base+"/pkg.tar.torrent")
	if code != 1 || !strings.Contains(errs, base+"/pkg.tar.torrent") || !strings.Contains(errs, "certificate") {
		t.Fatalf("update without --ca-file: exit %d, %q; want 1 and a certificate error naming the URL", code, errs)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("update without --ca-file left %s", out)
	}
	t.Logf("without --ca-file: %s", strings.TrimSpace(errs))

	res := parseUpdateJSON(t, mustPkgsync(t, "update", "--json", "--old", old, "-o", out, "--seed-time", "0",
		"--listen", "127.0.0.1:0", "--ca-file", certs.CA, base+"/pkg.tar.torrent"))
	sameFile(t, out, v2)
	if res.BytesFromOrigin == 0 || res.BytesReused == 0 {
		t.Errorf("update: %+v; want bytes reused from v1 and the rest from the https origin", res)
	}
	torrent, err := os.ReadFile(filepath.Join(pub, "pkg.tar.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(torrent, []byte(base+"/announce")) || !bytes.Contains(torrent, []byte(base+"/pkg.tar")) {
		t.Errorf("the made torrent does not name %s/announce and %s/pkg.tar", base, base)
	}
	log, err := os.ReadFile(announces)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte(`"started"`)) {
		t.Errorf("the tracker logged no announce from update over https: %q", log)
	}
}

// TestTrackerTLS runs `pkgsync tracker --tls-cert --tls-key`: it answers announces over https
// to a client that trusts the CA, and not over plain http.
func TestTrackerTLS(t *testing.T) {
	certs := testtool.MakeCerts(t, t.TempDir())
	base := startTLSCommand(t, "tracker", "--listen", "127.0.0.1:0", "--quiet-announces",
		"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey)
	conf, err := httprange.TLSFiles{CAFile: certs.CA}.Config()
	if err != nil {
		t.Fatal(err)
	}
	q := "/announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=-PS0001-000000000001&port=6881&left=10&compact=1"
	body, err := httprange.Get(context.Background(), httprange.NewTLSClient(conf, 5*time.Second), base+q, nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(body, []byte("d")) || bytes.Contains(body, []byte("failure reason")) {
		t.Fatalf("announce over https: %q, want a bencoded peer list", body)
	}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	resp, err := plain.Get(strings.Replace(base, "https://", "http://", 1) + q)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the https tracker answered a plain http announce with 200")
		}
	}
}

// TestTLSFlagErrors: a certificate without its key is a usage error, and files that are missing
// or hold no PEM data are named in the error.
func TestTLSFlagErrors(t *testing.T) {
	certs := testtool.MakeCerts(t, t.TempDir())
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, []byte("not a certificate"))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", dir, "--tls-cert", certs.ServerCert}, 2, "--tls-cert and --tls-key"},
		{[]string{"tracker", "--tls-key", certs.ServerKey}, 2, "--tls-cert and --tls-key"},
		{[]string{"serve", dir, "--tls-cert", "/nonexistent/cert.pem", "--tls-key", certs.ServerKey}, 1, "/nonexistent/cert.pem"},
		{[]string{"tracker", "--tls-cert", notPEM, "--tls-key", certs.ServerKey}, 1, notPEM},
		{[]string{"update", "--client-cert", certs.ClientCert, "http://127.0.0.1:1/pkg.tar.torrent"}, 2, "--client-cert and --client-key"},
		{[]string{"update", "--client-cert", certs.ClientCert, "--client-key", "/nonexistent/client.key", "http://127.0.0.1:1/pkg.tar.torrent"}, 1, "/nonexistent/client.key"},
		{[]string{"update", "--client-cert", certs.ClientCert, "--client-key", certs.ServerKey, "http://127.0.0.1:1/pkg.tar.torrent"}, 1, certs.ClientCert},
		{[]string{"seed", "--ca-file", notPEM, filepath.Join(dir, "pkg.tar.torrent")}, 1, notPEM},
		{[]string{"seed", "--client-key", certs.ClientKey, filepath.Join(dir, "pkg.tar.torrent")}, 2, "--client-cert and --client-key"},
		{[]string{"sync", "--client-cert", certs.ClientCert, "http://127.0.0.1:1/index.json", dir}, 2, "--client-cert and --client-key"},
		{[]string{"sync", "--ca-file", notPEM, "http://127.0.0.1:1/index.json", dir}, 1, notPEM},
	}
	for _, tc := range tests {
		code, _, errs := pkgsync(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("pkgsync %q: exit %d, %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

// TestSeedUpdateMutualTLS puts tracker and origin behind https that demands a client
// certificate of the test's CA: `pkgsync seed` and `pkgsync update`, both given --ca-file,
// --client-cert and --client-key, find each other through the tracker (their announces carry
// the certificate), and update takes the package from the seeder. Seeder and node listen on
// addresses of their own: a seeder on the origin's address counts as the origin's host, whose
// pieces nodes take over the origin path.
func TestSeedUpdateMutualTLS(t *testing.T) {
	certs := testtool.MakeCerts(t, t.TempDir())
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	serverCert, err := httprange.LoadKeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := t.TempDir()
	srv, err := origin.New(pub, origin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var announces lockedBuffer
	tr := tracker.New(tracker.Options{Log: &announces, Interval: time.Second})
	defer tr.Close()
	mux := http.NewServeMux()
	mux.Handle("/announce", tr.Handler())
	mux.Handle("/", srv)
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	ts.StartTLS()
	defer ts.Close()
	base := ts.URL + "/"

	v1 := randomBytes(130, 2<<20)
	v2 := edited(v1, 131, 6)
	writeFile(t, filepath.Join(pub, "pkg.tar"), v2)
	mustPkgsync(t, "make", filepath.Join(pub, "pkg.tar"), "--url", base+"pkg.tar", "--tracker", base+"announce")
	tlsArgs := []string{"--ca-file", certs.CA, "--client-cert", certs.ClientCert, "--client-key", certs.ClientKey}

	ctx, cancel := context.WithCancel(context.Background())
	var seedErr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"seed", filepath.Join(pub, "pkg.tar.torrent"), "--listen", "127.0.0.21:0"}, tlsArgs...), io.Discard, &seedErr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("seed: exit %d: %s", code, seedErr.String())
		}
	}()
	for start := time.Now(); !strings.Contains(announces.String(), `"event":"started"`); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the seeder did not announce over mutual TLS within 20 s: %s", seedErr.String())
		}
	}

	node := t.TempDir()
	old := filepath.Join(node, "v1.tar")
	writeFile(t, old, v1)
	out := filepath.Join(node, "pkg.tar")
	res := parseUpdateJSON(t, mustPkgsync(t, append([]string{"update", "--json", "--old", old, "-o", out,
		"--seed-time", "0", "--listen", "127.0.0.22:0", base + "pkg.tar.torrent"}, tlsArgs...)...))
	sameFile(t, out, v2)
	if res.BytesFromPeers == 0 {
		t.Errorf("update: %+v; want the missing bytes from the seeder found through the tracker\nannounces: %s", res, announces.String())
	}
}
