package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/internal/proclab"
	"github.com/pkgsync/pkgsync/internal/testtool"
)

// stockClient is a stock BitTorrent client that the tests drive as a node.
type stockClient struct {
	name string
	// peerName is how the client names itself in its extended handshake, as pkgsync reports it
	// in its per-peer stats (a prefix of ClientName).
	peerName string
	// need skips the test (or fails it under CI) when the client is not installed.
	need func(t *testing.T)
	// start runs the client on ip for torrent, with dir as its download folder. With seed, dir
	// already holds the complete file and the client seeds it until killed; else the client
	// downloads into dir and exits with status 0 once the file is complete and verified.
	start func(l *lab, torrent, dir, ip string, seed bool) *proclab.Proc
}

var stockClients = []stockClient{
	{name: "aria2c", peerName: "aria2/", need: func(t *testing.T) { testtool.Need(t, "aria2c") }, start: startAria2c},
	{name: "libtorrent", peerName: "libtorrent", need: needLibtorrent, start: startLibtorrent},
}

// startAria2c runs aria2c as a LAN node: peers from the tracker only (no DHT, LPD or PEX), no
// encryption required, bound to ip. aria2c cannot report the port it took, so it gets a free one.
func startAria2c(l *lab, torrent, dir, ip string, seed bool) *proclab.Proc {
	l.T.Helper()
	bin := testtool.Need(l.T, "aria2c")[0]
	args := []string{
		bin, "--no-conf", "--dir=" + dir, "--interface=" + ip, fmt.Sprintf("--listen-port=%d", freePort(l.T, ip)),
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--bt-require-crypto=false", "--disable-ipv6=true", "--file-allocation=none",
		"--summary-interval=0", "--console-log-level=notice",
	}
	if seed {
		// Verify what is there, then seed whatever the ratio, until killed.
		args = append(args, "--check-integrity=true", "--seed-ratio=0.0")
	} else {
		args = append(args, "--seed-time=0")
	}
	return l.Start("aria2c", append(args, torrent)...)
}

// debianPython is the one interpreter that can import Debian's python3-libtorrent.
const debianPython = "/usr/bin/python3"

// libtorrentNode is a python3-libtorrent node with the LAN settings of TOOLS.md: no DHT, LSD,
// UPnP or NAT-PMP, no outgoing encryption, no unchoke limit, TCP only, bound to one address. In
// download mode it exits 0 once the torrent is complete and verified; in seed mode it checks the
// file in the save path, prints its address once seeding, and seeds until SIGTERM. The session
// sends goodbye announces on exit, which can keep the process alive after SIGTERM: the handler
// calls os._exit.
const libtorrentNode = `import os, signal, sys, time
import libtorrent as lt

mode, torrent, save_path, ip = sys.argv[1:5]
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
ses = lt.session({
    'listen_interfaces': ip + ':0',
    'outgoing_interfaces': ip,
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'out_enc_policy': int(lt.enc_policy.disabled), 'in_enc_policy': int(lt.enc_policy.enabled),
    'unchoke_slots_limit': -1,
    'alert_mask': int(lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
                      | lt.alert.category_t.tracker_notification),
})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save_path
h = ses.add_torrent(atp)
said = False
while True:
    for a in ses.pop_alerts():
        print('alert:', a.message(), file=sys.stderr, flush=True)
    st = h.status()
    if st.errc.value() != 0:
        print('error:', st.errc.message(), file=sys.stderr, flush=True)
        os._exit(1)
    if st.is_seeding:
        if mode == 'download':
            print('complete', flush=True)
            os._exit(0)
        if not said and ses.listen_port() > 0:
            print('seeding on %s:%d' % (ip, ses.listen_port()), flush=True)
            said = True
    time.sleep(0.05)
`

// startLibtorrent runs the libtorrent node script with Debian's python.
func startLibtorrent(l *lab, torrent, dir, ip string, seed bool) *proclab.Proc {
	l.T.Helper()
	script := filepath.Join(l.Dir, "lt_node.py")
	if _, err := os.Stat(script); err != nil {
		l.Write([]byte(libtorrentNode), "lt_node.py")
	}
	mode := "download"
	if seed {
		mode = "seed"
	}
	return l.Start("libtorrent", debianPython, script, mode, torrent, dir, ip)
}

