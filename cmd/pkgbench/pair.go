package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/internal/versions"
)

// The pair benchmark: one seeder, one downloader, on loopback, nothing shaped. It shows what one
// node's client costs when the network is not the limit (issue 20): MB/s and CPU seconds per GiB
// for the downloader and the seeder of each BitTorrent client, each seeding to itself (pkgsync
// seed -> pkgsync update, aria2c -> aria2c, python3-libtorrent -> python3-libtorrent), and curl
// from nginx as the HTTP baseline. The package is in the page cache before every run, and the
// downloaded copy is removed after it, so every run writes a new file.

// pairClient is one client of the pair benchmark.
type pairClient struct {
	name  string
	tools []string // what must be installed
	// run starts the seeder (nil for curl) and returns it once the tracker lists it, then the
	// downloader is run to completion.
	seed func(ctx context.Context, p *pairSetup) (*seeder, error)
	get  func(ctx context.Context, p *pairSetup, out string) *exec.Cmd
}

// pairSetup is the work folder of one pair benchmark: the package, its torrent, the tracker and
// nginx serving the folder.
type pairSetup struct {
	dir, bin    string
	pkg         string // the package file
	torrent     string
	size        int64
	trackerAddr string // 127.0.0.1:PORT: a new tracker listens there for each run
	trackerURL  string // http://trackerAddr (its /metrics says when the seeder announced)
	nginxURL    string // http://127.0.0.1:PORT, serving dir
	ltScript    string
}

// pairResult is one run of one client.
type pairResult struct {
	wall              time.Duration
	getCPU, seedCPU   time.Duration
	mbps, getCPUPerGi float64
	seedCPUPerGi      float64
}

func benchPair(ctx context.Context, args []string) error { return runPairBench(ctx, args, os.Stdout) }

// runPairBench is the pair benchmark with its table written to w.
func runPairBench(ctx context.Context, args []string, w io.Writer) error {
	fs := newFlags("pair")
	size := fs.String("size", "1G", "package size (K, M or G suffix)")
	runs := fs.Int("runs", 3, "runs of each client; medians are reported")
	clients := fs.StringSlice("clients", []string{"curl", "pkgsync", "aria2", "libtorrent"}, "clients to run (curl is the reference: keep it first)")
	fs.Parse(args)
	n, err := progress.ParseSize(*size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	all := pairClients()
	var chosen []pairClient
	for _, name := range *clients {
		c, ok := all[name]
		if !ok {
			return fmt.Errorf("--clients: unknown client %q (want curl, pkgsync, pkgsync-bt, aria2, libtorrent)", name)
		}
		if err := need(c.tools...); err != nil {
			return fmt.Errorf("client %s: %w", name, err)
		}
		chosen = append(chosen, c)
	}
	dir, bin, err := workdir(ctx, "pair")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, stop, err := setupPair(ctx, dir, bin, n)
	if err != nil {
		return err
	}
	defer stop()
	results := map[string][]pairResult{}
	loadStart := loadAvg1()
	for r := 0; r < *runs; r++ {
		for _, c := range chosen { // interleaved, so that drift on a shared machine hits all alike
			res, err := runPair(ctx, p, c)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", c.name, r+1, err)
			}
			results[c.name] = append(results[c.name], res)
		}
	}
	var floor []float64
	for range *runs {
		floor = append(floor, sha1CPUPerGiB(p.size))
	}
	loadEnd := loadAvg1()
	printPair(w, p, chosen, results, *runs)
	printFloor(w, results, median(floor))
	// The machine may be shared: its load says how far the figures are from a quiet one's.
	fmt.Fprintf(w, "load average (1 min): %s at the start, %s at the end\n", loadStart, loadEnd)
	return nil
}

// loadAvg1 is the machine's load average over the last minute, from /proc/loadavg, or "n/a".
func loadAvg1() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "n/a"
}

