package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pkgsync/pkgsync/cmd/swarmbench/internal/netlab"
)

// Where things are in every lab.
const (
	pkgName    = "pkg.tar"
	originPort = 8080
	originName = "o"
)

var originAddr = netip.MustParseAddr("198.18.0.1")

// nodeAddr is node i's address: 198.18.DC.(10+i).
func nodeAddr(dc, i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(dc), byte(10 + i)}) }

// Run is the result of one run, one object of the JSON's "runs".
type Run struct {
	Scenario string `json:"scenario"`
	Client   string `json:"client"`
	Nodes    int    `json:"nodes"`
	// Bytes is F, the size of the package fanned out; ChangedBytes the bytes of v2 that are not
	// in v1 (delta only); PayloadBytes what must reach every node: F, or the changed bytes in delta.
	Bytes        int64  `json:"bytes"`
	ChangedBytes *int64 `json:"changed_bytes"`
	PayloadBytes int64  `json:"payload_bytes"`

	NodeRateMbit    float64  `json:"node_rate_mbit"`
	OriginRateMbit  float64  `json:"origin_rate_mbit"`
	InterDCRateMbit *float64 `json:"interdc_rate_mbit"`

	// A is the time until the last node held the verified package (null if one never did), B
	// the bound for the shaped rates, Efficiency B/A.
	A          *float64 `json:"A_s"`
	B          float64  `json:"B_s"`
	Efficiency *float64 `json:"efficiency"`
	MedianS    *float64 `json:"median_node_s"`

	// OriginBytes is what the origin host sent (veth counter), OriginBytesRatio that over
	// PayloadBytes; OriginHTTPBytes the file bytes its HTTP server reports sending.
	OriginBytes      uint64  `json:"origin_bytes"`
	OriginBytesRatio float64 `json:"origin_bytes_ratio"`
	OriginHTTPBytes  *int64  `json:"origin_http_body_bytes"`
	// OriginHTTPFiles breaks OriginHTTPBytes down by path: the package, its .torrent and
	// .zsync (what the veth counter adds on top is TCP/IP framing, HTTP headers and the
	// tracker's answers).
	OriginHTTPFiles map[string]int64 `json:"origin_http_files,omitempty"`
	// OriginPackageRatio is the package's own HTTP body bytes over PayloadBytes: what the
	// origin sent of the data, without the manifests and the protocol overhead.
	OriginPackageRatio *float64 `json:"origin_package_bytes_ratio"`
	// InterDCBytes are [first DC to second, second to first]; InterDCBytesRatio the larger
	// over F: what the data center that received more took over the link, in packages.
	InterDCBytes      *[2]uint64 `json:"interdc_bytes"`
	InterDCBytesRatio *float64   `json:"interdc_bytes_ratio"`
	// MaxUploadShare is the largest upload of any host, origin included, over PayloadBytes;
	// UploadMaxOverMean that upload over the mean upload of all hosts.
	MaxUploadShare    float64 `json:"max_upload_share"`
	UploadMaxOverMean float64 `json:"upload_max_over_mean"`

	// CPUPercent is the whole machine's busy share over the run (100 = every core busy, other
	// load included); CPUPeakPercent the busiest second; ClientsCPUS the CPU seconds (user +
	// system) the node processes used, from their rusage, until they were stopped.
	CPUPercent     float64 `json:"cpu_percent"`
	CPUPeakPercent float64 `json:"cpu_peak_percent"`
	ClientsCPUS    float64 `json:"clients_cpu_s"`

	Completed int          `json:"completed"`
	Verified  int          `json:"verified"`
	Notes     []string     `json:"notes,omitempty"`
	Error     string       `json:"error,omitempty"`
	Hosts     []HostResult `json:"hosts"`
}

