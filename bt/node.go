package bt

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/iplist"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/mse"
	pp "github.com/anacrolix/torrent/peer_protocol"
	utHolepunch "github.com/anacrolix/torrent/peer_protocol/ut-holepunch"
	"golang.org/x/time/rate"

	"github.com/pkgsync/pkgsync/internal/logging"
)

// peerRequestBudget is the read-ahead allowed per connection for peer requests: the
// library queues at most 1024 requests per peer, of 16 KiB each.
const peerRequestBudget = 1024 * 16 << 10

// writerWakeInterval is the keep-alive period of connections, see NewNode.
const writerWakeInterval = 500 * time.Millisecond

// Node is one BitTorrent client (an anacrolix/torrent Client) with one TCP listener. It
// can hold several torrents at once; they share its connections limits and rate limiters.
type Node struct {
	cfg  Config
	cl   *torrent.Client
	addr netip.AddrPort
	log  *slog.Logger
	// dialer dials peers and trackers from the listen address when it is specific.
	dialer *net.Dialer
	// local holds the machine's addresses when listening on all of them, to recognise
	// ourselves in trackers' answers.
	local map[netip.Addr]bool

	ltepOnce sync.Once
	ltep     torrent.LocalLtepProtocolMap
	// metaLtep is the extension map of info-only torrents' connections.
	metaLtepOnce sync.Once
	metaLtep     torrent.LocalLtepProtocolMap
	// upLimit is the client's upload limiter; range replies and the fast path pass it too.
	upLimit *rate.Limiter
	// downLimit is the client's download limiter (nil: none); the fast path passes it too.
	downLimit *rate.Limiter
	// fast serves the fast path (fast.go); nil when it is off.
	fast *fastServer
	// upCaps are the upload caps that torrents falling behind set (upThrottle); upLimit
	// follows the lowest of them and Config.MaxUploadRate.
	upMu    sync.Mutex
	upCaps  map[*Torrent]float64
	upBurst int // upLimit's burst without a cap
	// bans are the addresses this package banned (range liars, ranges.go); the library
	// refuses connections from them as from its own bans.
	bans banList

	mu       sync.Mutex
	torrents map[metainfo.Hash]*Torrent
	// metas are the torrents known by info hash alone, fetching or serving their info
	// dictionary until Add takes their place (metadata.go).
	metas  map[metainfo.Hash]*metaTorrent
	closed bool
}

// NewNode starts a Node listening on cfg.ListenAddr.
func NewNode(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if cfg.LPD {
		return nil, errors.New("bt: local peer discovery is not supported by anacrolix/torrent")
	}
	if cfg.MaxUploadRate < 0 || cfg.MaxDownloadRate < 0 {
		return nil, fmt.Errorf("bt: negative rate limit (upload %d, download %d)", cfg.MaxUploadRate, cfg.MaxDownloadRate)
	}
	host, port, ip, err := parseListenAddr(cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, torrents: make(map[metainfo.Hash]*Torrent), log: logging.OrDiscard(cfg.Logger)}
	n.dialer = &net.Dialer{KeepAlive: -1, Timeout: 10 * time.Second}
	if ip.IsValid() && !ip.IsUnspecified() {
		n.dialer.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
	}
	cc := n.clientConfig(host, port, ip)
	cl, err := torrent.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("bt: starting client on %s: %w", cfg.ListenAddr, err)
	}
	n.cl = cl
	network := "tcp"
	switch {
	case cc.DisableIPv6:
		network = "tcp4"
	case cc.DisableIPv4:
		network = "tcp6"
	}
	cl.AddDialer(torrent.NetworkDialer{Network: network, Dialer: n.dialer})
	if err := n.findListenAddr(); err != nil {
		cl.Close()
		return nil, err
	}
	if cfg.fastEnabled() {
		if err := n.startFastServer(); err != nil {
			n.log.Info("bt: running without the fast path", "err", err)
		}
	}
	return n, nil
}

// parseListenAddr splits a "host:port" listen address; host is "" or an IP address (ip, unmapped).
func parseListenAddr(addr string) (host string, port uint16, ip netip.Addr, err error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, ip, fmt.Errorf("bt: listen address %q: %w", addr, err)
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, ip, fmt.Errorf("bt: listen address %q: bad port: %w", addr, err)
	}
	if host != "" {
		if ip, err = netip.ParseAddr(host); err != nil {
			return "", 0, ip, fmt.Errorf("bt: listen address %q: host must be an IP address: %w", addr, err)
		}
		ip = ip.Unmap()
	}
	return host, uint16(p), ip, nil
}

