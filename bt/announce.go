package bt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/tracker"
)

const (
	minAnnounceInterval  = 5 * time.Second
	maxAnnounceInterval  = 30 * time.Minute
	announceRetry        = 15 * time.Second
	quickReannounce      = 250 * time.Millisecond
	heldReannounce       = time.Second
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
	done := t.store.done()
	wasComplete := t.Complete()
	for {
		wait := maxAnnounceInterval
		for _, u := range urls {
			res, err := t.announce(ctx, u, event, key)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				t.node.log.Info("bt: announce failed", "torrent", t.name, "tracker", u, "err", err)
				wait = min(wait, announceRetry)
				continue
			}
			t.mu.Lock()
			t.trackerOK = true
			t.mu.Unlock()
			var addrs []netip.AddrPort
			for _, p := range res.Peers {
				if a, ok := netip.AddrFromSlice(p.IP); ok && p.Port > 0 && p.Port < 1<<16 {
					addrs = append(addrs, netip.AddrPortFrom(a.Unmap(), uint16(p.Port)))
				}
			}
			t.addPeers(addrs, torrent.PeerSourceTracker)
			wait = min(wait, max(minAnnounceInterval, time.Duration(res.Interval)*time.Second))
		}
		t.mu.Lock()
		t.announced = true
		alone := len(t.known) == 0
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

// TrackerAnswered reports whether a tracker answered an announce for this torrent, so that
// other nodes can learn this node's address from it.
func (t *Torrent) TrackerAnswered() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.trackerOK
}

// announce makes one announce to url. A reply that panics the library's decoder (anacrolix/
// torrent v1.59.1, tracker/http Peer.FromDictInterface: a peer list whose entries are not
// dictionaries) is an error of that tracker, not the end of the process: the library decodes
// in this goroutine, and bencode re-raises the runtime error.
func (t *Torrent) announce(ctx context.Context, url string, event tracker.AnnounceEvent, key int32) (resp tracker.AnnounceResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = tracker.AnnounceResponse{}, fmt.Errorf("bt: announce to %s: the tracker's reply broke the decoder: %v", url, p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	self := t.node.addr
	req := tracker.AnnounceRequest{
		InfoHash:   t.ih,
		PeerId:     t.node.cl.PeerID(),
		Downloaded: t.store.peerBytes.Load() + t.originBytes.Load(),
		Left:       t.store.missingBytes(),
		Uploaded:   t.uploaded(),
		Event:      event,
		Key:        key,
		NumWant:    int32(t.node.cfg.MaxConns),
		Port:       self.Port(),
	}
	a := tracker.Announce{
		TrackerUrl:  url,
		Request:     req,
		DialContext: t.node.dialer.DialContext,
		Context:     ctx,
		UserAgent:   "pkgsync",
	}
	if ip := self.Addr(); ip.IsValid() && !ip.IsUnspecified() {
		if ip.Is4() {
			a.ClientIp4 = krpc.NodeAddr{IP: ip.AsSlice()}
		} else {
			a.ClientIp6 = krpc.NodeAddr{IP: ip.AsSlice()}
		}
	}
	a.DialContext = limitReads(a.DialContext, maxTrackerReply)
	t.node.withTLS(&a)
	return a.Do()
}
