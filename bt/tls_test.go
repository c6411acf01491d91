package bt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/tracker"

	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/internal/testtool"
)

// TestHTTPSAnnounce announces as bt does (withTLS, then httpAnnounce) to an https tracker that
// demands a client certificate from the test's CA: Config.TLS must carry the trust and the
// identity to it, the tracker's name must be verified (no InsecureSkipVerify), and the
// announce URL (its secret, its Host) must arrive unchanged.
func TestHTTPSAnnounce(t *testing.T) {
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
	var mu sync.Mutex
	var seen []*http.Request
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		// One peer, 10.1.2.3:6881, in compact form.
		w.Write([]byte("d8:intervali60e5:peers6:\x0a\x01\x02\x03\x1a\xe1e"))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]

	full, err := httprange.TLSFiles{CAFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	caOnly, err := httprange.TLSFiles{CAFile: certs.CA}.Config()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		conf    *tls.Config
		host    string
		wantErr string
	}{
		{"CA and client certificate", full, "127.0.0.1", ""},
		{"by name", full, "localhost", ""},
		{"no client certificate", caOnly, "127.0.0.1", "certificate"},
		{"system roots only", nil, "127.0.0.1", "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			n := &Node{cfg: Config{TLS: tc.conf}}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			host := tc.host + ":" + port
			a := tracker.Announce{
				TrackerUrl: "https://" + host + "/announce?secret=s%2F1",
				Request:    tracker.AnnounceRequest{InfoHash: [20]byte{1, 2, 3}, Port: 6881, NumWant: 10},
				Context:    ctx,
			}
			n.withTLS(&a)
			res, err := httpAnnounce(a, false)
			mu.Lock()
			got := seen
			mu.Unlock()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one about the %s", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "s%2F1") {
					t.Errorf("the error names the tracker's secret: %v", err)
				}
				if len(got) != 0 {
					t.Fatalf("the tracker served %d announces", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.peers) != 1 || res.peers[0].String() != "10.1.2.3:6881" {
				t.Fatalf("peers %v, want 10.1.2.3:6881", res.peers)
			}

			if len(got) != 1 {
				t.Fatalf("the tracker saw %d announces, want 1", len(got))
			}
			r := got[0]
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				t.Fatal("the announce came without a client certificate")
			}
			if r.Host != host || r.URL.Query().Get("secret") != "s/1" || r.URL.Query().Get("info_hash") == "" {
				t.Fatalf("announce arrived as Host %q, %s", r.Host, r.URL)
			}
		})
	}
}