// HostResult is one host of a run: the origin first, then the nodes.
type HostResult struct {
	Name string `json:"name"`
	Role string `json:"role"` // "origin" or "node"
	Addr string `json:"addr"`
	DC   int    `json:"dc"`
	// For nodes: whether and when (seconds after the start) it held the package, and whether
	// the file's SHA-1 matched at the end.
	Completed   *bool    `json:"completed,omitempty"`
	CompletionS *float64 `json:"completion_s,omitempty"`
	Verified    *bool    `json:"verified,omitempty"`
	// UploadBytes and DownloadBytes are the host's veth counters over the run; UploadShare is
	// UploadBytes over the run's PayloadBytes.
	UploadBytes   uint64  `json:"upload_bytes"`
	DownloadBytes uint64  `json:"download_bytes"`
	UploadShare   float64 `json:"upload_share"`
	// CPUS is the node process's CPU seconds (user + system).
	CPUS *float64 `json:"cpu_s,omitempty"`
	// ClientSummary is what pkgsync update printed with --json when stopped.
	ClientSummary json.RawMessage `json:"client_summary,omitempty"`
	Error         string          `json:"error,omitempty"`
}

// bench holds what all runs share.
type bench struct {
	prefix string
	work   string
	tools  *tools
	keep   bool
	log    io.Writer
	// pieceSize is passed to pkgsync make as --piece-size (0: its default).
	pieceSize int64
	// data caches the versions per size: v1 and v2 on disk and the changed bytes.
	data map[int64]*dataset
}

type dataset struct {
	v1, v2  string
	sha1    [20]byte
	size    int64
	changed int64
}

func (b *bench) dataset(size int64) (*dataset, error) {
	if d, ok := b.data[size]; ok {
		return d, nil
	}
	v1, v2, changed := versions(size, 1)
	dir := filepath.Join(b.work, fmt.Sprintf("data-%d", size))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &dataset{v1: filepath.Join(dir, "v1.tar"), v2: filepath.Join(dir, "v2.tar"), sha1: sha1.Sum(v2),
		size: int64(len(v2)), changed: changed}
	for p, data := range map[string][]byte{d.v1: v1, d.v2: v2} {
		if err := os.WriteFile(p, data, 0o444); err != nil {
			return nil, fmt.Errorf("writing %s: %w", p, err)
		}
	}
	b.data[size] = d
	return d, nil
}

