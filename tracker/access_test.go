package tracker

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	anacrolixTracker "github.com/anacrolix/torrent/tracker"

	"github.com/pkgsync/pkgsync/tracker/loadgen"
)

// loopbackServer serves tr on 127.0.0.1, so that clients bound to other 127.0.0.0/8 addresses
// reach it from addresses of their own.
func loopbackServer(t *testing.T, tr *Tracker) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(tr.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		tr.Close()
	})
	return srv
}

// dialFrom returns a dialer whose connections leave from ip. Linux routes all of 127.0.0.0/8 to
// the loopback interface, so binding 127.0.0.2 needs no setup; where it fails, the test fails.
func dialFrom(ip string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return d.DialContext
}

// getFrom requests rawURL over a connection from ip and returns the bencoded answer.
func getFrom(t *testing.T, ip, rawURL string) map[string]any {
	t.Helper()
	cl := &http.Client{Transport: &http.Transport{DialContext: dialFrom(ip)}}
	defer cl.CloseIdleConnections()
	resp, err := cl.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", rawURL, ip, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := bencode.Unmarshal(body, &d); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s from %s: %s %q is not a bencoded dictionary (%v)", rawURL, ip, resp.Status, body, err)
	}
	return d
}

// TestWhoMayJoin checks --allow and --secret-file over real HTTP on loopback: the client binds
// 127.0.0.1 or 127.0.0.2 as its source address, and sends no, a wrong or the right secret.
func TestWhoMayJoin(t *testing.T) {
	const secret = "s3cr3t token/+="
	ih := ihOf("joined")
	tests := []struct {
		name    string
		opts    Options
		from    string
		path    string
		extra   []string // query keys and values added to a good announce
		failure string   // the failure reason wanted; "" for a successful answer
	}{
		{"allowed address", Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "127.0.0.2", "/announce", nil, ""},
		{"refused address", Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "127.0.0.1", "/announce", nil,
			"127.0.0.1 is not allowed to use this tracker"},
		{"ip= does not stand for the connection", Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "127.0.0.1", "/announce",
			[]string{"ip", "127.0.0.2"}, "127.0.0.1 is not allowed to use this tracker"},
		{"allowed by a wider prefix", Options{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/30")}}, "127.0.0.2", "/announce", nil, ""},
		{"refused scrape", Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, "127.0.0.1", "/scrape", nil,
			"127.0.0.1 is not allowed to use this tracker"},
		{"missing secret", Options{Secret: secret}, "127.0.0.1", "/announce", nil,
			"missing secret: this tracker takes only announce URLs that carry secret=TOKEN"},
		{"wrong secret", Options{Secret: secret}, "127.0.0.1", "/announce", []string{"secret", "s3cr3t"}, "wrong secret"},
		{"right secret", Options{Secret: secret}, "127.0.0.1", "/announce", []string{"secret", secret}, ""},
		{"scrape without the secret", Options{Secret: secret}, "127.0.0.1", "/scrape", nil,
			"missing secret: this tracker takes only announce URLs that carry secret=TOKEN"},
		{"scrape with the secret", Options{Secret: secret}, "127.0.0.1", "/scrape", []string{"secret", secret}, ""},
		{"both, right secret from the wrong address", Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Secret: secret}, "127.0.0.1", "/announce",
			[]string{"secret", secret}, "127.0.0.1 is not allowed to use this tracker"},
		{"both, from the right address with the right secret", Options{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, Secret: secret}, "127.0.0.2", "/announce",
			[]string{"secret", secret}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log syncBuffer
			tt.opts.Log = &log
			tr := New(tt.opts)
			srv := loopbackServer(t, tr)
			q := announceQuery(ih, "joiner", 6881, tt.extra...)
			if tt.path == "/scrape" {
				q = url.Values{"info_hash": {string(ih[:])}}
				for i := 0; i+1 < len(tt.extra); i += 2 {
					q.Set(tt.extra[i], tt.extra[i+1])
				}
			}
			d := getFrom(t, tt.from, srv.URL+tt.path+"?"+q.Encode())
			reason, failed := d["failure reason"].(string)
			switch {
			case tt.failure == "" && failed:
				t.Fatalf("refused: %q", reason)
			case tt.failure != "" && reason != tt.failure:
				t.Fatalf("answer %v, want failure reason %q", d, tt.failure)
			}
			listed := len(tr.Peers(ih)) == 1
			if wantListed := tt.failure == "" && tt.path == "/announce"; listed != wantListed {
				t.Errorf("peer listed: %v, want %v", listed, wantListed)
			}
			tr.flushLog()
			// Every announce is logged, and every refusal; a scrape served is not.
			logged := tt.path == "/announce" || tt.failure != ""
			if logged != strings.Contains(log.String(), `"remote":"`+tt.from+`:`) {
				t.Errorf("request logged: %v, want %v:\n%s", !logged, logged, log.String())
			}
			if strings.Contains(log.String(), "s3cr3t") {
				t.Errorf("the log shows the secret:\n%s", log.String())
			}
		})
	}
}

// TestSecretThroughAnacrolix checks that the secret in an announce URL reaches the tracker when
// anacrolix/torrent's tracker client, which bt uses for every announce, appends its own
// parameters to the URL, and that its error names the failure reason otherwise.
func TestSecretThroughAnacrolix(t *testing.T) {
	const secret = "abc&def ghi"
	tr := New(Options{Secret: secret, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	srv := loopbackServer(t, tr)
	ih := ihOf("through anacrolix")
	tests := []struct {
		name, url, wantErr string
	}{
		{"secret in the URL", srv.URL + "/announce?secret=" + url.QueryEscape(secret), ""},
		{"no secret", srv.URL + "/announce", "missing secret"},
		{"wrong secret", srv.URL + "/announce?secret=abc", "wrong secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := anacrolixTracker.Announce{
				TrackerUrl: tt.url,
				Request: anacrolixTracker.AnnounceRequest{
					InfoHash: ih, PeerId: peerIDOf(tt.name), Left: 10, NumWant: -1, Port: 6881,
					Event: anacrolixTracker.Started, Key: 12345,
				},
				Context: context.Background(),
			}.Do()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("announce: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("announce error %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
	if n := len(tr.Peers(ih)); n != 1 {
		t.Errorf("%d peers listed, want the one with the secret", n)
	}
}

// TestLoadgen runs the load generator against a tracker that takes a secret, from 127.0.0.2: a
// small load registers and replays, and the same load without the secret fails with the
// tracker's failure reason.
func TestLoadgen(t *testing.T) {
	tr := New(Options{Secret: "tok", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, MaxPeers: 10})
	srv := loopbackServer(t, tr)
	cfg := loadgen.Config{
		URL: srv.URL + "/announce?secret=tok", Peers: 200, Packages: 4, Conns: 3, Announces: 500,
		Dial: dialFrom("127.0.0.2"),
	}
	load, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg, err := load.Register(ctx)
	if err != nil || reg.Announces != 200 {
		t.Fatalf("register: %v (%v)", reg, err)
	}
	rep, err := load.Replay(ctx)
	if err != nil || rep.Announces != 500 || rep.Peers != 500*10 {
		t.Fatalf("replay: %v (%v), want 500 announces of 10 peers each", rep, err)
	}
	if n := len(tr.Peers(loadgen.InfoHash(3))); n != 50 {
		t.Errorf("package 3 has %d peers, want 50", n)
	}
	cfg.URL = srv.URL + "/announce"
	load, err = loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := load.Register(ctx); err == nil || !strings.Contains(err.Error(), "missing secret") {
		t.Errorf("register without the secret: %v, want the tracker's failure reason", err)
	}
}