// clientConfig is the library's configuration for n: listening on host:port (ip parsed from
// host), with the data-center defaults of n.cfg, its limits, its bans and its logger.
func (n *Node) clientConfig(host string, port uint16, ip netip.Addr) *torrent.ClientConfig {
	cfg := n.cfg
	cc := torrent.NewDefaultClientConfig()
	cc.ListenHost = func(string) string { return host }
	cc.ListenPort = int(port)
	if ip.IsValid() && !ip.IsUnspecified() {
		cc.DisableIPv6 = ip.Is4()
		cc.DisableIPv4 = ip.Is6()
	}
	cc.DisableUTP = true
	cc.NoDHT = !cfg.DHT
	cc.DisablePEX = !cfg.PEX
	// Trackers are announced to by this package (see announce.go) so that it learns the
	// swarm and dials peers in the order it chooses; web seeds and WebTorrent never run.
	cc.DisableTrackers = true
	cc.DisableWebseeds = true
	cc.DisableWebtorrent = true
	cc.NoDefaultPortForwarding = true
	cc.DefaultStorage = noStorage{}
	// Seed with DisableAggressiveUpload off makes every connection unchoked as soon as we
	// have something; TitForTat brings back the library's reciprocity while we download.
	cc.Seed = true
	cc.DisableAggressiveUpload = cfg.TitForTat
	cc.EstablishedConnsPerTorrent = cfg.MaxConns
	cc.HalfOpenConnsPerTorrent = max(25, cfg.MaxConns/2)
	cc.TotalHalfOpenConns = max(100, 2*cc.HalfOpenConnsPerTorrent)
	cc.TorrentPeersHighWater = max(500, 4*cfg.MaxConns)
	cc.DialRateLimiter = rate.NewLimiter(rate.Inf, 0)
	// The library accepts a connection only while some torrent wants one, and a torrent that
	// has its info and nothing to download wants none: a node that holds a package's info
	// dictionary for its peers before the package itself (metadata.go) must still be reached.
	// A connection for a torrent that has no room is refused after the handshake, as before.
	cc.AlwaysWantConns = true
	cc.NominalDialTimeout = 5 * time.Second
	cc.MinDialTimeout = 2 * time.Second
	// Both ends keep the same one of two crossed connections (the one dialed by the higher
	// peer ID), so nodes that dial each other at once end with one connection, not none.
	cc.DropDuplicatePeerIds = true
	setEncryption(cc, cfg.RequireEncryption)
	n.setLimits(cc)
	// The library's records go to the Node's logger at Info and above (below, it logs every
	// request), its keys in a group of their own: they share names with this package's keys
	// for other things ("torrent" is a group there), which a log shipper cannot index as one.
	cc.Slogger = slog.New(logging.AtLeast(n.log.Handler(), slog.LevelInfo)).WithGroup("anacrolix")
	cc.IPBlocklist = &n.bans
	// Dial with our own dialer only: it leaves from the listen address.
	cc.DialForPeerConns = false
	n.setCallbacks(&cc.Callbacks)
	return cc
}

// setEncryption sets BEP 8 header obfuscation: required with RC4, or accepted and declined.
func setEncryption(cc *torrent.ClientConfig, require bool) {
	if require {
		cc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: true, RequirePreferred: true}
		cc.CryptoProvides = mse.CryptoMethodRC4
		cc.CryptoSelector = func(mse.CryptoMethod) mse.CryptoMethod { return mse.CryptoMethodRC4 }
		return
	}
	cc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{Preferred: false, RequirePreferred: false}
	cc.CryptoProvides = mse.AllSupportedCrypto
	cc.CryptoSelector = mse.DefaultCryptoSelector // plaintext when offered
}