// proc is a started process.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait has returned
	err    error         // Wait's result, set before exited closes
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stopAll sends SIGTERM to every process and waits up to grace for all of them to exit; then
// it kills the process groups of those left (each runs in a group of its own).
func stopAll(procs []*proc, grace time.Duration) {
	for _, p := range procs {
		if p != nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(grace)
	for _, p := range procs {
		if p == nil {
			continue
		}
		select {
		case <-p.exited:
		case <-deadline:
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
}

// node is a running node.
type node struct {
	host   *netlab.Host
	nc     nodeCmd
	p      *proc
	stdout bytes.Buffer
	logf   *os.File
	doneAt time.Duration
	done   bool
	// exitedEarly is set when the node's process had exited by the end of the run (watch).
	exitedEarly bool
}

func procs(nodes []*node) []*proc {
	ps := make([]*proc, len(nodes))
	for i, n := range nodes {
		ps[i] = n.p
	}
	return ps
}

// run carries out one run and returns its result. A run whose nodes fail or time out still
// returns a Run, with Error set; the error return is for the lab itself failing or ctx ending.
// Whatever happens, the processes are stopped and the lab removed before it returns.
func (b *bench) run(ctx context.Context, idx int, sp spec) (res *Run, err error) {
	ds, err := b.dataset(sp.Size)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.work, fmt.Sprintf("run%02d-%s-%s-%d", idx, sp.Scenario, sp.Client, sp.Nodes))
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if !b.keep {
		defer os.RemoveAll(dir)
	}
	pkg, err := b.makePackage(ctx, filepath.Join(dir, "origin"), ds)
	if err != nil {
		return nil, err
	}
	lab, origin, hosts, err := buildLab(ctx, b.prefix, sp)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := lab.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up the lab: %w", cerr))
		}
	}()
	// Deferred calls run last first: the nodes stop, then the origin, then the lab goes.
	var background []*proc
	defer func() { stopAll(background, 5*time.Second) }()
	topology, err := b.startOrigin(ctx, lab, origin, dir, pkg, sp, &background)
	if err != nil {
		return nil, err
	}

	res = newRun(sp, ds)
	nodes, err := b.prepareNodes(dir, hosts, sp, ds, topology)
	if err != nil {
		return nil, err
	}
	defer func() {
		stopAll(procs(nodes), 5*time.Second)
		for _, n := range nodes {
			if n.logf != nil {
				n.logf.Close()
			}
		}
	}()

	// Go: counters, CPU and clock start together, then every node at once.
	before, err := lab.Traffic(ctx)
	if err != nil {
		return nil, err
	}
	cpu, err := startCPU(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for _, n := range nodes {
		if err := n.start(lab, dir); err != nil {
			cpu.finish()
			return nil, err
		}
	}
	// Time enough for clients far from the bound: 25 times the bound for the whole package
	// (also in delta, where the stock clients fetch most of it), and at least 2 minutes.
	fullB := bound(ds.size, sp.Nodes, sp.OriginRate, sp.NodeRate, sp.NodeRate, sp.InterDCRate)
	timeout := max(2*time.Minute, time.Duration(25*fullB*float64(time.Second)))
	runErr := b.watch(ctx, sp, timeout, start, nodes)
	after, terr := lab.Traffic(context.Background())
	res.CPUPercent, res.CPUPeakPercent = cpu.finish()
	if terr != nil {
		return nil, terr
	}
	if hb, files, err := originHTTPBytes(ctx, lab, origin); err == nil {
		res.OriginHTTPBytes = &hb
		res.OriginHTTPFiles = files
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// pkgsync prints its summary when stopped.
	stopAll(procs(nodes), 20*time.Second)

	res.collect(nodes, after.Sub(before), ds, dir)
	switch {
	case runErr != nil:
		res.Error = runErr.Error()
	case res.Verified < sp.Nodes:
		res.Error = fmt.Sprintf("%d of %d nodes hold a verified package", res.Verified, sp.Nodes)
	}
	if res.Error != "" && !b.keep {
		res.Error += " (rerun with --keep to keep the logs)"
	} else if res.Error != "" {
		res.Error += " (logs in " + dir + ")"
	}
	return res, nil
}

// makePackage puts v2 into the origin's folder and makes its .torrent and .zsync, pointing at
// the origin's address in the lab.
func (b *bench) makePackage(ctx context.Context, originDir string, ds *dataset) (string, error) {
	if err := os.MkdirAll(originDir, 0o755); err != nil {
		return "", err
	}
	pkg := filepath.Join(originDir, pkgName)
	if err := os.Link(ds.v2, pkg); err != nil {
		return "", fmt.Errorf("linking the package into %s: %w", originDir, err)
	}
	base := originURL()
	args := []string{"make", pkg, "--url", base + pkgName, "--tracker", base + "announce"}
	if b.pieceSize > 0 {
		args = append(args, "--piece-size", strconv.FormatInt(b.pieceSize, 10))
	}
	if out, err := exec.CommandContext(ctx, b.tools.pkgsync, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("pkgsync make %s: %w: %s", pkg, err, out)
	}
	return pkg, nil
}

func originURL() string { return fmt.Sprintf("http://%s/", netip.AddrPortFrom(originAddr, originPort)) }

// buildLab makes the run's hosts: the origin and the nodes, half of them in the second data
// center for twodc. On error the lab is already removed.
func buildLab(ctx context.Context, prefix string, sp spec) (lab *netlab.Lab, origin *netlab.Host, hosts []*netlab.Host, err error) {
	dcs := 1
	if sp.Scenario == scenarioTwoDC {
		dcs = 2
	}
	built, err := netlab.New(ctx, netlab.Options{Prefix: prefix, DataCenters: dcs, InterDCRate: sp.InterDCRate})
	if err != nil {
		return nil, nil, nil, err
	}
	lab = built
	defer func() {
		if err != nil { // the returns below set lab to nil: close the one built
			built.Close()
		}
	}()
	if origin, err = lab.AddHost(ctx, originName, 0, originAddr, sp.OriginRate, sp.OriginRate); err != nil {
		return nil, nil, nil, err
	}
	hosts = make([]*netlab.Host, sp.Nodes)
	for i := range hosts {
		dc := 0
		if dcs == 2 && i >= sp.Nodes/2 {
			dc = 1
		}
		if hosts[i], err = lab.AddHost(ctx, fmt.Sprintf("n%02d", i), dc, nodeAddr(dc, i), sp.NodeRate, sp.NodeRate); err != nil {
			return nil, nil, nil, err
		}
	}
	return lab, origin, hosts, nil
}

// startOrigin starts pkgsync serve with its tracker on the origin host (and pkgsync seed in
// classic), adding the processes to background, and waits until they listen. With two data
// centers it writes the topology file the origin's tracker and pkgsync nodes rank peers by,
// and returns its path.
func (b *bench) startOrigin(ctx context.Context, lab *netlab.Lab, origin *netlab.Host, dir, pkg string, sp spec, background *[]*proc) (string, error) {
	start := func(logName string, args ...string) error {
		f, err := os.Create(filepath.Join(dir, logName))
		if err != nil {
			return err
		}
		defer f.Close()
		c := lab.Command(origin, b.tools.pkgsync, args...)
		c.Stdout, c.Stderr = f, f
		p, err := startProc(c)
		if err != nil {
			return fmt.Errorf("starting pkgsync %s: %w", args[0], err)
		}
		*background = append(*background, p)
		return nil
	}
	var topology string
	httpAddr := netip.AddrPortFrom(originAddr, originPort).String()
	args := []string{"serve", filepath.Dir(pkg), "--listen", httpAddr, "--tracker", "--no-make",
		"--access-log", filepath.Join(dir, "access.log")}
	if sp.Scenario == scenarioTwoDC {
		topology = filepath.Join(dir, "topology.txt")
		if err := os.WriteFile(topology, []byte("198.18.0.0/24 dc1\n198.18.1.0/24 dc2\n"), 0o644); err != nil {
			return "", err
		}
		args = append(args, "--topology", topology)
	}
	if err := start("origin.log", args...); err != nil {
		return "", err
	}
	if err := lab.WaitTCP(ctx, origin, httpAddr, 20*time.Second); err != nil {
		return "", fmt.Errorf("the origin did not start (see %s): %w", filepath.Join(dir, "origin.log"), err)
	}
	if sp.Scenario == scenarioClassic {
		seedAddr := netip.AddrPortFrom(originAddr, btPort).String()
		if err := start("seeder.log", "seed", pkg+".torrent", "--data", pkg, "--listen", seedAddr); err != nil {
			return "", err
		}
		if err := lab.WaitTCP(ctx, origin, seedAddr, 30*time.Second); err != nil {
			return "", fmt.Errorf("the seeder did not start (see %s): %w", filepath.Join(dir, "seeder.log"), err)
		}
	}
	return topology, nil
}

// newRun fills in what a run is before it runs: sizes, rates, the bound.
func newRun(sp spec, ds *dataset) *Run {
	res := &Run{Scenario: sp.Scenario, Client: sp.Client, Nodes: sp.Nodes, Bytes: ds.size, PayloadBytes: ds.size,
		NodeRateMbit: float64(sp.NodeRate) / mbit, OriginRateMbit: float64(sp.OriginRate) / mbit}
	if sp.Scenario == scenarioDelta {
		res.ChangedBytes = &ds.changed
		res.PayloadBytes = ds.changed
		if sp.Client != clientPkgsync {
			res.Notes = append(res.Notes, sp.Client+" nodes start with v1 at the output path and keep the pieces whose hashes match")
		}
	}
	if sp.InterDCRate > 0 {
		r := float64(sp.InterDCRate) / mbit
		res.InterDCRateMbit = &r
	}
	res.B = bound(res.PayloadBytes, sp.Nodes, sp.OriginRate, sp.NodeRate, sp.NodeRate, sp.InterDCRate)
	return res
}

// prepareNodes makes each node's folder (with v1 in delta) and command line.
func (b *bench) prepareNodes(dir string, hosts []*netlab.Host, sp spec, ds *dataset, topology string) ([]*node, error) {
	nodes := make([]*node, len(hosts))
	for i, h := range hosts {
		nd := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(nd, 0o755); err != nil {
			return nil, err
		}
		ns := nodeSpec{dir: nd, addr: h.Addr.String(), pkgName: pkgName, torrentURL: originURL() + pkgName + ".torrent", topology: topology}
		if sp.Scenario == scenarioDelta {
			if sp.Client == clientPkgsync {
				ns.old = filepath.Join(nd, "v1.tar")
				if err := os.Link(ds.v1, ns.old); err != nil {
					return nil, fmt.Errorf("linking v1 into %s: %w", nd, err)
				}
			} else if err := copyFile(ds.v1, filepath.Join(nd, pkgName)); err != nil {
				return nil, err
			}
		}
		nc, err := b.tools.command(sp.Client, ns)
		if err != nil {
			return nil, err
		}
		nodes[i] = &node{host: h, nc: nc}
	}
	return nodes, nil
}

// start starts the node's client in its namespace, its stderr to NAME.log in dir.
func (n *node) start(lab *netlab.Lab, dir string) error {
	f, err := os.Create(filepath.Join(dir, n.host.Name+".log"))
	if err != nil {
		return err
	}
	n.logf = f
	cmd := lab.Command(n.host, n.nc.name, n.nc.args...)
	cmd.Dir = filepath.Dir(n.nc.out)
	cmd.Stdout, cmd.Stderr = &n.stdout, f
	if n.p, err = startProc(cmd); err != nil {
		return fmt.Errorf("starting node %s: %w", n.host.Name, err)
	}
	return nil
}

// collect fills in the per-host results and the run's figures once the nodes have stopped:
// completion, the SHA-1 check of every node's file, bytes from the counters, CPU time.
func (res *Run) collect(nodes []*node, traffic netlab.Traffic, ds *dataset, dir string) {
	res.Hosts = append(res.Hosts, HostResult{Name: originName, Role: "origin", Addr: originAddr.String(),
		UploadBytes: traffic.Up[originName], DownloadBytes: traffic.Down[originName]})
	var times []float64
	for _, n := range nodes {
		hr := HostResult{Name: n.host.Name, Role: "node", Addr: n.host.Addr.String(), DC: n.host.DC,
			UploadBytes: traffic.Up[n.host.Name], DownloadBytes: traffic.Down[n.host.Name]}
		if cs, ok := cpuSeconds(n.p); ok {
			hr.CPUS = &cs
			res.ClientsCPUS += cs
		}
		done, verified := n.done, false
		hr.Completed, hr.Verified = &done, &verified
		if n.done {
			s := n.doneAt.Seconds()
			hr.CompletionS = &s
			times = append(times, s)
			res.Completed++
			if sum, err := sha1File(n.nc.out); err != nil {
				hr.Error = err.Error()
			} else if sum == ds.sha1 {
				verified = true
				res.Verified++
			} else {
				hr.Error = fmt.Sprintf("%s does not match the package's SHA-1", n.nc.out)
			}
		} else {
			hr.Error = nodeFailure(n, dir)
		}
		if res.Client == clientPkgsync {
			if s := bytes.TrimSpace(n.stdout.Bytes()); len(s) > 0 && json.Valid(s) {
				hr.ClientSummary = json.RawMessage(s)
			}
		}
		res.Hosts = append(res.Hosts, hr)
	}

	p := float64(res.PayloadBytes)
	res.OriginBytes = traffic.Up[originName]
	res.OriginBytesRatio = float64(res.OriginBytes) / p
	if n, ok := res.OriginHTTPFiles["/"+pkgName]; ok {
		r := float64(n) / p
		res.OriginPackageRatio = &r
	}
	var sum, most uint64
	for i := range res.Hosts {
		h := &res.Hosts[i]
		h.UploadShare = float64(h.UploadBytes) / p
		sum += h.UploadBytes
		most = max(most, h.UploadBytes)
	}
	res.MaxUploadShare = float64(most) / p
	if sum > 0 {
		res.UploadMaxOverMean = float64(most) / (float64(sum) / float64(len(res.Hosts)))
	}
	if res.InterDCRateMbit != nil {
		ib := traffic.InterDC
		res.InterDCBytes = &ib
		r := float64(max(ib[0], ib[1])) / float64(ds.size)
		res.InterDCBytesRatio = &r
	}
	if len(times) > 0 {
		slices.Sort(times)
		m := times[len(times)/2]
		if len(times)%2 == 0 {
			m = (times[len(times)/2-1] + m) / 2
		}
		res.MedianS = &m
	}
	if res.Completed == res.Nodes {
		a := times[len(times)-1]
		eff := res.B / a
		res.A, res.Efficiency = &a, &eff
	}
}

// watch waits until every node holds the package, one fails, or the run times out. It notes
// each node's completion time.
func (b *bench) watch(ctx context.Context, sp spec, timeout time.Duration, start time.Time, nodes []*node) error {
	defer func() {
		for _, n := range nodes {
			select {
			case <-n.p.exited:
				n.exitedEarly = true
			default:
			}
		}
	}()
	deadline := start.Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastReport := start
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		pending := 0
		for _, n := range nodes {
			if n.done {
				continue
			}
			if _, err := os.Stat(n.nc.done); err == nil {
				n.done, n.doneAt = true, now.Sub(start)
				continue
			}
			select {
			case <-n.p.exited:
				return fmt.Errorf("node %s (%s) exited before it held the package: %v", n.host.Name, sp.Client, n.p.err)
			default:
			}
			pending++
		}
		if pending == 0 {
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("%d of %d nodes did not finish within %v", pending, len(nodes), timeout)
		}
		if now.Sub(lastReport) >= 10*time.Second {
			lastReport = now
			fmt.Fprintf(b.log, "    %d/%d nodes done after %.0fs\n", len(nodes)-pending, len(nodes), now.Sub(start).Seconds())
		}
	}
}

// cpuSeconds is the user and system time of a process that has exited.
func cpuSeconds(p *proc) (float64, bool) {
	if p == nil || p.cmd.ProcessState == nil {
		return 0, false
	}
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), true
}

