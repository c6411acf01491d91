package bt

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/tracker"

	pkgtracker "github.com/pkgsync/pkgsync/tracker"

	"github.com/pkgsync/pkgsync/originplan"
)

var (
	selfID  = originplan.PeerID{'s', 'e', 'l', 'f'}
	otherID = originplan.PeerID{'o', 't', 'h', 'e', 'r'}
)

// encodeReply bencodes r as a tracker would answer it: IPv4 peers compact in "peers", IPv6 ones
// in "peers6", the role in "pkgsync", the seeders in "complete".
func encodeReply(t testing.TB, r announceReply) []byte {
	t.Helper()
	d := map[string]any{"interval": r.interval}
	if r.seeders != 0 {
		d["complete"] = r.seeders
	}
	var v4, v6 []byte
	for _, p := range r.peers {
		if p.Addr().Is4() {
			v4 = append(append(v4, p.Addr().AsSlice()...), byte(p.Port()>>8), byte(p.Port()))
		} else {
			v6 = append(append(v6, p.Addr().AsSlice()...), byte(p.Port()>>8), byte(p.Port()))
		}
	}
	d["peers"] = string(v4)
	if v6 != nil {
		d["peers6"] = string(v6)
	}
	if r.role != nil {
		var f []byte
		for _, id := range r.role.Fetchers {
			f = append(f, id[:]...)
		}
		d["pkgsync"] = map[string]any{"fetchers": string(f), "slot": r.role.Slot}
	}
	b, err := bencode.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeAnnounceReply(t *testing.T) {
	fetchers := func(ids ...originplan.PeerID) string {
		var b []byte
		for _, id := range ids {
			b = append(b, id[:]...)
		}
		return strconv.Itoa(len(b)) + ":" + string(b)
	}
	role := func(f string, slot string) string { return "7:pkgsyncd8:fetchers" + f + "4:sloti" + slot + "ee" }
	compact := "5:peers12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe2"
	tests := []struct {
		name      string
		body      string
		want      announceReply
		wantErr   string
		wantRoleE string // in roleErr: the role is dropped, the peers kept
	}{
		{name: "compact, no role (a stock tracker)", body: "d8:intervali30e" + compact + "e",
			want: announceReply{interval: 30, peers: addrs("10.0.0.1:6881", "10.0.0.2:6882")}},
		{name: "seeders (complete)", body: "d8:completei3e10:incompletei7e8:intervali30e" + compact + "e",
			want: announceReply{interval: 30, seeders: 3, peers: addrs("10.0.0.1:6881", "10.0.0.2:6882")}},
		{name: "a negative complete counts as none", body: "d8:completei-1e8:intervali30e5:peers0:e",
			want: announceReply{interval: 30}},
		{name: "dictionaries and peers6", body: "d8:intervali5e5:peersld2:ip8:10.0.0.34:porti7eed2:ip7:fd00::14:porti8eed2:ip4:host4:porti9eee6:peers618:\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x0ae",
			want: announceReply{interval: 5, peers: addrs("10.0.0.3:7", "[fd00::1]:8", "[fd00::2]:10")}},
		{name: "port 0 and the unspecified address are left out", body: "d8:intervali5e5:peers12:\x0a\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01e",
			want: announceReply{interval: 5}},
		{name: "a fetcher", body: "d8:intervali30e" + compact + role(fetchers(otherID, selfID, originplan.PeerID{}), "1") + "e",
			want: announceReply{interval: 30, peers: addrs("10.0.0.1:6881", "10.0.0.2:6882"),
				role: &originplan.Role{Slot: 1, Fetchers: []originplan.PeerID{otherID, selfID, {}}}}},
		{name: "not a fetcher", body: "d8:intervali30e5:peers0:" + role(fetchers(otherID), "-1") + "e",
			want: announceReply{interval: 30, role: &originplan.Role{Slot: -1, Fetchers: []originplan.PeerID{otherID}}}},
		{name: "trailing bytes are ignored", body: "d8:intervali30e5:peers0:e\r\n",
			want: announceReply{interval: 30}},
		{name: "failure reason", body: "d14:failure reason10:not listede", wantErr: `the tracker says: "not listed"`},
		{name: "not bencode", body: "<html>502</html>", wantErr: "decoding"},
		{name: "compact peers cut short", body: "d5:peers5:abcdee", wantErr: "not a multiple of 6"},
		{name: "peers6 cut short", body: "d5:peers0:6:peers63:abce", wantErr: "not a multiple of 18"},
		{name: "peer list of integers", body: "d5:peersli0eee", wantErr: "peer list"},
		{name: "peers an integer", body: "d5:peersi1ee", wantErr: "peers"},
		{name: "string longer than the reply", body: "d5:peers100000007:e", wantErr: "decoding"},
		{name: "slot of another node", body: "d5:peers0:" + role(fetchers(otherID), "0") + "e",
			want: announceReply{}, wantRoleE: "not by this node"},
		{name: "slot out of range", body: "d5:peers0:" + role(fetchers(selfID), "1") + "e",
			want: announceReply{}, wantRoleE: "slot 1 of 1"},
		{name: "slot below -1", body: "d5:peers0:" + role(fetchers(selfID), "-2") + "e",
			want: announceReply{}, wantRoleE: "slot -2"},
		{name: "fetchers cut short", body: "d5:peers0:7:pkgsyncd8:fetchers3:abc4:sloti-1eee",
			want: announceReply{}, wantRoleE: "fetchers of 3 bytes"},
		{name: "no fetchers", body: "d5:peers0:7:pkgsyncd8:fetchers0:4:sloti-1eee",
			want: announceReply{}, wantRoleE: "fetchers of 0 bytes"},
		{name: "no slot", body: "d5:peers0:7:pkgsyncd8:fetchers" + fetchers(selfID) + "ee",
			want: announceReply{}, wantRoleE: "no slot"},
		{name: "pkgsync not a dictionary", body: "d5:peers0:7:pkgsynci1ee",
			want: announceReply{}, wantRoleE: "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAnnounceReply([]byte(tt.body), selfID)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantRoleE != "" {
				if !errors.Is(got.roleErr, errBadRole) || !strings.Contains(got.roleErr.Error(), tt.wantRoleE) {
					t.Errorf("roleErr = %v, want errBadRole containing %q", got.roleErr, tt.wantRoleE)
				}
				got.roleErr = nil
			} else if got.roleErr != nil {
				t.Errorf("roleErr = %v", got.roleErr)
			}
			if !sameReply(got, tt.want) {
				t.Errorf("got %+v (role %+v), want %+v (role %+v)", got, got.role, tt.want, tt.want.role)
			}
		})
	}
}

