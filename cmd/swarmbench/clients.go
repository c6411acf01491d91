package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The clients a node can run.
const (
	clientPkgsync    = "pkgsync"
	clientAria2      = "aria2"
	clientLibtorrent = "libtorrent"
)

var allClients = []string{clientPkgsync, clientAria2, clientLibtorrent}

// debianPython is the interpreter that can import Debian's python3-libtorrent.
const debianPython = "/usr/bin/python3"

// btPort is where every node's BitTorrent client listens (each node has an address of its own).
const btPort = 6881

// tools are the programs the clients need, found once before the first run.
type tools struct {
	pkgsync  string // the pkgsync binary of this checkout
	aria2c   string
	python   string
	ltScript string // the libtorrent node script, written to the work folder
	ariaHook string // aria2c's on-bt-download-complete hook, written to the work folder
	// opentracker is Debian's opentracker, for runs with --tracker opentracker.
	opentracker string
}

// findTools checks that the requested clients (and opentracker, when a run uses it) can run
// and writes their helper scripts into dir.
func findTools(ctx context.Context, clients []string, opentracker bool, pkgsync, dir string) (*tools, error) {
	t := &tools{pkgsync: pkgsync}
	if opentracker {
		p, err := exec.LookPath("opentracker")
		if err != nil {
			return nil, fmt.Errorf("--tracker opentracker needs opentracker (apt-get install -y opentracker): %w", err)
		}
		t.opentracker = p
	}
	for _, c := range clients {
		switch c {
		case clientPkgsync:
		case clientAria2:
			p, err := exec.LookPath("aria2c")
			if err != nil {
				return nil, fmt.Errorf("client aria2 needs aria2c (apt-get install -y aria2): %w", err)
			}
			t.aria2c = p
			t.ariaHook = filepath.Join(dir, "aria2-done.sh")
			// aria2c runs the hook with GID, number of files and the first file's path once every
			// piece is verified, before it starts seeding.
			if err := os.WriteFile(t.ariaHook, []byte("#!/bin/sh\nexec touch \"$3.swarmbench-done\"\n"), 0o755); err != nil {
				return nil, fmt.Errorf("writing the aria2c hook: %w", err)
			}
		case clientLibtorrent:
			out, err := exec.CommandContext(ctx, debianPython, "-c", "import libtorrent; print(libtorrent.__version__)").CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("client libtorrent needs python3-libtorrent importable from %s (apt-get install -y python3-libtorrent): %w: %s",
					debianPython, err, strings.TrimSpace(string(out)))
			}
			t.python = debianPython
			t.ltScript = filepath.Join(dir, "lt_node.py")
			if err := os.WriteFile(t.ltScript, []byte(libtorrentScript), 0o644); err != nil {
				return nil, fmt.Errorf("writing the libtorrent script: %w", err)
			}
		default:
			return nil, fmt.Errorf("unknown client %q: want %s", c, strings.Join(allClients, ", "))
		}
	}
	return t, nil
}

// nodeSpec is what a node is to do.
type nodeSpec struct {
	dir        string // the node's folder
	addr       string // its address
	pkgName    string // the package's file name
	torrentURL string // the .torrent on the origin: every client starts from it
	old        string // v1, for pkgsync --old (delta only)
	topology   string // topology file for pkgsync (two data centers only)
}

// nodeCmd is a node's command line and the files that tell how it went.
type nodeCmd struct {
	name string
	args []string
	out  string // the package, once complete
	done string // appears when the node holds the verified package
}

// command returns the command line of a node running client c. For the stock clients in a
// delta run the caller has already put v1 at out: they check what is there against the piece
// hashes and keep the pieces that match.
func (t *tools) command(c string, n nodeSpec) (nodeCmd, error) {
	out := filepath.Join(n.dir, n.pkgName)
	listen := fmt.Sprintf("%s:%d", n.addr, btPort)
	switch c {
	case clientPkgsync:
		args := []string{"update", "-v", "-o", out, "--json", "--listen", listen, "--seed-time", "60m"}
		if n.old != "" {
			args = append(args, "--old", n.old)
		}
		if n.topology != "" {
			args = append(args, "--topology", n.topology)
		}
		// update writes out atomically once the whole file is verified.
		return nodeCmd{name: t.pkgsync, args: append(args, n.torrentURL), out: out, done: out}, nil
	case clientAria2:
		args := []string{
			"--no-conf", "--dir=" + n.dir, "--console-log-level=warn", "--summary-interval=0",
			// LAN settings: peers come from the tracker only, no encryption, many peers, no cap
			// on upload, seed until stopped (a zero ratio means any ratio).
			"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
			"--bt-require-crypto=false", "--disable-ipv6=true",
			fmt.Sprintf("--listen-port=%d", btPort), "--bt-max-peers=128", "--bt-request-peer-speed-limit=100M",
			"--max-overall-upload-limit=0", "--seed-time=60", "--seed-ratio=0.0",
			"--file-allocation=none", "--check-integrity=true", "--allow-overwrite=true",
			"--on-bt-download-complete=" + t.ariaHook, "--follow-torrent=mem",
			n.torrentURL,
		}
		return nodeCmd{name: t.aria2c, args: args, out: out, done: out + ".swarmbench-done"}, nil
	case clientLibtorrent:
		done := filepath.Join(n.dir, ".swarmbench-done")
		args := []string{t.ltScript, n.torrentURL, n.dir, n.addr, fmt.Sprint(btPort), done}
		return nodeCmd{name: t.python, args: args, out: out, done: done}, nil
	}
	return nodeCmd{}, errors.New("unknown client " + c)
}

// libtorrentScript is a python3-libtorrent node: it fetches the .torrent from TORRENT_URL and
// downloads the package into SAVE_PATH (hash-checking what is already there), writes DONE once it seeds, and seeds until SIGTERM. The
// settings are the LAN ones: no DHT, LSD, UPnP or NAT-PMP, no encryption, no unchoke limit,
// TCP only (uTP's LEDBAT yields to queueing delay, which a shaped LAN link has plenty of), and
// the torrent's url-list as web seeds (libtorrent's default).
const libtorrentScript = `import os, signal, sys, time, urllib.request
import libtorrent as lt

torrent_url, save_path, ip, port, done = sys.argv[1:6]
# The session sends goodbye announces on exit, which can keep it alive after SIGTERM.
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
signal.signal(signal.SIGINT, lambda *a: os._exit(0))

ses = lt.session({
    'listen_interfaces': '%s:%s' % (ip, port),
    'outgoing_interfaces': ip,
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'out_enc_policy': int(lt.enc_policy.disabled), 'in_enc_policy': int(lt.enc_policy.enabled),
    'unchoke_slots_limit': -1,
    'connections_limit': 500,
    'active_downloads': -1, 'active_seeds': -1, 'active_limit': -1,
    'alert_mask': int(lt.alert.category_t.error_notification),
})
atp = lt.add_torrent_params()
with urllib.request.urlopen(torrent_url, timeout=60) as r:
    atp.ti = lt.torrent_info(lt.bdecode(r.read()))
atp.save_path = save_path
h = ses.add_torrent(atp)
reported = False
while True:
    for a in ses.pop_alerts():
        print('libtorrent:', a.message(), file=sys.stderr, flush=True)
    st = h.status()
    if st.is_seeding and not reported:
        with open(done + '.tmp', 'w') as f:
            f.write('%.3f\n' % time.time())
        os.rename(done + '.tmp', done)
        reported = True
    time.sleep(0.05 if not reported else 1)
`
