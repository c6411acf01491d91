// Package netlab builds a throw-away data center on one Linux machine out of network namespaces,
// for swarmbench: one "switch" namespace holds a bridge per data center (two bridges are joined
// by a shaped veth pair), and every host is a namespace of its own, wired to its data center's
// bridge by a veth pair. Each host's upload is shaped with tc tbf on its own end of the pair and
// its download on the switch's end, so that every host has the link a data-center operator
// would quote (for example 25 Mbit/s each way), and the bridge in between is not a bottleneck.
//
// Traffic is measured where it cannot be hidden: the counters of the switch-side veth ends.
// What a host sent is what its switch port received, whatever program sent it, so the same
// figures hold for every BitTorrent client. The inter-DC veth pair counts each direction.
//
// Every name (namespaces, interfaces, bridges) starts with a prefix unique to the run, so two
// runs never collide, and Close (or Cleanup, for what a killed run left behind) kills the
// processes inside the namespaces before deleting them: a process left in a deleted namespace
// would keep it, and its interfaces, alive.
//
// A shaped link drops what does not fit its queue, ARP too: a host whose upload is full (the
// origin, early in a fan-out) would leave its neighbours' ARP requests unanswered, and their
// connections to it fail with "no route to host", which says nothing about the software under
// test. So every host's address has a MAC address derived from it, and PinNeighbors gives each
// host a permanent neighbour entry for every other: no ARP at all.
//
// It needs root and iproute2 (ip, tc). Addresses come from 198.18.0.0/15, the range RFC 2544
// sets aside for benchmarks, and the namespaces have no route out: nothing leaves the machine.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PrefixBase starts every prefix NewPrefix makes; Cleanup with it removes what any run left.
const PrefixBase = "psb"

// maxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxIfName = 15

