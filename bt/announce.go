package bt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/tracker"

	"github.com/pkgsync/pkgsync/originplan"
)

const (
	minAnnounceInterval  = 5 * time.Second
	maxAnnounceInterval  = 30 * time.Minute
	announceRetry        = 15 * time.Second
	quickReannounce      = 250 * time.Millisecond
	heldReannounce       = time.Second
	fewReannounce        = 500 * time.Millisecond
	announceTimeout      = 15 * time.Second
	stoppedAnnounceLimit = time.Second
)

// maxTrackerReply bounds what an HTTP announce reads from the tracker: anacrolix/torrent v1.59.1
// (tracker/http) reads the whole reply into memory with no limit, and a reply naming even
// thousands of peers is some 100 KB.
const maxTrackerReply = 4 << 20

// limitReads wraps dial so that each connection it makes fails its reads once more than max
// bytes came in.
func limitReads(dial func(ctx context.Context, network, addr string) (net.Conn, error), max int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &limitedConn{Conn: c, left: max, max: max}, nil
	}
}

// limitedConn is a connection that refuses to read more than max bytes.
type limitedConn struct {
	net.Conn
	left, max int64
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("bt: tracker reply over %d bytes", c.max)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

// trackerURLs flattens the torrent's announce list, without duplicates.
func (t *Torrent) trackerURLs() []string {
	var urls []string
	for _, tier := range t.pkg.MetaInfo.UpvertedAnnounceList() {
		for _, u := range tier {
			if u != "" && !slices.Contains(urls, u) {
				urls = append(urls, u)
			}
		}
	}
	return urls
}

// announceLoop announces to every tracker of the torrent until ctx ends: "started" first,
// "completed" as soon as the last piece is verified, "stopped" on the way out. The peers
// the trackers return are ranked and dialed by addPeers. The library's own announcer is
// off so that the peer order and the swarm view stay ours.
func (t *Torrent) announceLoop(ctx context.Context) {
	urls := t.trackerURLs()
	if len(urls) == 0 {
		t.mu.Lock()
		t.announced = true
		t.mu.Unlock()
		t.poke()
		return
	}
	var keyBytes [4]byte
	_, _ = rand.Read(keyBytes[:])
	key := int32(binary.BigEndian.Uint32(keyBytes[:]))

	event := tracker.Started
	started := time.Now()
	// The origin role each tracker gave at its last answer (a tracker that fails keeps its
	// last one: it is still the best guess of what the others were told).
	roles := make(map[string]*originplan.Role)
	seeders := make(map[string]int32) // what each tracker reported at its last answer
	done := t.store.done()
	wasComplete := t.Complete()
	for {
		wait := maxAnnounceInterval
		for _, u := range urls {
			actx, cancel := outlive(ctx, stoppedAnnounceLimit)
			res, err := t.announce(actx, u, event, key)
			cancel()
			if ctx.Err() != nil {
				break // the torrent is closing: "stopped" is next
			}
			if err != nil {
				t.node.log.Info("bt: announce failed", "torrent", t.name, "tracker", trackerName(u), "err", err)
				wait = min(wait, announceRetry)
				continue
			}
			if res.roleErr != nil {
				t.node.log.Info("bt: tracker's origin role not taken", "torrent", t.name, "tracker", trackerName(u), "err", res.roleErr)
			}
			roles[u] = res.role
			seeders[u] = res.seeders
			t.mu.Lock()
			t.trackerOK = true
			t.seedersReported = slices.Max(slices.Collect(maps.Values(seeders)))
			// Before the peers are dialed: the role tells which of them are fetchers.
			t.role = pickRole(urls, roles)
			t.mu.Unlock()
			t.addPeers(res.peers, torrent.PeerSourceTracker)
			wait = min(wait, max(minAnnounceInterval, time.Duration(res.interval)*time.Second))
		}
		t.mu.Lock()
		t.announced = true
		alone := len(t.known) == 0
		few, noRole := len(t.known) < originplan.ElectedFetchers, t.role == nil
		onlyHeld := alone && len(t.held) > 0
		t.mu.Unlock()
		t.poke()
		event = tracker.None
		// Nodes of a fan-out start within moments of each other: while nobody else is known
		// and the origin gate may still be closed, ask again soon so that they find each
		// other before anyone goes to the origin.
		if alone && !t.Complete() && time.Since(started) < t.config().PeerWait {
			wait = min(wait, quickReannounce)
		}
		// Without a tracker's roles, the nodes elect origin fetchers among themselves by the
		// swarm's size as each knows it (originplan.Election): one of the first to announce,
		// told of a few peers only, would take the swarm for small and itself for a fetcher.
		if few && noRole && !t.Complete() && time.Since(started) < t.config().PeerWait {
			wait = min(wait, fewReannounce)
		}
		// Every peer known so far is of another site, which the site rule keeps away: the
		// nodes of this site are still to come.
		if onlyHeld && !t.Complete() {
			wait = min(wait, heldReannounce)
		}

		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			sctx, cancel := context.WithTimeout(context.Background(), stoppedAnnounceLimit)
			for _, u := range urls {
				_, _ = t.announce(sctx, u, tracker.Stopped, key)
			}
			cancel()
			return
		case <-done:
			timer.Stop()
			if !wasComplete {
				event = tracker.Completed
				wasComplete = true
			}
			done = nil
		case <-timer.C:
		}
	}
}

