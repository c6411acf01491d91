package netlab

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/testtool"
)

func TestNewPrefix(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		p, err := NewPrefix()
		if err != nil {
			t.Fatal(err)
		}
		if !prefixRE.MatchString(p) || !strings.HasPrefix(p, PrefixBase) || len(p) != len(PrefixBase)+5 {
			t.Errorf("prefix %q: want %s and 5 hex digits", p, PrefixBase)
		}
		seen[p] = true
	}
	if len(seen) < 15 {
		t.Errorf("only %d distinct prefixes in 20", len(seen))
	}
}

// Bad options are refused before anything is created, so these need no root.
func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"empty prefix", Options{DataCenters: 1}, "prefix"},
		{"prefix with a dash", Options{Prefix: "ps-b1", DataCenters: 1}, "prefix"},
		{"prefix too long", Options{Prefix: "psb123456", DataCenters: 1}, "prefix"},
		{"upper case", Options{Prefix: "PSB12", DataCenters: 1}, "prefix"},
		{"no data center", Options{Prefix: "psbt1", DataCenters: 0}, "data centers"},
		{"three data centers", Options{Prefix: "psbt1", DataCenters: 3}, "data centers"},
		{"two without a link rate", Options{Prefix: "psbt1", DataCenters: 2}, "inter-DC rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(context.Background(), tt.opt)
			if err == nil {
				l.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want one about %q", err, tt.want)
			}
		})
	}
}

func TestParseTraffic(t *testing.T) {
	l := &Lab{opt: Options{Prefix: "psbt1", DataCenters: 2}, sw: "psbt1sw", hosts: []*Host{
		{Name: "o", swDev: "psbt1ob"}, {Name: "n00", swDev: "psbt1n00b"},
	}}
	out := `[{"ifname":"lo","stats64":{"rx":{"bytes":1},"tx":{"bytes":1}}},
	{"ifname":"psbt1ob","stats64":{"rx":{"bytes":1000,"packets":3},"tx":{"bytes":20}}},
	{"ifname":"psbt1n00b","stats64":{"rx":{"bytes":30},"tx":{"bytes":900}}},
	{"ifname":"psbt1x0","stats64":{"rx":{"bytes":5},"tx":{"bytes":700}}},
	{"ifname":"psbt1x1","stats64":{"rx":{"bytes":700},"tx":{"bytes":5}}}]`
	tr, err := l.parseTraffic([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Up["o"] != 1000 || tr.Down["o"] != 20 || tr.Up["n00"] != 30 || tr.Down["n00"] != 900 || tr.InterDC != [2]uint64{700, 5} {
		t.Errorf("traffic %+v", tr)
	}
	d := tr.Sub(Traffic{Up: map[string]uint64{"o": 400}, Down: map[string]uint64{"n00": 100}, InterDC: [2]uint64{200, 5}})
	if d.Up["o"] != 600 || d.Down["n00"] != 800 || d.Up["n00"] != 30 || d.InterDC != [2]uint64{500, 0} {
		t.Errorf("difference %+v", d)
	}
	for _, bad := range []string{`not json`, `[{"ifname":"psbt1ob"}]`} {
		if _, err := l.parseTraffic([]byte(bad)); err == nil {
			t.Errorf("parseTraffic(%q) accepted", bad)
		}
	}
}

// TestLab builds two data centers with a host each and one more in the first, sends bytes
// across, and checks the counters and that Close leaves nothing.
// checkPinned checks that each host has a permanent neighbour entry, with the right MAC
// address, for every other host and for nothing else.
func checkPinned(ctx context.Context, t *testing.T, hosts []*Host) {
	t.Helper()
	for _, h := range hosts {
		out, err := output(ctx, "ip", "-n", h.NS, "-j", "neigh", "show", "nud", "permanent")
		if err != nil {
			t.Fatal(err)
		}
		var entries []struct {
			Dst    string `json:"dst"`
			LLAddr string `json:"lladdr"`
		}
		if err := json.Unmarshal(out, &entries); err != nil {
			t.Fatalf("ip neigh of %s: %v: %s", h.Name, err, out)
		}
		got := map[string]string{}
		for _, e := range entries {
			got[e.Dst] = e.LLAddr
		}
		for _, o := range hosts {
			if want := o.MAC.String(); o != h && got[o.Addr.String()] != want {
				t.Errorf("host %s: neighbour %s at %q, want %s (entries %v)", h.Name, o.Addr, got[o.Addr.String()], want, got)
			}
		}
		if len(got) != len(hosts)-1 {
			t.Errorf("host %s has %d permanent neighbours, want %d: %v", h.Name, len(got), len(hosts)-1, got)
		}
	}
}

func TestHostMAC(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"198.18.0.1", "02:00:c6:12:00:01"},
		{"198.18.1.249", "02:00:c6:12:01:f9"},
	}
	for _, tt := range tests {
		if got := hostMAC(netip.MustParseAddr(tt.addr)).String(); got != tt.want {
			t.Errorf("hostMAC(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

func TestLab(t *testing.T) {
	testtool.NeedRoot(t)
	testtool.Need(t, "ip", "tc")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	prefix, err := NewPrefix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Cleanup(context.Background(), prefix) })
	l, err := New(ctx, Options{Prefix: prefix, DataCenters: 2, InterDCRate: 400_000_000})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addrs := []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.1.1")}
	var hosts []*Host
	for i, a := range addrs {
		dc := 0
		if i == 2 {
			dc = 1
		}
		h, err := l.AddHost(ctx, []string{"a", "b", "c"}[i], dc, a, 200_000_000, 200_000_000)
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	if _, err := l.AddHost(ctx, "d", 0, netip.MustParseAddr("10.0.0.1"), 1, 1); err == nil {
		t.Error("an address outside 198.18.0.0/15 was accepted")
	}
	if _, err := l.AddHost(ctx, "toolongname", 0, netip.MustParseAddr("198.18.0.9"), 1, 1); err == nil {
		t.Error("a name too long for an interface was accepted")
	}

	// Every host knows every other's MAC address for good: no ARP on the shaped links.
	if err := l.PinNeighbors(ctx); err != nil {
		t.Fatal(err)
	}
	checkPinned(ctx, t, hosts)

	// c listens; a sends it 2 MB across the inter-DC link, b stays idle.
	var ln net.Listener
	if err := InNS(hosts[2].NS, func() (err error) {
		ln, err = net.Listen("tcp", "198.18.1.1:9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	before, err := l.Traffic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitTCP(ctx, hosts[0], "198.18.1.1:9000", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	<-got // WaitTCP's probe
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	c, err := l.Dialer(hosts[0])(ctx, "tcp", "198.18.1.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	const size = 2 << 20
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := <-got; n != size {
		t.Fatalf("received %d bytes, want %d", n, size)
	}
	after, err := l.Traffic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	if d.Up["a"] < size || d.Down["c"] < size || d.InterDC[0] < size {
		t.Errorf("a sent %d, c received %d, %d crossed to the second DC; want at least %d each", d.Up["a"], d.Down["c"], d.InterDC[0], size)
	}
	if d.Up["b"] > 10_000 || d.Down["b"] > 10_000 || d.InterDC[1] > size/10 {
		t.Errorf("idle host b moved %d/%d bytes, %d went back across; want about nothing", d.Up["b"], d.Down["b"], d.InterDC[1])
	}

	// A process inside a namespace dies with the lab.
	sleeper := l.Command(hosts[1], "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("a process in the lab survived Close")
	}
	if left, err := Namespaces(ctx, prefix); err != nil || len(left) > 0 {
		t.Errorf("left behind: %v (%v)", left, err)
	}
}