// setLimits sets the peer-request budget, the keep-alive timer and the rate limiters of
// n.cfg, and keeps the upload limiter for upload caps (setUploadCap).
func (n *Node) setLimits(cc *torrent.ClientConfig) {
	// v1.59.1 grants per-connection read budget for peer requests in arrival order
	// (PeerConn.onReadRequest, peerconn.go; alloclim.Limiter.Reserve, internal/alloclim/l.go)
	// but serves the requests in map order (servePeerRequest): with less budget than a peer's
	// outstanding requests the serving goroutine waits on a reservation queued behind ones
	// only it can release, and uploading to that peer stops for good (at 64 chunks, the 1 MiB
	// default). A budget for every request the library accepts (1024 chunks of 16 KiB, its
	// reqq) avoids it; TestUpstreamReqq (upstream_test.go) fails if the reqq changes.
	cc.MaxAllocPeerRequestDataPerConn = peerRequestBudget
	// A connection's writer can miss the wake-up for a chunk read from disk just after it
	// looked for work (v1.59.1's peerConnMsgWriter.run, peer-conn-msg-writer.go, takes its
	// wake-up channel after filling the buffer; upstream anacrolix/torrent#1078 and #1071);
	// it then sleeps until its keep-alive timer, leaving a first request unanswered for the
	// default minute. A short timer bounds that stall.
	cc.KeepAliveTimeout = writerWakeInterval
	cc.UploadRateLimiter = rate.NewLimiter(rate.Inf, 0)
	if n.cfg.MaxUploadRate > 0 {
		// The burst also caps the chunk length peers may request; 16 KiB is the norm.
		burst := int(min(max(n.cfg.MaxUploadRate/10, 256<<10), peerRequestBudget))
		cc.UploadRateLimiter = rate.NewLimiter(rate.Limit(n.cfg.MaxUploadRate), burst)
	}
	n.upLimit = cc.UploadRateLimiter
	if n.cfg.MaxDownloadRate > 0 {
		cc.DownloadRateLimiter = rate.NewLimiter(rate.Limit(n.cfg.MaxDownloadRate), 0)
		n.downLimit = cc.DownloadRateLimiter
	}
}

// findListenAddr sets n.addr to the client's TCP listen address (IPv4 preferred) and, when it
// listens on every address, n.local to the machine's addresses.
func (n *Node) findListenAddr() error {
	for _, a := range n.cl.ListenAddrs() {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !n.addr.IsValid() || (ap.Addr().Is4() && !n.addr.Addr().Is4()) {
			n.addr = ap
		}
	}
	if !n.addr.IsValid() {
		return fmt.Errorf("bt: client on %s has no TCP listener", n.cfg.ListenAddr)
	}
	if n.addr.Addr().IsUnspecified() {
		n.local = make(map[netip.Addr]bool)
		addrs, _ := net.InterfaceAddrs() // without them we only fail to spot ourselves
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				n.local[p.Addr().Unmap()] = true
			}
		}
	}
	return nil
}

// isSelf reports whether ap is this Node's listen address.
func (n *Node) isSelf(ap netip.AddrPort) bool {
	if ap == n.addr {
		return true
	}
	return ap.Port() == n.addr.Port() && n.local[ap.Addr().Unmap()]
}

// Addr returns the address the Node listens on (an unspecified IP when it listens on all).
func (n *Node) Addr() netip.AddrPort {
	return n.addr
}

// Close drops every torrent and stops the client. Package.Data files are left open: they
// belong to the caller.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	ts := make([]*Torrent, 0, len(n.torrents))
	for _, t := range n.torrents {
		ts = append(ts, t)
	}
	metas := make([]metainfo.Hash, 0, len(n.metas))
	for ih := range n.metas {
		metas = append(metas, ih)
	}
	n.mu.Unlock()
	for _, ih := range metas {
		n.DropInfo(ih)
	}
	var errs []error
	for _, t := range ts {
		errs = append(errs, t.Close())
	}
	if n.fast != nil {
		n.fast.close()
	}
	errs = append(errs, n.cl.Close()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bt: closing node %s: %w", n.addr, err)
	}
	return nil
}

// lookup returns the Torrent for a library torrent. Called from library callbacks with
// the client lock held: it only takes n.mu.
func (n *Node) lookup(lt *torrent.Torrent) *Torrent {
	if lt == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.torrents[lt.InfoHash()]
}

// ltepMap returns the extension map every connection of a package advertises: the library's
// builtin protocols but ut_holepunch (see withoutHolepunch) plus claimExtension and
// rangeExtension, and seederExtension and fastExtension where they apply. It is built once and
// never changed afterwards, as the library requires of maps it is pointed to.
func (n *Node) ltepMap(builtin *torrent.LocalLtepProtocolMap) *torrent.LocalLtepProtocolMap {
	n.ltepOnce.Do(func() {
		n.ltep = withoutHolepunch(builtin)
		n.ltep.AddUserProtocol(claimExtension)
		n.ltep.AddUserProtocol(rangeExtension)
		if n.cfg.Seeder {
			n.ltep.AddUserProtocol(seederExtension)
		}
		if n.fast != nil {
			n.ltep.AddUserProtocol(fastExtension)
		}
	})
	return &n.ltep
}

// metaLtepMap is the extension map of an info-only torrent's connections (metadata.go): the
// library's builtin protocols but ut_holepunch, and none of this package's.
func (n *Node) metaLtepMap(builtin *torrent.LocalLtepProtocolMap) *torrent.LocalLtepProtocolMap {
	n.metaLtepOnce.Do(func() { n.metaLtep = withoutHolepunch(builtin) })
	return &n.metaLtep
}