// needLibtorrent skips the test when Debian's python3-libtorrent is missing, or fails it under
// CI, as testtool.Need does for programs.
func needLibtorrent(t *testing.T) {
	t.Helper()
	testtool.Need(t, debianPython)
	out, err := exec.Command(debianPython, "-c", "import libtorrent").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s cannot import libtorrent (apt-get install -y python3-libtorrent): %v: %s", debianPython, err, out)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestStockClientDownloads has each stock client download a package from pkgsync alone: once
// from a pkgsync seeder found through pkgsync's tracker (the torrent has no url-list, so only
// the seeder can serve it), once from pkgsync's origin as a BEP 19 web seed (the torrent has no
// tracker, so no peer can).
func TestStockClientDownloads(t *testing.T) {
	sources := []struct {
		name string
		// prepare publishes pkg and returns its torrent; check runs after the download.
		prepare func(l *lab, pkg string) (torrent string, check func())
	}{
		{"from a pkgsync seeder", func(l *lab, pkg string) (string, func()) {
			announceURL, tr := l.tracker()
			m := l.makeTorrent(pkg, "--tracker", announceURL)
			l.seed("seeder", nodeIP(9), m.Torrent, pkg)
			l.waitSeeder(tr, m.InfoHash, nodeIP(9))
			return m.Torrent, func() {}
		}},
		{"from the web seed alone", func(l *lab, pkg string) (string, func()) {
			base, _ := l.serve("origin", filepath.Dir(pkg), "--no-make")
			m := l.makeTorrent(pkg, "--url", base+"pkg.bin")
			return m.Torrent, func() {
				st := l.originStats(base)
				l.T.Logf("the web seed served %d requests, %d body bytes (%.3fx the package)",
					st.Requests, st.BodyBytes, float64(st.BodyBytes)/float64(m.Length))
				if st.BodyBytes < m.Length {
					l.T.Errorf("the web seed sent %d bytes, less than the %d-byte package", st.BodyBytes, m.Length)
				}
			}
		}},
	}
	for _, c := range stockClients {
		for _, src := range sources {
			t.Run(c.name+" "+src.name, func(t *testing.T) {
				c.need(t)
				l := newLab(t)
				_, v2 := versions()
				pkg := l.Write(v2, "pub", "pkg.bin")
				torrent, check := src.prepare(l, pkg)
				dl := l.Mkdir("dl")
				p := c.start(l, torrent, dl, nodeIP(0), false)
				if err := p.Wait(l.Ctx); err != nil {
					t.Fatal(err)
				}
				proclab.SameFile(t, filepath.Join(dl, "pkg.bin"), v2)
				check()
			})
		}
	}
}

// TestPkgsyncFromStockSeeder has pkgsync update download a package from a stock client that
// seeds it, found through pkgsync's tracker; the torrent has no url-list, so there is no origin.
// An empty node takes the whole package from the seeder; a node holding v1 takes no more than
// the pieces that hold a missing block.
func TestPkgsyncFromStockSeeder(t *testing.T) {
	for _, c := range stockClients {
		for _, holdsV1 := range []bool{false, true} {
			name := c.name + " seeder to an empty node"
			if holdsV1 {
				name = c.name + " seeder to a node holding v1"
			}
			t.Run(name, func(t *testing.T) {
				c.need(t)
				l := newLab(t)
				v1, v2 := versions()
				announceURL, tr := l.tracker()
				pkg := l.Write(v2, "seeder", "pkg.bin")
				m := l.makeTorrent(pkg, "--tracker", announceURL, "--out-dir", l.Mkdir("manifests"))
				c.start(l, m.Torrent, filepath.Dir(pkg), nodeIP(9), true)
				seeder := l.waitSeeder(tr, m.InfoHash, nodeIP(9))
				old := ""
				if holdsV1 {
					old = l.Write(v1, "v1.bin")
				}
				n := l.update("pkgsync", nodeIP(0), m.Torrent, old)
				s := l.results([]*node{n}, v2)[0]
				if s.BytesFromOrigin != 0 || s.RequestsToOrigin != 0 {
					t.Errorf("%d bytes in %d requests from an origin the torrent does not name", s.BytesFromOrigin, s.RequestsToOrigin)
				}
				// A missing zsync block lies inside one piece (pieces are whole blocks), so at
				// most missing/BlockSize pieces lack anything.
				blocks := (s.missing() + int64(m.BlockSize) - 1) / int64(m.BlockSize)
				wholePieces := min(int64(m.Pieces), blocks) * m.PieceSize
				if s.BytesFromPeers < s.missing() || s.BytesFromPeers > wholePieces {
					t.Errorf("%d bytes from peers, want from the %d missing to the %d of the pieces that lack a block",
						s.BytesFromPeers, s.missing(), wholePieces)
				}
				var from *peerStat
				for i, p := range s.Peers {
					if p.Addr == seeder {
						from = &s.Peers[i]
					}
				}
				switch {
				case from == nil:
					t.Errorf("no stats for the seeder %s among the peers %+v", seeder, s.Peers)
				case from.Downloaded != s.BytesFromPeers:
					t.Errorf("%d bytes from the seeder, %d from peers in all: there was no other peer", from.Downloaded, s.BytesFromPeers)
				case from.ClientName == "":
					// bt records a peer's name when the stats are read or, for a closed
					// connection, in a goroutine that can run after the final read: a seeder
					// that hangs up at once (libtorrent drops seed-to-seed connections) can
					// go unnamed.
					t.Logf("the seeder %s is unnamed in the stats", seeder)
				case !strings.HasPrefix(from.ClientName, c.peerName):
					t.Errorf("the seeder %s is named %q, want %s...", seeder, from.ClientName, c.peerName)
				}
				t.Logf("missed %d bytes, took %d from the %s seeder (%.3fx)", s.missing(), s.BytesFromPeers, c.name,
					float64(s.BytesFromPeers)/float64(max(s.missing(), 1)))
			})
		}
	}
}