// sha1CPUPerGiB measures the CPU seconds per GiB that crypto/sha1 (what pkgsync verifies pieces
// with) takes here, over size bytes hashed from memory in pieces of 4 MiB: the least a client
// that checks every byte it receives adds to what curl spends receiving and writing them.
// Nothing else of pkgbench runs meanwhile, so the process's CPU time is the hashing's.
func sha1CPUPerGiB(size int64) float64 {
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	before := selfCPU()
	for left := size; left > 0; left -= int64(len(buf)) {
		sha1.Sum(buf[:min(int64(len(buf)), left)])
	}
	return (selfCPU() - before).Seconds() / (float64(size) / (1 << 30))
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// setupPair writes the package, starts the tracker and nginx, and makes the torrent (its web seed
// points at a closed port, so that every byte comes from the seeder).
func setupPair(ctx context.Context, dir, bin string, size int64) (*pairSetup, func(), error) {
	p := &pairSetup{dir: dir, bin: bin, pkg: filepath.Join(dir, "pkg.bin"), size: size}
	if err := writeRandom(p.pkg, size); err != nil {
		return nil, nil, err
	}
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	p.trackerAddr = l.Addr().String()
	p.trackerURL = "http://" + p.trackerAddr
	l.Close()
	stopNginx, nurl, err := startNginx(dir)
	if err != nil {
		stop()
		return nil, nil, err
	}
	stops = append(stops, stopNginx)
	p.nginxURL = nurl
	p.torrent = p.pkg + ".torrent"
	mk := exec.CommandContext(ctx, bin, "make", p.pkg, "--url", "http://127.0.0.1:9/pkg.bin", "--tracker", p.trackerURL+"/announce")
	if out, err := mk.CombinedOutput(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("pkgsync make: %w\n%s", err, out)
	}
	// A download from nothing needs no .zsync; without it the seeder offers the package alone,
	// and the tracker's seeder count is the package's.
	os.Remove(p.pkg + ".zsync")
	p.ltScript = filepath.Join(dir, "lt.py")
	if err := os.WriteFile(p.ltScript, []byte(pairLibtorrentScript), 0o644); err != nil {
		stop()
		return nil, nil, err
	}
	return p, stop, nil
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	for seed, left := uint64(1), size; left > 0; seed++ {
		n := min(left, 64<<20)
		if _, err := w.Write(versions.Random(seed, int(n))); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startListening starts a long-running pkgsync command and waits for the URL it says it listens on.
func startListening(ctx context.Context, bin string, re *regexp.Regexp, args ...string) (*exec.Cmd, string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, stderr)
			return cmd, m[1], nil
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, "", fmt.Errorf("pkgsync %s exited before saying where it listens", args[0])
}

// startNginx serves dir with the stock nginx (sendfile on, as packaged) on a free loopback port.
func startNginx(dir string) (func(), string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	conf := filepath.Join(dir, "nginx.conf")
	text := fmt.Sprintf(`daemon off;
master_process off;
user root root;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	client_body_temp_path %[1]s;
	proxy_temp_path %[1]s;
	fastcgi_temp_path %[1]s;
	uwsgi_temp_path %[1]s;
	scgi_temp_path %[1]s;
	server { listen %[2]s; root %[1]s; }
}
`, dir, addr)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command("nginx", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "nginx-error.log"))
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("nginx: %w", err)
	}
	stop := func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return stop, "http://" + addr, nil
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "nginx-error.log"))
			return nil, "", fmt.Errorf("nginx did not listen on %s within 10 s: %s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runPair runs one client's seeder (if any) and downloader once and measures them. The seeder's
// CPU is read from /proc over the download only, not its start-up (which verifies the package).
func runPair(ctx context.Context, p *pairSetup, c pairClient) (pairResult, error) {
	if err := warm(p.pkg); err != nil {
		return pairResult{}, err
	}
	out := filepath.Join(p.dir, "got-"+c.name)
	os.RemoveAll(out)
	defer os.RemoveAll(out)
	// A tracker of the run's own: no seeder or downloader of an earlier run is listed.
	tr, _, err := startListening(ctx, p.bin, regexp.MustCompile(`listening on (http://[^/\s]+)/`), "tracker", "--listen", p.trackerAddr)
	if err != nil {
		return pairResult{}, err
	}
	defer func() { tr.Process.Kill(); tr.Wait() }()
	var sd *seeder
	if c.seed != nil {
		if sd, err = c.seed(ctx, p); err != nil {
			return pairResult{}, fmt.Errorf("seeder: %w", err)
		}
		defer sd.stop()
	}
	var seed0 time.Duration
	if sd != nil {
		seed0 = procCPU(sd.cmd.Process.Pid)
	}
	get := c.get(ctx, p, out)
	var stderr strings.Builder
	get.Stdout, get.Stderr = io.Discard, &stderr
	start := time.Now()
	if err := get.Run(); err != nil {
		return pairResult{}, fmt.Errorf("%s: %w\n%s", get.Path, err, stderr.String())
	}
	r := pairResult{wall: time.Since(start)}
	if sd != nil {
		r.seedCPU = procCPU(sd.cmd.Process.Pid) - seed0
	}
	if ru, ok := get.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.getCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if err := sameFile(p.pkg, gotFile(out)); err != nil {
		return r, err
	}
	gib := float64(p.size) / (1 << 30)
	r.mbps = float64(p.size) / 1e6 / r.wall.Seconds()
	r.getCPUPerGi = r.getCPU.Seconds() / gib
	r.seedCPUPerGi = r.seedCPU.Seconds() / gib
	return r, nil
}

// gotFile is where a client left the package: out itself, or pkg.bin inside out for the
// clients that download into a folder.
func gotFile(out string) string {
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return filepath.Join(out, "pkg.bin")
	}
	return out
}