// withoutHolepunch copies the library's builtin extension map without ut_holepunch (BEP 55).
// Hole punching helps peers behind NATs reach each other through a third; in a data center
// every node can dial every other, and v1.59.1 asks every connected peer that offers it to
// relay whenever a dial fails (Torrent.trySendHolepunchRendezvous), each of which answers:
// with nodes that restart or leave, those messages were 2% of a 64-node swarm's CPU. A peer
// sends ut_holepunch only to peers that offer it, so pkgsync nodes no longer send it to each
// other.
func withoutHolepunch(builtin *torrent.LocalLtepProtocolMap) torrent.LocalLtepProtocolMap {
	m := torrent.LocalLtepProtocolMap{NumBuiltin: builtin.NumBuiltin}
	for i, name := range builtin.Index {
		if name == utHolepunch.ExtensionName {
			if i < builtin.NumBuiltin {
				m.NumBuiltin--
			}
			continue
		}
		m.Index = append(m.Index, name)
	}
	return m
}

// capBurst is the upload limiter's burst while a cap is set: at least a chunk (the library
// refuses to upload a chunk longer than the burst), and a quarter of a second at 1 MB/s.
const capBurst = 256 << 10

// setUploadCap sets t's upload cap in bytes per second, or lifts it (0). The Node's uploads
// run at the lowest cap set, never above Config.MaxUploadRate.
func (n *Node) setUploadCap(t *Torrent, limit float64) {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	if n.upCaps == nil {
		n.upCaps = make(map[*Torrent]float64)
		n.upBurst = n.upLimit.Burst()
	}
	if limit > 0 {
		n.upCaps[t] = limit
	} else {
		delete(n.upCaps, t)
	}
	base := rate.Inf
	if n.cfg.MaxUploadRate > 0 {
		base = rate.Limit(n.cfg.MaxUploadRate)
	}
	l := base
	for _, c := range n.upCaps {
		l = min(l, rate.Limit(c))
	}
	if l == base {
		n.upLimit.SetLimit(base)
		n.upLimit.SetBurst(n.upBurst)
		return
	}
	// The library gives the limiter a burst of the whole request budget (16 MiB here),
	// which would let a cap pass seconds of data at once. The burst goes down first: the
	// library refuses to upload a chunk longer than the burst of a finite limit.
	n.upLimit.SetBurst(capBurst)
	n.upLimit.SetLimit(l)
}

// setCallbacks wires the library's callbacks to the Torrents. They run with the client
// lock held, so they only record facts under the Torrent's own lock (never calling back
// into the library) and wake the Torrent's scheduler.
func (n *Node) setCallbacks(cb *torrent.Callbacks) {
	cb.PeerConnAdded = append(cb.PeerConnAdded, func(pc *torrent.PeerConn) {
		// A torrent known by its info hash alone (metadata.go) speaks only the library's
		// extensions: a peer that hears pkgsync's would wait for its claims. Neither offers
		// ut_holepunch (withoutHolepunch).
		if n.lookup(pc.Torrent()) != nil {
			pc.LocalLtepProtocolMap = n.ltepMap(pc.LocalLtepProtocolMap)
		} else {
			pc.LocalLtepProtocolMap = n.metaLtepMap(pc.LocalLtepProtocolMap)
		}
	})
	cb.ReadExtendedHandshake = func(pc *torrent.PeerConn, msg *pp.ExtendedHandshakeMessage) {
		if m := n.lookupMeta(pc.Torrent()); m != nil {
			m.onHandshake(pc, msg.MetadataSize > 0)
			return
		}
		if t := n.lookup(pc.Torrent()); t != nil {
			_, claims := msg.M[claimExtension]
			_, ranges := msg.M[rangeExtension]
			_, seeder := msg.M[seederExtension]
			t.onExtendedHandshake(pc, msg.Port, claims, ranges, seeder)
			_, fast := msg.M[fastExtension]
			t.onFastHandshake(pc, fast)
		}
	}
	cb.PeerConnReadExtensionMessage = append(cb.PeerConnReadExtensionMessage, func(ev torrent.PeerConnReadExtensionMessageEvent) {
		if ev.ExtensionNumber == pp.HandshakeExtendedID || ev.PeerConn.LocalLtepProtocolMap == nil {
			return
		}
		name, builtin, err := ev.PeerConn.LocalLtepProtocolMap.LookupId(ev.ExtensionNumber)
		if err != nil || builtin {
			return
		}
		t := n.lookup(ev.PeerConn.Torrent())
		if t == nil {
			return
		}
		switch name {
		case claimExtension:
			t.onClaimMessage(ev.PeerConn, ev.Payload)
		case rangeExtension:
			t.onRangeMessage(ev.PeerConn, ev.Payload)
		case fastExtension:
			t.onFastMessage(ev.PeerConn, ev.Payload)
		}
	})
	cb.ReadMessage = func(pc *torrent.PeerConn, msg *pp.Message) {
		switch msg.Type {
		case pp.Have, pp.Bitfield, pp.HaveAll, pp.HaveNone:
			// A package's torrent is looked up first: its HAVEs come by the thousand.
			if t := n.lookup(pc.Torrent()); t != nil {
				if t.onHaveMessage(pc, msg) {
					// The library reads the message after this callback and skips a
					// keep-alive: it never learns what the peer has (v1.59.1,
					// PeerConn.mainReadLoop).
					*msg = pp.Message{Keepalive: true}
				}
			} else if n.lookupMeta(pc.Torrent()) != nil {
				// An info-only torrent downloads nothing, so what its peers have is of no
				// use to it, and the library must not learn it: v1.59.1 miscounts a
				// piece's availability when a connection that announced pieces before the
				// info arrived is closed by its writer (a failed write) and dropped only
				// after the info came, and Drop then panics ("piece 0 has relative
				// availability 1", anacrolix/torrent#744 and #813).
				*msg = pp.Message{Keepalive: true}
			}
		}
	}
	cb.ReceivedUsefulData = append(cb.ReceivedUsefulData, func(ev torrent.ReceivedUsefulDataEvent) {
		pc, ok := ev.Peer.TryAsPeerConn()
		if !ok {
			return
		}
		if t := n.lookup(pc.Torrent()); t != nil {
			t.onUsefulData(pc, int64(len(ev.Message.Piece)))
		}
	})
	cb.PeerConnClosed = func(pc *torrent.PeerConn) {
		if t := n.lookup(pc.Torrent()); t != nil {
			t.onConnClosed(pc)
		}
	}
}