// outlive returns a context with ctx's values that ends grace after ctx does (or when cancel is
// called). An announce under way as the torrent closes gets that long to be answered before
// "stopped" goes out. Cut off at once, it was not withdrawn: the tracker had it already and
// answered it on its own connection, after the "stopped" that came on another, and so
// registered the node again. An update with --seed-time 0 announces "completed" and leaves at
// once: 5 of 13 such runs, one after another, left the tracker an entry of a process that was
// gone, and each later run waited for those peers and then fetched piece by piece from the
// origin (7 s and 32 requests for 1 MiB, where a node alone takes 2 s and one request).
func outlive(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	octx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return octx, func() { stop(); cancel() }
}

// pickRole returns the origin role of the first tracker in urls that gives one, nil when none
// does: a node follows one coordinating tracker, and every node the same, since all announce
// to the trackers of the torrent in its order.
func pickRole(urls []string, roles map[string]*originplan.Role) *originplan.Role {
	for _, u := range urls {
		if r := roles[u]; r != nil {
			return r
		}
	}
	return nil
}

// namedFetcherLocked reports whether a coordinating tracker names the peer id an origin
// fetcher. Such a peer is a node that downloads the package, whatever address it shares with
// the origin (runners on one host, hosts behind one NAT), and never the seeder beside the web
// server that atOrigin looks for. t.mu is held.
func (t *Torrent) namedFetcherLocked(id [20]byte) bool {
	return t.role != nil && slices.Contains(t.role.Fetchers, id)
}

// TrackerAnswered reports whether a tracker answered an announce for this torrent, so that
// other nodes can learn this node's address from it.
func (t *Torrent) TrackerAnswered() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.trackerOK
}

// announce makes one announce of this torrent to url (Node.announceTo). A node that the site
// rule keeps from the origin says it will not fetch from it (tracker.NoFetchParam), so that a
// coordinating tracker gives it no origin fetcher slot: a slot's block held by a node that never
// fetches waited for the stall rules of the origin's site (the two-data-center lab, where the
// tracker gave 3 of 11 slots to the far site).
func (t *Torrent) announce(ctx context.Context, url string, event tracker.AnnounceEvent, key int32) (announceReply, error) {
	t.mu.Lock()
	noFetch := !t.sitePolicyLocked().allowOrigin()
	t.mu.Unlock()
	return t.node.announceTo(ctx, url, tracker.AnnounceRequest{
		InfoHash:   t.ih,
		PeerId:     t.node.cl.PeerID(),
		Downloaded: t.store.peerBytes.Load() + t.originBytes.Load(),
		Left:       t.store.missingBytes(),
		Uploaded:   t.uploaded(),
		Event:      event,
		Key:        key,
		NumWant:    int32(t.node.cfg.MaxConns),
		Port:       t.node.addr.Port(),
	}, noFetch)
}

// announceTo makes one announce to url: to an http(s) tracker by httpAnnounce, which reads the
// origin role a pkgsync tracker gives, to a udp tracker by the library. A reply that panics a
// decoder is an error of that tracker, not the end of the process: decoding runs in this
// goroutine, and bencode re-raises runtime errors (anacrolix/torrent v1.59.1's own HTTP
// decoder panicked on a peer list whose entries are not dictionaries, Peer.FromDictInterface).
func (n *Node) announceTo(ctx context.Context, url string, req tracker.AnnounceRequest, noFetch bool) (resp announceReply, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = announceReply{}, fmt.Errorf("bt: announce to %s: the tracker's reply broke the decoder: %v", url, p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	a := tracker.Announce{
		TrackerUrl:  url,
		Request:     req,
		DialContext: n.dialer.DialContext,
		Context:     ctx,
		UserAgent:   "pkgsync",
	}
	if ip := n.addr.Addr(); ip.IsValid() && !ip.IsUnspecified() {
		if ip.Is4() {
			a.ClientIp4 = krpc.NodeAddr{IP: ip.AsSlice()}
		} else {
			a.ClientIp6 = krpc.NodeAddr{IP: ip.AsSlice()}
		}
	}
	a.DialContext = limitReads(a.DialContext, maxTrackerReply)
	n.withTLS(&a)
	if httpTracker(url) {
		return httpAnnounce(a, noFetch)
	}
	res, err := a.Do()
	if err != nil {
		return announceReply{}, err
	}
	r := announceReply{interval: res.Interval, seeders: max(res.Seeders, 0)}
	for _, p := range res.Peers {
		if ip, ok := netip.AddrFromSlice(p.IP); ok {
			r.peers = appendPeer(r.peers, ip, int64(p.Port))
		}
	}
	return r, nil
}

// httpTracker reports whether the tracker at url speaks HTTP (the library's other trackers
// speak UDP).
func httpTracker(url string) bool {
	scheme, _, ok := strings.Cut(url, "://")
	return ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"))
}