// originHTTPBytes asks the origin how many file bytes it sent over HTTP, in all and per path.
func originHTTPBytes(ctx context.Context, lab *netlab.Lab, origin *netlab.Host) (int64, map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DialContext: lab.Dialer(origin)}}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("http://%s/.pkgsync/stats", netip.AddrPortFrom(originAddr, originPort))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("origin stats %s: %w", url, err)
	}
	defer resp.Body.Close()
	var st struct {
		BodyBytes int64 `json:"body_bytes"`
		Files     map[string]struct {
			BodyBytes int64 `json:"body_bytes"`
		} `json:"files"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, nil, fmt.Errorf("origin stats %s: %w", url, err)
	}
	files := map[string]int64{}
	for k, v := range st.Files {
		files[k] = v.BodyBytes
	}
	return st.BodyBytes, files, nil
}

// nodeFailure describes why a node did not finish: its exit and the end of its log.
func nodeFailure(n *node, dir string) string {
	why := "did not hold the package when the run ended"
	if n.exitedEarly {
		why = fmt.Sprintf("exited (%v) before holding the package", n.p.err)
	}
	logPath := filepath.Join(dir, n.host.Name+".log")
	if b, err := os.ReadFile(logPath); err == nil {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		why += "; log ends: " + strings.Join(lines[max(0, len(lines)-3):], " | ")
	}
	return why
}

func sha1File(path string) ([20]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [20]byte{}, fmt.Errorf("verifying: %w", err)
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return [20]byte{}, fmt.Errorf("verifying %s: %w", path, err)
	}
	return [20]byte(h.Sum(nil)), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Close()
}