func addrs(ss ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

func sameReply(a, b announceReply) bool {
	if a.interval != b.interval || a.seeders != b.seeders || !slices.Equal(a.peers, b.peers) || (a.role == nil) != (b.role == nil) {
		return false
	}
	return a.role == nil || (a.role.Slot == b.role.Slot && slices.Equal(a.role.Fetchers, b.role.Fetchers))
}

// FuzzDecodeAnnounceReply feeds arbitrary replies to the decoder of tracker replies: it must not
// panic; what it accepts must be peers a node can dial and a role that names this node where it
// says it does; and what it accepts must come back the same once encoded again.
func FuzzDecodeAnnounceReply(f *testing.F) {
	f.Add(encodeReply(f, announceReply{interval: 30, peers: addrs("10.0.0.1:6881", "[fd00::1]:7")}))
	f.Add(encodeReply(f, announceReply{interval: 30, role: &originplan.Role{Slot: 0, Fetchers: []originplan.PeerID{selfID, otherID}}}))
	f.Add(encodeReply(f, announceReply{role: &originplan.Role{Slot: -1, Fetchers: []originplan.PeerID{{}}}}))
	f.Add([]byte("d8:intervali5e5:peersld2:ip8:10.0.0.34:porti7eeee"))
	f.Add([]byte("d5:peersli0eee"))
	f.Add([]byte("d14:failure reason1:xe"))
	f.Add([]byte("d5:peers0:7:pkgsyncd8:fetchers3:abc4:sloti-1eee"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeAnnounceReply(body, selfID)
		if err != nil {
			return
		}
		for _, p := range r.peers {
			if p.Port() == 0 || !p.Addr().IsValid() || p.Addr().IsUnspecified() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("peer %v accepted", p)
			}
		}
		if r.role != nil {
			if n := len(r.role.Fetchers); n == 0 || n > maxFetchers || r.role.Slot < -1 || r.role.Slot >= n {
				t.Fatalf("role %+v accepted", r.role)
			}
			if r.role.Fetcher() && r.role.Fetchers[r.role.Slot] != selfID {
				t.Fatalf("role %+v makes this node hold another's slot", r.role)
			}
		}
		again, err := decodeAnnounceReply(encodeReply(t, r), selfID)
		if err != nil || !sameReply(r, again) {
			t.Fatalf("re-encoded reply decodes to %+v, %v; want %+v", again, err, r)
		}
	})
}