// sameFile checks that the download is the package, byte for byte.
func sameFile(want, got string) error {
	a, err := os.Open(want)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := os.Open(got)
	if err != nil {
		return fmt.Errorf("the download: %w", err)
	}
	defer b.Close()
	ba, bb := make([]byte, 4<<20), make([]byte, 4<<20)
	for off := int64(0); ; {
		na, ea := io.ReadFull(a, ba)
		nb, _ := io.ReadFull(b, bb)
		if na != nb || string(ba[:na]) != string(bb[:nb]) {
			return fmt.Errorf("%s differs from the package near offset %d", got, off)
		}
		if ea != nil {
			return nil
		}
		off += int64(na)
	}
}

// procCPU returns the user and system CPU time of a running process, from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// The command name (field 2) may hold spaces; the fields after it start past its ')'.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// waitSeeder waits until the tracker counts a seeder of the package (its /metrics gauge).
func waitSeeder(ctx context.Context, p *pairSetup, sd *seeder) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if n, err := trackerSeeders(ctx, p.trackerURL); err == nil && n >= 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sd.exited:
			return errors.New("the seeder exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("the tracker lists no seeder after 60 s")
}

var seedersRE = regexp.MustCompile(`(?m)^pkgsync_tracker_seeders (\d+)`)

func trackerSeeders(ctx context.Context, base string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := seedersRE.FindSubmatch(b)
	if m == nil {
		return 0, errors.New("no pkgsync_tracker_seeders in the tracker's /metrics")
	}
	return strconv.Atoi(string(m[1]))
}

// seeder is a running seeder process; exited is closed once it has exited.
type seeder struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (s *seeder) stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

// startSeeder starts a seeder command and waits until the tracker (the run's own) lists it.
func startSeeder(ctx context.Context, p *pairSetup, cmd *exec.Cmd) (*seeder, error) {
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sd := &seeder{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(sd.exited) }()
	if err := waitSeeder(ctx, p, sd); err != nil {
		sd.stop()
		return nil, err
	}
	return sd, nil
}

func pairClients() map[string]pairClient {
	return map[string]pairClient{
		"curl": {name: "curl", tools: []string{"curl", "nginx"},
			get: func(ctx context.Context, p *pairSetup, out string) *exec.Cmd {
				return exec.CommandContext(ctx, "curl", "-sS", "--fail", "-o", out, p.nginxURL+"/pkg.bin")
			}},
		"pkgsync": {name: "pkgsync",
			seed: func(ctx context.Context, p *pairSetup) (*seeder, error) {
				return startSeeder(ctx, p, exec.CommandContext(ctx, p.bin, "seed", p.torrent, "--listen", "127.0.0.2:0"))
			},
			get: func(ctx context.Context, p *pairSetup, out string) *exec.Cmd {
				return exec.CommandContext(ctx, p.bin, "update", "-o", out, "--listen", "127.0.0.3:0", "--seed-time", "0", p.torrent)
			}},
		// pkgsync with pieces over BitTorrent, as between pkgsync and stock clients: what the
		// fast path saves (not in the default list).
		"pkgsync-bt": {name: "pkgsync-bt",
			seed: func(ctx context.Context, p *pairSetup) (*seeder, error) {
				return startSeeder(ctx, p, exec.CommandContext(ctx, p.bin, "seed", p.torrent, "--listen", "127.0.0.2:0", "--no-fast-path"))
			},
			get: func(ctx context.Context, p *pairSetup, out string) *exec.Cmd {
				return exec.CommandContext(ctx, p.bin, "update", "-o", out, "--listen", "127.0.0.3:0", "--seed-time", "0", "--no-fast-path", p.torrent)
			}},
		"aria2": {name: "aria2", tools: []string{"aria2c"},
			seed: func(ctx context.Context, p *pairSetup) (*seeder, error) {
				return startSeeder(ctx, p, exec.CommandContext(ctx, "aria2c", pairAria2Args(p.dir, 6991, "--seed-time=600", "--check-integrity=true", p.torrent)...))
			},
			get: func(ctx context.Context, p *pairSetup, out string) *exec.Cmd {
				return exec.CommandContext(ctx, "aria2c", pairAria2Args(out, 6992, "--seed-time=0", p.torrent)...)
			}},
		"libtorrent": {name: "libtorrent", tools: []string{debianPython},
			seed: func(ctx context.Context, p *pairSetup) (*seeder, error) {
				return startSeeder(ctx, p, exec.CommandContext(ctx, debianPython, p.ltScript, p.torrent, p.dir, "127.0.0.2", "6993", "seed"))
			},
			get: func(ctx context.Context, p *pairSetup, out string) *exec.Cmd {
				return exec.CommandContext(ctx, debianPython, p.ltScript, p.torrent, out, "127.0.0.3", "6994", "get")
			}},
	}
}

