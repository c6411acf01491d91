package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/originplan"
)

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{[]string{"10.0.0.0/8", "fd00::/8"}, []string{"10.0.0.0/8", "fd00::/8"}, ""},
		{[]string{"127.0.0.2", "::1"}, []string{"127.0.0.2/32", "::1/128"}, ""},
		{[]string{" 192.168.0.0/16"}, []string{"192.168.0.0/16"}, ""},
		{[]string{"::ffff:10.1.0.0/112"}, []string{"10.1.0.0/16"}, ""},
		{[]string{"10.1.5.0/16"}, nil, `--allow "10.1.5.0/16": bits set past /16 (did you mean 10.1.0.0/16?)`},
		{[]string{"10.0.0.0/33"}, nil, `--allow "10.0.0.0/33": want a CIDR`},
		{[]string{"rack3"}, nil, `--allow "rack3": want a CIDR`},
		{[]string{"fe80::1%eth0"}, nil, `--allow "fe80::1%eth0": an address with a zone cannot be matched`},
	}
	for _, tt := range tests {
		got, err := parseAllow(tt.in)
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseAllow(%q) error %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || !slices.Equal(gs, tt.want)):
			t.Errorf("parseAllow(%q) = %v (%v), want %v", tt.in, gs, err, tt.want)
		}
	}
}

// trackerStderr is a stderr that a test reads while the command writes it.
type trackerStderr struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *trackerStderr) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *trackerStderr) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var trackerListeningRE = regexp.MustCompile(`listening on (http://[^/\s]+)/`)

// startCommand runs a serving command line in-process until the test ends and returns the base
// URL it says it listens at.
func startCommand(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr trackerStderr
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, io.Discard, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("pkgsync %q: exit %d: %s", args, code, stderr.String())
		}
	})
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(10 * time.Millisecond) {
		if m := trackerListeningRE.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("pkgsync %q exited with %d before listening: %s", args, code, stderr.String())
		default:
		}
	}
	t.Fatalf("pkgsync %q did not say where it listens within 30 s: %s", args, stderr.String())
	return ""
}