// TestAnnounceQueryAsLibrary: an announce made by httpAnnounce reaches the tracker with the very
// query anacrolix/torrent's client sends for the same request, after the tracker URL's own
// parameters, so that a stock tracker (opentracker) sees no difference.
func TestAnnounceQueryAsLibrary(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	var agents []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		agents = append(agents, r.UserAgent())
		mu.Unlock()
		w.Write([]byte("d8:intervali30e5:peers0:e"))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		ip   net.IP
		req  tracker.AnnounceRequest
	}{
		{"started, IPv4", net.IPv4(10, 1, 2, 3).To4(), tracker.AnnounceRequest{Event: tracker.Started, Left: 1 << 40, Uploaded: 5, Downloaded: 7, Key: -3, Port: 6881}},
		{"regular, IPv6, left unknown", net.ParseIP("fd00::5"), tracker.AnnounceRequest{Left: -1, Port: 1}},
		{"stopped", nil, tracker.AnnounceRequest{Event: tracker.Stopped, Port: 65535, NumWant: 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			queries, agents = nil, nil
			mu.Unlock()
			tc.req.InfoHash = [20]byte{0, '+', ' ', '&', 0xff}
			tc.req.PeerId = selfID
			a := tracker.Announce{TrackerUrl: srv.URL + "/announce?secret=a+b%2F", Request: tc.req, Context: context.Background(), UserAgent: "pkgsync"}
			if len(tc.ip) == 4 {
				a.ClientIp4 = krpc.NodeAddr{IP: tc.ip}
			} else if tc.ip != nil {
				a.ClientIp6 = krpc.NodeAddr{IP: tc.ip}
			}
			if _, err := a.Do(); err != nil {
				t.Fatalf("the library's announce: %v", err)
			}
			if _, err := httpAnnounce(a, false); err != nil {
				t.Fatalf("httpAnnounce: %v", err)
			}
			// A node that will not fetch from the origin says so after the library's parameters.
			if _, err := httpAnnounce(a, true); err != nil {
				t.Fatalf("httpAnnounce with noFetch: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(queries) != 3 || queries[0] != queries[1] {
				t.Fatalf("queries\n%q (library)\n%q (httpAnnounce, without and with noFetch)", queries[0], queries[1:])
			}
			if !strings.HasPrefix(queries[1], "secret=a+b%2F&") || agents[1] != "pkgsync" {
				t.Errorf("query %q, User-Agent %q: want the tracker URL's query first, and pkgsync", queries[1], agents[1])
			}
			if want := queries[0] + "&" + pkgtracker.NoFetchParam + "=1"; queries[2] != want {
				t.Errorf("query with noFetch %q, want %q", queries[2], want)
			}
		})
	}
}

// TestHTTPAnnounceErrors: a tracker that answers with an HTTP error, or more than
// maxTrackerReply, or not at all, is an error naming the tracker without its secret.
func TestHTTPAnnounceErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/404":
			http.Error(w, "no such tracker", http.StatusNotFound)
		case "/huge":
			w.Write([]byte("d5:peers"))
			w.Write(bytes.Repeat([]byte("9"), maxTrackerReply))
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct{ url, want string }{
		{srv.URL + "/404?secret=hush", "404 Not Found: \"no such tracker\\n\""},
		{srv.URL + "/huge?secret=hush", "reply over"},
		{closed.URL + "/announce?secret=hush", "connect"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := httpAnnounce(tracker.Announce{TrackerUrl: tc.url, Context: ctx}, false)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hush") {
			t.Errorf("%s: err = %v, want one containing %q, without the secret", tc.url, err, tc.want)
		}
	}
}

func TestPickRole(t *testing.T) {
	a := &originplan.Role{Slot: 0, Fetchers: []originplan.PeerID{selfID}}
	b := &originplan.Role{Slot: -1, Fetchers: []originplan.PeerID{otherID}}
	urls := []string{"udp://t1", "http://t2", "http://t3"}
	for _, tc := range []struct {
		roles map[string]*originplan.Role
		want  *originplan.Role
	}{
		{map[string]*originplan.Role{}, nil},
		{map[string]*originplan.Role{"http://t3": b}, b},
		{map[string]*originplan.Role{"http://t3": b, "http://t2": a}, a},
		{map[string]*originplan.Role{"http://elsewhere": a}, nil},
	} {
		if got := pickRole(urls, tc.roles); got != tc.want {
			t.Errorf("pickRole(%v) = %+v, want %+v", tc.roles, got, tc.want)
		}
	}
}

// Logs and errors name a tracker without its secret: not the query (a private tracker's
// passkey), not a password.
func TestTrackerName(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"http://t.example:6969/announce", "http://t.example:6969/announce"},
		{"http://t.example/announce?passkey=hush", "http://t.example/announce"},
		{"https://user:hush@t.example/announce", "https://user:xxxxx@t.example/announce"},
		{"udp://t.example:1337/announce?hush", "udp://t.example:1337/announce"},
		{"http://t.example/%zz?hush", "(a tracker URL that does not parse)"},
	} {
		if got := trackerName(tc.url); got != tc.want || strings.Contains(got, "hush") {
			t.Errorf("trackerName(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}