// pairAria2Args are aria2c's LAN settings (as swarmbench's): the tracker's peers only, no
// encryption, no caps.
func pairAria2Args(dir string, port int, more ...string) []string {
	return append([]string{
		"--no-conf", "--dir=" + dir, "--console-log-level=warn", "--summary-interval=0",
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--bt-require-crypto=false", "--disable-ipv6=true", fmt.Sprintf("--listen-port=%d", port),
		"--bt-request-peer-speed-limit=1000M", "--max-overall-upload-limit=0", "--seed-ratio=0.0",
		"--file-allocation=none", "--allow-overwrite=true",
	}, more...)
}

// debianPython is the interpreter that can import Debian's python3-libtorrent (a python3 earlier
// on PATH, such as pyenv's, cannot).
const debianPython = "/usr/bin/python3"

// pairLibtorrentScript seeds (mode "seed": the package is in SAVE_PATH) or downloads (mode "get",
// exiting once it has the whole package) one torrent with python3-libtorrent's LAN settings.
const pairLibtorrentScript = `import os, signal, sys, time
import libtorrent as lt

torrent, save_path, ip, port, mode = sys.argv[1:6]
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
ses = lt.session({
    'listen_interfaces': '%s:%s' % (ip, port), 'outgoing_interfaces': ip,
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'out_enc_policy': int(lt.enc_policy.disabled), 'in_enc_policy': int(lt.enc_policy.enabled),
    'unchoke_slots_limit': -1, 'alert_mask': int(lt.alert.category_t.error_notification),
})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save_path
h = ses.add_torrent(atp)
while True:
    ses.pop_alerts()
    if mode == 'get' and h.status().is_seeding:
        os._exit(0)
    time.sleep(0.02)
`

func printPair(w io.Writer, p *pairSetup, chosen []pairClient, results map[string][]pairResult, runs int) {
	fmt.Fprintf(w, "\n### pair: one seeder, one downloader, loopback, %s, page cache warm (medians of %d)\n\n", humanSize(p.size), runs)
	fmt.Fprintln(w, "| client | MB/s | x curl | downloader CPU s/GiB | x curl | seeder CPU s/GiB |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	med := func(name string, f func(pairResult) float64) float64 {
		var xs []float64
		for _, r := range results[name] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	refMB := med("curl", func(r pairResult) float64 { return r.mbps })
	refCPU := med("curl", func(r pairResult) float64 { return r.getCPUPerGi })
	for _, c := range chosen {
		mb := med(c.name, func(r pairResult) float64 { return r.mbps })
		cpu := med(c.name, func(r pairResult) float64 { return r.getCPUPerGi })
		seed := "-"
		if c.seed != nil {
			seed = fmt.Sprintf("%.2f", med(c.name, func(r pairResult) float64 { return r.seedCPUPerGi }))
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %.2f | %s | %s |\n", c.name, mb, ratio(mb, refMB), cpu, ratio(cpu, refCPU), seed)
	}
}

// printFloor gives the least downloader CPU a verifying client that writes as curl does can
// reach on this machine: curl's (receiving the bytes and writing them through the page cache)
// plus SHA-1 over them, against curl's. pkgsync writes the pieces with O_DIRECT (bt's
// Package.Direct), which may cost less than curl's writes, so it can go below.
func printFloor(w io.Writer, results map[string][]pairResult, sha1PerGi float64) {
	var xs []float64
	for _, r := range results["curl"] {
		xs = append(xs, r.getCPUPerGi)
	}
	if len(xs) == 0 {
		return
	}
	curl := median(xs)
	fmt.Fprintf(w, "\nfloor of a client that verifies every byte and writes through the page cache as curl does: curl's downloader CPU %.2f + SHA-1 %.2f = %.2f s/GiB (%s x curl)\n",
		curl, sha1PerGi, curl+sha1PerGi, ratio(curl+sha1PerGi, curl))
}

func ratio(x, ref float64) string {
	if ref <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x/ref)
}

func humanSize(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}