// Shaping of every link: a token bucket of 256 KB, and up to 200 ms of queue. netem is not
// available on these machines, so links have no added latency beyond their queues.
const (
	tbfBurst   = "256kb"
	tbfLatency = "200ms"
)

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{2,7}$`)

// NewPrefix returns a prefix unique to this run: "psb" and five random hex digits.
func NewPrefix() (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random prefix: %w", err)
	}
	return PrefixBase + hex.EncodeToString(b[:])[:5], nil
}

// Options describe the lab's fabric.
type Options struct {
	// Prefix starts every name; 3 to 8 lower-case letters and digits (NewPrefix makes one).
	Prefix string
	// DataCenters is 1 or 2. With 2, the bridges are joined by a veth pair shaped to
	// InterDCRate bits per second in each direction.
	DataCenters int
	InterDCRate int64
}

// Host is one emulated machine: a namespace with one interface and one address.
type Host struct {
	// Name is the short name given to AddHost ("o", "n07"); NS is the namespace.
	Name, NS string
	// Addr is the host's address (a /15 in 198.18.0.0/15).
	Addr netip.Addr
	// DC is the data center, 0 or 1.
	DC int
	// Up and Down are the shaped rates in bits per second.
	Up, Down int64
	// MAC is the host's interface address, derived from Addr (hostMAC).
	MAC        net.HardwareAddr
	dev, swDev string
}

// hostMAC is the MAC address of the host with IPv4 address a: locally administered (02), then
// 00 and the four bytes of a, so that no two hosts share one.
func hostMAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x00, b[0], b[1], b[2], b[3]}
}

// Lab is a switch namespace and the hosts wired to it. Its methods are safe for concurrent use
// once the hosts are added.
type Lab struct {
	opt   Options
	sw    string
	mu    sync.Mutex
	nss   []string // every namespace created, in order
	hosts []*Host
}

// New creates the switch namespace with its bridges. On error nothing is left behind.
func New(ctx context.Context, opt Options) (*Lab, error) {
	if !prefixRE.MatchString(opt.Prefix) {
		return nil, fmt.Errorf("netlab: prefix %q: want 3-8 lower-case letters and digits, starting with a letter", opt.Prefix)
	}
	if opt.DataCenters != 1 && opt.DataCenters != 2 {
		return nil, fmt.Errorf("netlab: %d data centers: want 1 or 2", opt.DataCenters)
	}
	if opt.DataCenters == 2 && opt.InterDCRate <= 0 {
		return nil, errors.New("netlab: two data centers need an inter-DC rate")
	}
	l := &Lab{opt: opt, sw: opt.Prefix + "sw"}
	if err := l.addNS(ctx, l.sw); err != nil {
		return nil, err
	}
	err := func() error {
		for dc := 0; dc < opt.DataCenters; dc++ {
			br := l.bridge(dc)
			if err := ipCmd(ctx, "-n", l.sw, "link", "add", br, "type", "bridge"); err != nil {
				return err
			}
			if err := ipCmd(ctx, "-n", l.sw, "link", "set", br, "up"); err != nil {
				return err
			}
		}
		if opt.DataCenters == 2 {
			a, b := l.interDCDevs()
			if err := ipCmd(ctx, "-n", l.sw, "link", "add", a, "type", "veth", "peer", "name", b); err != nil {
				return err
			}
			for dc, dev := range []string{a, b} {
				if err := ipCmd(ctx, "-n", l.sw, "link", "set", dev, "master", l.bridge(dc), "up"); err != nil {
					return err
				}
				if err := shape(ctx, l.sw, dev, opt.InterDCRate); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) bridge(dc int) string { return fmt.Sprintf("%sbr%d", l.opt.Prefix, dc) }

// interDCDevs are the ends of the inter-DC pair: the first on DC 0's bridge, the second on DC 1's.
func (l *Lab) interDCDevs() (string, string) { return l.opt.Prefix + "x0", l.opt.Prefix + "x1" }

// addNS creates a namespace with loopback up and IPv6 off (no router solicitations or
// multicast reports among the measured bytes), and records it for Close.
func (l *Lab) addNS(ctx context.Context, ns string) error {
	if err := ipCmd(ctx, "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	if err := InNS(ns, func() error {
		for _, k := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + k + "/disable_ipv6"
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("netlab: %s in %s: %w", p, ns, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return ipCmd(ctx, "-n", ns, "link", "set", "lo", "up")
}

// AddHost creates host NAME in data center dc with address addr, its upload shaped to up and
// its download to down bits per second.
func (l *Lab) AddHost(ctx context.Context, name string, dc int, addr netip.Addr, up, down int64) (*Host, error) {
	h := &Host{Name: name, NS: l.opt.Prefix + name, Addr: addr, DC: dc, Up: up, Down: down,
		dev: l.opt.Prefix + name + "a", swDev: l.opt.Prefix + name + "b"}
	if addr.Is4() {
		h.MAC = hostMAC(addr)
	}
	if len(h.dev) > maxIfName {
		return nil, fmt.Errorf("netlab: host name %q too long: interface %s exceeds %d characters", name, h.dev, maxIfName)
	}
	if dc < 0 || dc >= l.opt.DataCenters {
		return nil, fmt.Errorf("netlab: host %s: data center %d of %d", name, dc, l.opt.DataCenters)
	}
	if !addr.Is4() || !netip.MustParsePrefix("198.18.0.0/15").Contains(addr) {
		return nil, fmt.Errorf("netlab: host %s: address %s is not in 198.18.0.0/15", name, addr)
	}
	if up <= 0 || down <= 0 {
		return nil, fmt.Errorf("netlab: host %s: rates %d/%d bit/s must be positive", name, up, down)
	}
	if err := l.addNS(ctx, h.NS); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"link", "add", h.dev, "netns", h.NS, "address", h.MAC.String(), "type", "veth", "peer", "name", h.swDev, "netns", l.sw},
		{"-n", l.sw, "link", "set", h.swDev, "master", l.bridge(dc), "up"},
		{"-n", h.NS, "addr", "add", addr.String() + "/15", "dev", h.dev},
		{"-n", h.NS, "link", "set", h.dev, "up"},
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return nil, err
		}
	}
	if err := shape(ctx, h.NS, h.dev, up); err != nil {
		return nil, err
	}
	if err := shape(ctx, l.sw, h.swDev, down); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	return h, nil
}

// PinNeighbors gives every host a permanent neighbour entry (address to MAC) for every other
// host, so that no host needs ARP: call it once all hosts are added.
func (l *Lab) PinNeighbors(ctx context.Context) error {
	l.mu.Lock()
	hosts := append([]*Host(nil), l.hosts...)
	l.mu.Unlock()
	for _, h := range hosts {
		var batch bytes.Buffer
		for _, o := range hosts {
			if o != h {
				fmt.Fprintf(&batch, "neigh replace %s lladdr %s dev %s nud permanent\n", o.Addr, o.MAC, h.dev)
			}
		}
		if batch.Len() == 0 {
			continue
		}
		cmd := exec.CommandContext(ctx, "ip", "-n", h.NS, "-batch", "-")
		cmd.Stdin = &batch
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("netlab: neighbour entries of %s: ip -n %s -batch: %w: %s", h.Name, h.NS, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// shape puts a tbf of rate bits per second on dev's egress in namespace ns.
func shape(ctx context.Context, ns, dev string, rate int64) error {
	return run(ctx, "tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
		"rate", strconv.FormatInt(rate, 10)+"bit", "burst", tbfBurst, "latency", tbfLatency)
}

// Command returns a command that runs name inside h's namespace (ip netns exec execs it, so
// the process is the program itself). It is in a process group of its own, so that a Ctrl-C
// on the terminal reaches the benchmark, which then stops it, and not the program directly.
func (l *Lab) Command(h *Host, name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// Traffic is what crossed the hosts' links, in bytes as the veth counters count them (IP
// packets with their Ethernet header; the veths use segmentation offload, so headers are a
// fraction of a percent of bulk transfers).
type Traffic struct {
	// Up and Down are per host name: what the host sent and received.
	Up, Down map[string]uint64
	// InterDC[0] went from data center 0 to 1, InterDC[1] from 1 to 0.
	InterDC [2]uint64
}

// Sub returns t - prev, counter by counter.
func (t Traffic) Sub(prev Traffic) Traffic {
	d := Traffic{Up: map[string]uint64{}, Down: map[string]uint64{}}
	for k, v := range t.Up {
		d.Up[k] = v - prev.Up[k]
	}
	for k, v := range t.Down {
		d.Down[k] = v - prev.Down[k]
	}
	for i := range d.InterDC {
		d.InterDC[i] = t.InterDC[i] - prev.InterDC[i]
	}
	return d
}

// Traffic reads the counters of every switch port in one call.
func (l *Lab) Traffic(ctx context.Context) (Traffic, error) {
	out, err := output(ctx, "ip", "-n", l.sw, "-s", "-j", "link", "show")
	if err != nil {
		return Traffic{}, err
	}
	return l.parseTraffic(out)
}

func (l *Lab) parseTraffic(out []byte) (Traffic, error) {
	var links []struct {
		Ifname  string `json:"ifname"`
		Stats64 struct {
			RX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
			TX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return Traffic{}, fmt.Errorf("netlab: parsing ip -s -j link show in %s: %w", l.sw, err)
	}
	byDev := map[string][2]uint64{}
	for _, k := range links {
		byDev[k.Ifname] = [2]uint64{k.Stats64.RX.Bytes, k.Stats64.TX.Bytes}
	}
	t := Traffic{Up: map[string]uint64{}, Down: map[string]uint64{}}
	l.mu.Lock()
	hosts := append([]*Host(nil), l.hosts...)
	l.mu.Unlock()
	for _, h := range hosts {
		c, ok := byDev[h.swDev]
		if !ok {
			return Traffic{}, fmt.Errorf("netlab: switch port %s of host %s not found in %s", h.swDev, h.Name, l.sw)
		}
		// The switch port receives what the host sends and sends what it receives.
		t.Up[h.Name], t.Down[h.Name] = c[0], c[1]
	}
	if l.opt.DataCenters == 2 {
		a, b := l.interDCDevs()
		t.InterDC[0], t.InterDC[1] = byDev[a][1], byDev[b][1]
	}
	return t, nil
}

// Dialer returns a dial function, usable as an http.Transport's DialContext, whose connections
// start in h's namespace: the socket is made there, so it reaches the lab's addresses.
func (l *Lab) Dialer(h *Host) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNS(h.NS, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// WaitTCP waits until something in the lab accepts connections on addr, dialing from h.
func (l *Lab) WaitTCP(ctx context.Context, h *Host, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := l.Dialer(h)
	for {
		c, err := dial(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netlab: nothing listens on %s (from %s) after %v: %w", addr, h.Name, timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// InNS runs fn on an OS thread that has joined network namespace ns, and no other goroutine
// runs on that thread meanwhile. Sockets fn makes stay in ns; files under /proc/sys/net it
// opens are ns's. The thread returns to its own namespace afterwards, or is discarded if it
// cannot (the goroutine then exits locked to it).
func InNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: this thread's namespace: %w", err)
			return
		}
		defer self.Close()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: joining namespace %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Close kills every process in the lab's namespaces and deletes them, hosts first; the
// interfaces and bridges go with them. It uses its own deadline, so that it works after the
// run's context was cancelled.
func (l *Lab) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.mu.Lock()
	nss := append([]string(nil), l.nss...)
	l.nss = nil
	l.mu.Unlock()
	var errs []error
	for i := len(nss) - 1; i >= 0; i-- {
		errs = append(errs, removeNS(ctx, nss[i]))
	}
	return errors.Join(errs...)
}

// removeNS kills what runs in ns (repeatedly: a dying process may have started another) and
// deletes it.
func removeNS(ctx context.Context, ns string) error {
	for try := 0; ; try++ {
		pids, err := nsPids(ctx, ns)
		if err != nil {
			return err
		}
		// Never this process: a thread of it may be inside ns for a moment (InNS).
		pids = slices.DeleteFunc(pids, func(p int) bool { return p == os.Getpid() })
		if len(pids) == 0 {
			break
		}
		if try == 50 {
			return fmt.Errorf("netlab: processes %v in namespace %s survive SIGKILL", pids, ns)
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ipCmd(ctx, "netns", "del", ns)
}

func nsPids(ctx context.Context, ns string) ([]int, error) {
	out, err := output(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("netlab: ip netns pids %s: unexpected %q", ns, f)
		}
		pids = append(pids, p)
	}
	return pids, nil
}

// Namespaces lists the namespaces whose names start with prefix.
func Namespaces(ctx context.Context, prefix string) ([]string, error) {
	out, err := output(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// Cleanup removes the namespaces (and what runs in them) whose names start with prefix, as a
// killed run may leave them. With PrefixBase it removes what every run left: do that only
// when no other run is going on.
func Cleanup(ctx context.Context, prefix string) ([]string, error) {
	if len(prefix) < len(PrefixBase) {
		return nil, fmt.Errorf("netlab: cleanup prefix %q is too short", prefix)
	}
	names, err := Namespaces(ctx, prefix)
	if err != nil {
		return nil, err
	}
	// Hosts first, then the switches, as Close does.
	var errs []error
	for _, sw := range []bool{false, true} {
		for _, n := range names {
			if strings.HasSuffix(n, "sw") == sw {
				errs = append(errs, removeNS(ctx, n))
			}
		}
	}
	return names, errors.Join(errs...)
}

func ipCmd(ctx context.Context, args ...string) error { return run(ctx, "ip", args...) }

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("netlab: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
