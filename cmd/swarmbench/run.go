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

	// The swarm's settings: the tracker ("embedded" or "opentracker") and its cap on a peer
	// list (0: its own), the splay over which the nodes start, the share of nodes killed and
	// restarted, the seed of those draws and which repetition of the run this is (from 1).
	Tracker  string `json:"tracker"`
	MaxPeers int    `json:"max_peers"`
	// OriginFetchers is the embedded tracker's --origin-fetchers (0: off, or no embedded tracker).
	OriginFetchers int     `json:"origin_fetchers,omitempty"`
	SplayS         float64 `json:"splay_s"`
	Churn          float64 `json:"churn"`
	Seed           uint64  `json:"seed"`
	Rep            int     `json:"rep"`

	// A is the time until the last node held the verified package (null if one never did), B
	// the bound for the shaped rates, Efficiency B/A.
	A          *float64 `json:"A_s"`
	B          float64  `json:"B_s"`
	Efficiency *float64 `json:"efficiency"`
	MedianS    *float64 `json:"median_node_s"`
	// AMinusSplayOverB is (A - splay)/B: with a splay D, the last node is done within D + x*B.
	AMinusSplayOverB *float64 `json:"A_minus_splay_over_B"`
	// MedianTransferS is the median node's time from its own start until it held the package.
	MedianTransferS *float64 `json:"median_transfer_s"`
	// StartDelayMedianS and StartDelayMaxS are over every start of every node's process: the
	// time until it first wrote to its log (HostResult.StartDelayS).
	StartDelayMedianS *float64 `json:"start_delay_median_s,omitempty"`
	StartDelayMaxS    *float64 `json:"start_delay_max_s,omitempty"`

	// OriginBytes is what the origin host sent (veth counter), OriginBytesRatio that over
	// PayloadBytes; OriginHTTPBytes the file bytes its HTTP server reports sending.
	OriginBytes      uint64  `json:"origin_bytes"`
	OriginBytesRatio float64 `json:"origin_bytes_ratio"`
	// OriginMetaBytes is every HTTP body byte the origin's server sent that is not the
	// package's (the .torrent, the .zsync, an index), and OriginMetaRequests the requests it
	// answered for anything but the package (HEADs and 304s too, whose headers are not counted
	// in the bytes). The tracker's answers are in neither.
	OriginMetaBytes    *int64 `json:"origin_meta_bytes"`
	OriginMetaRequests *int64 `json:"origin_meta_requests"`
	OriginHTTPBytes    *int64 `json:"origin_http_body_bytes"`
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
	CPUPercent         float64 `json:"cpu_percent"`
	CPUPeakPercent     float64 `json:"cpu_peak_percent"`
	ClientsCPUS        float64 `json:"clients_cpu_s"`
	ClientsCPUSPerNode float64 `json:"clients_cpu_s_per_node"`
	// LoadAvgStart and LoadAvgEnd are the machine's load averages (1, 5 and 15 minutes) when
	// the run started and ended: what else the machine was doing.
	LoadAvgStart *[3]float64 `json:"load_avg_start"`
	LoadAvgEnd   *[3]float64 `json:"load_avg_end"`

	Completed int `json:"completed"`
	Verified  int `json:"verified"`
	// Killed is how many nodes were killed (and restarted), RestartedVerified how many of those
	// ended with the verified package.
	Killed            int          `json:"killed"`
	RestartedVerified int          `json:"restarted_verified"`
	Notes             []string     `json:"notes,omitempty"`
	Error             string       `json:"error,omitempty"`
	Hosts             []HostResult `json:"hosts"`
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
	// StartS is when the node started (its splay offset), TransferS the time from then until
	// it held the package; KilledAtS and RestartedAtS when it was killed and started again.
	StartS       *float64 `json:"start_s,omitempty"`
	TransferS    *float64 `json:"transfer_s,omitempty"`
	KilledAtS    *float64 `json:"killed_at_s,omitempty"`
	RestartedAtS *float64 `json:"restarted_at_s,omitempty"`
	// StartDelayS is, per start of the node's process, the seconds until it first wrote to its
	// log (for pkgsync, right after it parsed its flags): the machine's delay in running it.
	StartDelayS []float64 `json:"start_delay_s,omitempty"`
	// UploadBytes and DownloadBytes are the host's veth counters over the run; UploadShare is
	// UploadBytes over the run's PayloadBytes.
	UploadBytes   uint64  `json:"upload_bytes"`
	DownloadBytes uint64  `json:"download_bytes"`
	UploadShare   float64 `json:"upload_share"`
	// CPUS is the node's CPU seconds (user + system), of both processes when it was restarted.
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
	pkg, err := b.makePackage(ctx, filepath.Join(dir, "origin"), ds, sp.Tracker)
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
	if err := b.measure(ctx, res, sp, ds, &fleet{lab: lab, dir: dir, client: sp.Client, nodes: nodes, payload: res.PayloadBytes}, origin); err != nil {
		return nil, err
	}
	switch {
	case res.Error != "":
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

// measure starts the counters, the CPU sampler and the clock together, runs the fleet (which
// starts each node at its offset) to the end, stops the nodes and fills in res. A failure of
// the nodes goes into res.Error; the error return is for the lab failing or ctx ending.
func (b *bench) measure(ctx context.Context, res *Run, sp spec, ds *dataset, f *fleet, origin *netlab.Host) error {
	var err error
	if f.before, err = f.lab.Traffic(ctx); err != nil {
		return err
	}
	res.LoadAvgStart = loadAvg()
	cpu, err := startCPU(ctx)
	if err != nil {
		return err
	}
	f.start = time.Now()
	// Time enough for clients far from the bound: 25 times the bound for the whole package
	// (also in delta, where the stock clients fetch most of it), and at least 2 minutes, after
	// the last start and restart.
	fullB := bound(ds.size, sp.Nodes, sp.OriginRate, sp.NodeRate, sp.NodeRate, sp.InterDCRate)
	timeout := max(2*time.Minute, time.Duration(25*fullB*float64(time.Second))) + sp.Splay
	if sp.Churn > 0 {
		timeout += churnRestart
	}
	runErr := f.watch(ctx, timeout, b.log)
	after, terr := f.lab.Traffic(context.Background())
	res.CPUPercent, res.CPUPeakPercent = cpu.finish()
	res.LoadAvgEnd = loadAvg()
	if terr != nil {
		return terr
	}
	if st, err := originStats(ctx, f.lab, origin); err == nil {
		res.setOriginStats(st)
	} else {
		res.Notes = append(res.Notes, err.Error())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// pkgsync prints its summary when stopped.
	stopAll(procs(f.nodes), 20*time.Second)
	res.collect(f.nodes, after.Sub(f.before), ds, f.dir)
	if runErr != nil {
		res.Error = runErr.Error()
	}
	return nil
}

// made is what pkgsync make wrote: the package in the origin's folder and its info hashes
// (the package's and the .zsync's, which a whitelisting tracker must list).
type made struct {
	pkg        string
	infoHashes []string
}

// makePackage puts v2 into the origin's folder and makes its .torrent and .zsync, pointing at
// the origin's address in the lab and at the run's tracker there.
func (b *bench) makePackage(ctx context.Context, originDir string, ds *dataset, tracker string) (*made, error) {
	if err := os.MkdirAll(originDir, 0o755); err != nil {
		return nil, err
	}
	pkg := filepath.Join(originDir, pkgName)
	if err := os.Link(ds.v2, pkg); err != nil {
		return nil, fmt.Errorf("linking the package into %s: %w", originDir, err)
	}
	base := originURL()
	args := []string{"make", pkg, "--json", "--url", base + pkgName, "--tracker", announceURL(tracker)}
	if b.pieceSize > 0 {
		args = append(args, "--piece-size", strconv.FormatInt(b.pieceSize, 10))
	}
	cmd := exec.CommandContext(ctx, b.tools.pkgsync, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pkgsync make %s: %w: %s", pkg, err, stderr.Bytes())
	}
	var res struct {
		InfoHash      string `json:"info_hash"`
		ZsyncInfoHash string `json:"zsync_info_hash"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.InfoHash == "" {
		return nil, fmt.Errorf("pkgsync make --json %s: no info_hash in %q (%v)", pkg, out, err)
	}
	m := &made{pkg: pkg, infoHashes: []string{res.InfoHash}}
	if res.ZsyncInfoHash != "" {
		m.infoHashes = append(m.infoHashes, res.ZsyncInfoHash)
	}
	return m, nil
}

// opentrackerPort is where opentracker listens on the origin's host, HTTP and UDP.
const opentrackerPort = 6969

// announceURL is the tracker the torrents name: the origin's own, or opentracker beside it.
func announceURL(tracker string) string {
	if tracker == trackerOpentracker {
		return fmt.Sprintf("http://%s/announce", netip.AddrPortFrom(originAddr, opentrackerPort))
	}
	return originURL() + "announce"
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
	if err := lab.PinNeighbors(ctx); err != nil {
		return nil, nil, nil, err
	}
	return lab, origin, hosts, nil
}

// startOrigin starts the origin's processes, adding them to background, and waits until they
// listen: pkgsync serve, with its tracker (capped to sp.MaxPeers) or with opentracker beside it,
// and pkgsync seed in classic. With two data centers it writes the topology file the origin's
// tracker and pkgsync nodes rank peers by, and returns its path.
func (b *bench) startOrigin(ctx context.Context, lab *netlab.Lab, origin *netlab.Host, dir string, m *made, sp spec, background *[]*proc) (string, error) {
	start := func(logName, bin string, args ...string) error {
		f, err := os.Create(filepath.Join(dir, logName))
		if err != nil {
			return err
		}
		defer f.Close()
		c := lab.Command(origin, bin, args...)
		c.Stdout, c.Stderr = f, f
		p, err := startProc(c)
		if err != nil {
			return fmt.Errorf("starting %s %s: %w", filepath.Base(bin), args[0], err)
		}
		*background = append(*background, p)
		return nil
	}
	waitFor := func(what, logName string, port int) error {
		addr := netip.AddrPortFrom(originAddr, uint16(port)).String()
		if err := lab.WaitTCP(ctx, origin, addr, 30*time.Second); err != nil {
			return fmt.Errorf("%s did not start (see %s): %w", what, filepath.Join(dir, logName), err)
		}
		return nil
	}
	var topology string
	args := []string{"serve", filepath.Dir(m.pkg), "--listen", netip.AddrPortFrom(originAddr, originPort).String(), "--no-make",
		"--access-log", filepath.Join(dir, "access.log")}
	if sp.Tracker == trackerEmbedded {
		args = append(args, "--tracker")
		if sp.MaxPeers > 0 {
			args = append(args, "--max-peers", strconv.Itoa(sp.MaxPeers))
		}
		args = append(args, "--origin-fetchers", strconv.Itoa(sp.OriginFetchers))
	}
	if sp.Scenario == scenarioTwoDC {
		topology = filepath.Join(dir, "topology.txt")
		if err := os.WriteFile(topology, []byte("198.18.0.0/24 dc1\n198.18.1.0/24 dc2\n"), 0o644); err != nil {
			return "", err
		}
		args = append(args, "--topology", topology)
	}
	if err := start("origin.log", b.tools.pkgsync, args...); err != nil {
		return "", err
	}
	if err := waitFor("the origin", "origin.log", originPort); err != nil {
		return "", err
	}
	if sp.Tracker == trackerOpentracker {
		otArgs, err := opentrackerArgs(filepath.Join(dir, "opentracker"), m.infoHashes)
		if err != nil {
			return "", err
		}
		if err := start("opentracker.log", b.tools.opentracker, otArgs...); err != nil {
			return "", err
		}
		if err := waitFor("opentracker", "opentracker.log", opentrackerPort); err != nil {
			return "", err
		}
	}
	if sp.Scenario == scenarioClassic {
		seedAddr := netip.AddrPortFrom(originAddr, btPort).String()
		if err := start("seeder.log", b.tools.pkgsync, "seed", m.pkg+".torrent", "--data", m.pkg, "--listen", seedAddr); err != nil {
			return "", err
		}
		if err := waitFor("the seeder", "seeder.log", btPort); err != nil {
			return "", err
		}
	}
	return topology, nil
}

// opentrackerArgs writes opentracker's whitelist (Debian builds it to serve only listed info
// hashes) into dir and returns its command line: HTTP and UDP on the origin's address. Started
// by root, as swarmbench is, it chroots to dir and drops to nobody, so dir must be readable by
// all and the whitelist is named as seen inside the chroot.
func opentrackerArgs(dir string, infoHashes []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	list := strings.Join(infoHashes, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "whitelist"), []byte(list), 0o644); err != nil {
		return nil, fmt.Errorf("writing opentracker's whitelist: %w", err)
	}
	port := strconv.Itoa(opentrackerPort)
	return []string{"-i", originAddr.String(), "-p", port, "-P", port, "-d", dir, "-w", "/whitelist"}, nil
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
	res.MaxPeers, res.SplayS, res.Churn, res.Tracker = sp.MaxPeers, sp.Splay.Seconds(), sp.Churn, sp.Tracker
	res.OriginFetchers = sp.OriginFetchers
	res.Seed, res.Rep = sp.Seed, sp.Rep
	return res
}

// prepareNodes makes each node's folder (with v1 in delta) and command line, and draws when it
// starts and whether it is killed.
func (b *bench) prepareNodes(dir string, hosts []*netlab.Host, sp spec, ds *dataset, topology string) ([]*node, error) {
	nodes := make([]*node, len(hosts))
	startAt, killAt := drawSchedule(sp)
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
		nodes[i] = &node{host: h, nc: nc, startAt: startAt[i], killAt: killAt[i]}
	}
	return nodes, nil
}

// collect fills in the per-host results and the run's figures once the nodes have stopped:
// completion, the SHA-1 check of every node's file (restarted ones' too), bytes from the
// counters, CPU time.
func (res *Run) collect(nodes []*node, traffic netlab.Traffic, ds *dataset, dir string) {
	res.Hosts = append(res.Hosts, HostResult{Name: originName, Role: "origin", Addr: originAddr.String(),
		UploadBytes: traffic.Up[originName], DownloadBytes: traffic.Down[originName]})
	var times, transfers, delays []float64
	for _, n := range nodes {
		hr := res.nodeResult(n, traffic, ds, dir)
		if hr.CompletionS != nil {
			times = append(times, *hr.CompletionS)
			transfers = append(transfers, *hr.TransferS)
		}
		delays = append(delays, hr.StartDelayS...)
		res.Hosts = append(res.Hosts, hr)
	}
	if len(delays) > 0 {
		m, most := median(delays), slices.Max(delays)
		res.StartDelayMedianS, res.StartDelayMaxS = &m, &most
	}
	if len(nodes) > 0 {
		res.ClientsCPUSPerNode = res.ClientsCPUS / float64(len(nodes))
	}

	p := float64(res.PayloadBytes)
	res.OriginBytes = traffic.Up[originName]
	res.OriginBytesRatio = float64(res.OriginBytes) / p
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
		m, mt := median(times), median(transfers)
		res.MedianS, res.MedianTransferS = &m, &mt
	}
	if res.Completed == res.Nodes {
		a := slices.Max(times)
		eff, late := res.B/a, (a-res.SplayS)/res.B
		res.A, res.Efficiency, res.AMinusSplayOverB = &a, &eff, &late
	}
}

// nodeResult is node n's part of the results: times, bytes, CPU, and whether its file is the
// package, which it adds to res's counts.
func (res *Run) nodeResult(n *node, traffic netlab.Traffic, ds *dataset, dir string) HostResult {
	hr := HostResult{Name: n.host.Name, Role: "node", Addr: n.host.Addr.String(), DC: n.host.DC,
		UploadBytes: traffic.Up[n.host.Name], DownloadBytes: traffic.Down[n.host.Name]}
	if n.started {
		s := n.startedAt.Seconds()
		hr.StartS = &s
	}
	for _, d := range n.startDelays {
		hr.StartDelayS = append(hr.StartDelayS, d.Seconds())
	}
	if n.killed {
		k := n.killedAt.Seconds()
		hr.KilledAtS = &k
		res.Killed++
	}
	if n.restarted {
		r := n.restartedAt.Seconds()
		hr.RestartedAtS = &r
	}
	if cs, ok := n.cpu(); ok {
		hr.CPUS = &cs
		res.ClientsCPUS += cs
	}
	done, verified := n.done, false
	hr.Completed, hr.Verified = &done, &verified
	if n.done {
		s, t := n.doneAt.Seconds(), (n.doneAt - n.startedAt).Seconds()
		hr.CompletionS, hr.TransferS = &s, &t
		res.Completed++
		if sum, err := sha1File(n.nc.out); err != nil {
			hr.Error = err.Error()
		} else if sum == ds.sha1 {
			verified = true
			res.Verified++
			res.RestartedVerified += btoi(n.restarted)
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
	return hr
}

// median is the middle of xs (of the two middle ones, their mean); xs is not empty.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + m) / 2
	}
	return m
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

// httpStats is what the origin's /.pkgsync/stats says: body bytes sent in all, and per path
// the requests and body bytes.
type httpStats struct {
	BodyBytes int64 `json:"body_bytes"`
	Files     map[string]struct {
		Requests  int64 `json:"requests"`
		BodyBytes int64 `json:"body_bytes"`
	} `json:"files"`
}

// originStats asks the origin what its HTTP server sent.
func originStats(ctx context.Context, lab *netlab.Lab, origin *netlab.Host) (*httpStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DialContext: lab.Dialer(origin)}}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("http://%s/.pkgsync/stats", netip.AddrPortFrom(originAddr, originPort))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("origin stats %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("origin stats %s: %s", url, resp.Status)
	}
	var st httpStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("origin stats %s: %w", url, err)
	}
	return &st, nil
}

// setOriginStats fills in what the origin's HTTP server sent: the body bytes per path, the
// package's share of the payload, and everything else it sent a body or a header for (the
// .torrent, the .zsync, an index, HEAD and 304 answers) as the metadata.
func (res *Run) setOriginStats(st *httpStats) {
	res.OriginHTTPBytes = &st.BodyBytes
	res.OriginHTTPFiles = map[string]int64{}
	var meta, metaReqs int64
	for path, f := range st.Files {
		res.OriginHTTPFiles[path] = f.BodyBytes
		if path == "/"+pkgName {
			r := float64(f.BodyBytes) / float64(res.PayloadBytes)
			res.OriginPackageRatio = &r
			continue
		}
		meta += f.BodyBytes
		metaReqs += f.Requests
	}
	res.OriginMetaBytes, res.OriginMetaRequests = &meta, &metaReqs
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