// banList is the set of addresses this package banned. The library consults it (as
// ClientConfig.IPBlocklist) before it accepts or dials a connection, with its lock held:
// banList takes only its own.
type banList struct {
	mu     sync.Mutex
	ips    map[netip.Addr]bool
	logged map[netip.Addr]bool // bans logged, the library's too
}

// firstLog reports whether the ban of a is not logged yet, and counts it as logged.
func (b *banList) firstLog(a netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.logged[a] {
		return false
	}
	if b.logged == nil {
		b.logged = make(map[netip.Addr]bool)
	}
	b.logged[a] = true
	return true
}

var _ iplist.Ranger = (*banList)(nil)

// Lookup implements iplist.Ranger.
func (b *banList) Lookup(ip net.IP) (iplist.Range, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return iplist.Range{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ips[a.Unmap()] {
		return iplist.Range{}, false
	}
	return iplist.Range{First: ip, Last: ip, Description: "banned by pkgsync"}, true
}

// NumRanges implements iplist.Ranger.
func (b *banList) NumRanges() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ips)
}

// ban bans a peer address as the library bans one: no connection from or to it from now
// on, and its open connections are closed. It reports whether a was not banned already. It
// calls into the library, so no lock may be held.
func (n *Node) ban(a netip.Addr) bool {
	a = a.Unmap()
	n.bans.mu.Lock()
	if n.bans.ips[a] {
		n.bans.mu.Unlock()
		return false
	}
	if n.bans.ips == nil {
		n.bans.ips = make(map[netip.Addr]bool)
	}
	n.bans.ips[a] = true
	n.bans.mu.Unlock()
	n.mu.Lock()
	ts := make([]*Torrent, 0, len(n.torrents))
	for _, t := range n.torrents {
		ts = append(ts, t)
	}
	n.mu.Unlock()
	for _, t := range ts {
		for _, pc := range t.lt.PeerConns() {
			if ap, err := netip.ParseAddrPort(pc.RemoteAddr.String()); err == nil && ap.Addr().Unmap() == a {
				pc.Close()
			}
		}
	}
	return true
}

// bannedIPs returns the addresses banned by the library (bad pieces) and by this package,
// IPv4 addresses in their plain form.
func (n *Node) bannedIPs() []string {
	var ips []string
	for _, s := range n.cl.BadPeerIPs() {
		if a, err := netip.ParseAddr(s); err == nil {
			s = a.Unmap().String()
		}
		ips = append(ips, s)
	}
	n.bans.mu.Lock()
	for a := range n.bans.ips {
		ips = append(ips, a.String())
	}
	n.bans.mu.Unlock()
	slices.Sort(ips)
	return slices.Compact(ips)
}