// announceFrom announces over a connection from ip and returns the failure reason ("" when the
// announce succeeded).
func announceFrom(t *testing.T, ip, base, secretQuery string) string {
	t.Helper()
	q := url.Values{
		"info_hash": {"aaaaaaaaaaaaaaaaaaaa"}, "peer_id": {"-PS0001-000000000001"}, "port": {"6881"},
		"left": {"10"}, "compact": {"1"},
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	defer cl.CloseIdleConnections()
	u := base + "/announce?" + q.Encode()
	if secretQuery != "" {
		u += "&" + secretQuery
	}
	resp, err := cl.Get(u)
	if err != nil {
		t.Fatalf("announce from %s: %v", ip, err)
	}
	defer resp.Body.Close()
	var ans struct {
		Failure  string `bencode:"failure reason"`
		Interval int    `bencode:"interval"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := bencode.Unmarshal(body, &ans); err != nil || (ans.Failure == "" && ans.Interval == 0) {
		t.Fatalf("announce from %s: answer %q (%v)", ip, body, err)
	}
	return ans.Failure
}

// TestTrackerWhoMayJoin runs `pkgsync tracker --allow --secret-file` and announces to it from an
// allowed and a refused address, without, with a wrong and with the right secret.
func TestTrackerWhoMayJoin(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secretFile, []byte("  tok3n\n"))
	base := startCommand(t, "tracker", "--listen", "127.0.0.1:0", "--quiet-announces",
		"--allow", "10.0.0.0/8", "--allow", "127.0.0.2,192.168.0.0/16", "--secret-file", secretFile)
	tests := []struct {
		from, secret, want string
	}{
		{"127.0.0.2", "secret=tok3n", ""},
		{"127.0.0.1", "secret=tok3n", "127.0.0.1 is not allowed to use this tracker"},
		{"127.0.0.2", "", "missing secret: this tracker takes only announce URLs that carry secret=TOKEN"},
		{"127.0.0.2", "secret=tok3n%0A", "wrong secret"},
	}
	for _, tt := range tests {
		if got := announceFrom(t, tt.from, base, tt.secret); got != tt.want {
			t.Errorf("from %s with %q: failure reason %q, want %q", tt.from, tt.secret, got, tt.want)
		}
	}
}

// TestTrackerMaxPeers runs `pkgsync tracker --max-peers 2`: of the peers of a swarm, an announce
// is answered with at most 2, and with fewer when its numwant asks for fewer.
func TestTrackerMaxPeers(t *testing.T) {
	base := startCommand(t, "tracker", "--listen", "127.0.0.1:0", "--quiet-announces", "--max-peers", "2")
	tests := []struct {
		from, numwant string
		want          int
	}{
		{"127.0.0.2", "", 0},
		{"127.0.0.3", "", 1},
		{"127.0.0.4", "", 2},
		{"127.0.0.5", "", 2},
		{"127.0.0.6", "50", 2},
		{"127.0.0.7", "1", 1},
	}
	for i, tt := range tests {
		q := url.Values{
			"info_hash": {"bbbbbbbbbbbbbbbbbbbb"}, "peer_id": {fmt.Sprintf("-PS0001-%012d", i)}, "port": {"6881"},
			"left": {"10"}, "compact": {"1"},
		}
		if tt.numwant != "" {
			q.Set("numwant", tt.numwant)
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tt.from)}}
		cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		resp, err := cl.Get(base + "/announce?" + q.Encode())
		if err != nil {
			t.Fatalf("announce from %s: %v", tt.from, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cl.CloseIdleConnections()
		var ans struct {
			Failure string `bencode:"failure reason"`
			Peers   string `bencode:"peers"`
		}
		if err := bencode.Unmarshal(body, &ans); err != nil || ans.Failure != "" {
			t.Fatalf("announce from %s: answer %q (%v)", tt.from, body, err)
		}
		// A compact IPv4 peer is 6 bytes: address and port.
		if got := len(ans.Peers) / 6; got != tt.want {
			t.Errorf("announce %d from %s, numwant %q: %d peers, want %d", i+1, tt.from, tt.numwant, got, tt.want)
		}
	}
}

// TestTrackerOriginFetchers: `pkgsync tracker` and `serve --tracker` name originplan.DefaultFetchers
// origin fetchers per package in a "pkgsync" key (at most --max-peers), N with --origin-fetchers
// N, and answer as a stock tracker, without the key, with --origin-fetchers 0.
func TestTrackerOriginFetchers(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args         []string
		wantFetchers int // slots in the answer's "pkgsync" key; 0: no key
	}{
		{[]string{"tracker"}, originplan.DefaultFetchers},
		{[]string{"tracker", "--max-peers", "16"}, 16},
		{[]string{"tracker", "--origin-fetchers", strconv.Itoa(originplan.DefaultFetchers)}, originplan.DefaultFetchers},
		{[]string{"tracker", "--origin-fetchers", "1"}, 1},
		{[]string{"tracker", "--origin-fetchers", "0"}, 0},
		{[]string{"serve", dir, "--tracker"}, originplan.DefaultFetchers},
		{[]string{"serve", dir, "--tracker", "--origin-fetchers", "7"}, 7},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			base := startCommand(t, append(tt.args, "--listen", "127.0.0.1:0", "--quiet-announces")...)
			q := url.Values{
				"info_hash": {"aaaaaaaaaaaaaaaaaaaa"}, "peer_id": {"-PS0001-000000000001"}, "port": {"6881"},
				"left": {"10"}, "compact": {"1"},
			}
			resp, err := http.Get(base + "/announce?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var ans struct {
				Pkgsync *struct {
					Fetchers string `bencode:"fetchers"`
					Slot     int    `bencode:"slot"`
				} `bencode:"pkgsync"`
			}
			if err := bencode.Unmarshal(body, &ans); err != nil {
				t.Fatalf("answer %q: %v", body, err)
			}
			switch {
			case tt.wantFetchers == 0 && ans.Pkgsync != nil:
				t.Errorf("answer %q has a pkgsync key", body)
			case tt.wantFetchers > 0 && (ans.Pkgsync == nil || len(ans.Pkgsync.Fetchers) != 20*tt.wantFetchers ||
				ans.Pkgsync.Slot != 0 || ans.Pkgsync.Fetchers[:20] != q.Get("peer_id")):
				t.Errorf("answer %q: want the asker in slot 0 of %d", body, tt.wantFetchers)
			}
		})
	}
}

func TestTrackerFlagErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty, []byte(" \n"))
	tests := []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"tracker", "--allow", "10.1.5.0/16"}, 2, "did you mean 10.1.0.0/16?"},
		{[]string{"tracker", "--secret-file", empty}, 1, "the file is empty"},
		{[]string{"tracker", "--max-peers", "0"}, 2, "--max-peers 0: want 1 or more"},
		{[]string{"serve", dir, "--tracker", "--max-peers", "-3"}, 2, "--max-peers -3: want 1 or more"},
		{[]string{"tracker", "--secret-file", filepath.Join(dir, "none")}, 1, "--secret-file: open"},
		{[]string{"serve", dir, "--tracker", "--secret-file", filepath.Join(dir, "none")}, 1, "--secret-file: open"},
		{[]string{"tracker", "--origin-fetchers", "-1"}, 2, "--origin-fetchers -1: want 0 (no roles) or more"},
		{[]string{"serve", dir, "--tracker", "--origin-fetchers", "-2"}, 2, "--origin-fetchers -2"},
	}
	for _, tt := range tests {
		code, _, stderr := pkgsync(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.wantErr) {
			t.Errorf("pkgsync %q: exit %d, %q; want exit %d and %q", tt.args, code, stderr, tt.code, tt.wantErr)
		}
	}
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, []byte("x"))
	code, _, stderr := pkgsync(t, "serve", dir, "--listen", "127.0.0.1:0", "--tracker", "--secret-file", secret)
	if code != 2 || !strings.Contains(stderr, "needs --public-url") {
		t.Errorf("serve --tracker --secret-file without --public-url: exit %d, %q; want exit 2 asking for --public-url", code, stderr)
	}
}

// TestServeMadeTorrentCarriesSecret checks that serve --tracker --secret-file writes the secret
// into the announce URL of the torrents it makes, and serves announces that carry it.
func TestServeMadeTorrentCarriesSecret(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pkg.tar"), randomBytes(1, 100000))
	secret := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secret, []byte("a b&c\n"))
	// The public URL must be known before the server starts: take a free port, then let it go.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := startCommand(t, "serve", dir, "--listen", addr, "--public-url", "http://"+addr+"/",
		"--tracker", "--quiet-announces", "--allow", "127.0.0.0/8", "--secret-file", secret)
	resp, err := http.Get(base + "/pkg.tar.torrent")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mi, err := metainfo.Load(resp.Body)
	if err != nil {
		t.Fatalf("made torrent: %v", err)
	}
	want := "http://" + addr + "/announce?secret=a+b%26c"
	if mi.Announce != want {
		t.Errorf("made torrent announces to %q, want %q", mi.Announce, want)
	}
	u, err := url.Parse(mi.Announce)
	if err != nil {
		t.Fatal(err)
	}
	if got := announceFrom(t, "127.0.0.1", base, u.RawQuery); got != "" {
		t.Errorf("announce with the made torrent's query: failure reason %q", got)
	}
	if got := announceFrom(t, "127.0.0.1", base, ""); !strings.Contains(got, "missing secret") {
		t.Errorf("announce without the secret: failure reason %q, want missing secret", got)
	}
}
