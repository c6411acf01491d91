// Package tracker is the BitTorrent tracker embedded in pkgsync (`pkgsync tracker` and
// `pkgsync serve --tracker`): an HTTP tracker (BEP 3) that hands out compact peer lists (BEP 23,
// IPv4 in "peers" and IPv6 in "peers6" as in BEP 7) and answers scrapes (BEP 48).
//
// Peer lists are ranked for the data center: every other live peer of the torrent, closest to the
// asker first by package topology, so that a node fetches from its rack before its data center and
// from its data center before another one. Among equally close peers a leecher gets seeders first
// (and a seeder gets leechers first), and the order of equally close peers is shuffled by a seed
// taken from the asker's address, so that askers spread over equally good peers instead of all
// dialling the same few.
//
// The tracker trusts its network. The asker's address is the `ip=` parameter when one is given and
// the connection's remote address otherwise, with no check that the two agree: inside a data
// center `ip=` is how a node behind a proxy or with several interfaces names the address its peers
// should dial. Who may announce at all is set by Options.Allow (the networks whose connections are
// served) and Options.Secret (a token each announce must carry in its URL, so that a stray host
// cannot list itself as a peer); with neither, anyone who reaches the tracker can.
//
// It implements the HTTP side itself and uses anacrolix/torrent's tracker packages only for
// their types. At v1.59.1 the library's HTTP front end, httpTrackerServer.Handler:
//
//   - always encodes "failure reason" and "tracker id", empty on success, and aria2c rejects every
//     such answer ("Tracker returned failure reason: ", checked with aria2 1.36);
//   - answers bad requests with a plain-text HTTP 400 instead of a bencoded "failure reason", the
//     only form BitTorrent clients read and show;
//   - ignores numwant, uploaded and downloaded (we cap numwant and log the byte counts);
//   - takes a missing or malformed port as port 0;
//   - has no scrape endpoint.
//
// And trackerServer.AnnounceHandler, which this package used between its query parser and its
// store until the load test of cmd/trackerload, opens an OpenTelemetry span with eight attributes
// (a hex info hash and an address string among them) for every announce, and starts an upstream
// lookup (two goroutines and two timers) for every swarm of at most one peer, even with no
// upstream tracker configured. The store records the announce and picks the peers in one pass
// under the swarm's own lock instead (store.go), ranking works from what the store keeps of each
// peer (rank.go), the query is read without building a map (query.go), the compact answer and
// the log line are encoded without reflection, and log lines are written in batches (logbuf.go).
// AnswerAnnounce is the announce without net/http's types, for `pkgsync tracker`, which reads
// announces on origin's lean path (origin.LeanRoute) and leaves the rest to Handler.
//
// # Origin roles
//
// With Options.OriginFetchers set (`--origin-fetchers N`; 128 by default on the command line), the
// tracker also says who fetches from the origin, since it alone sees every announcer of a package
// while each node sees only the peers it was handed: each swarm has N fetcher slots
// (originplan.Slots), given first come first served to announcers that still need data
// (left > 0), and held until the holder announces "stopped", its peer entry expires, or a node with
// another peer_id announces from its address (a restart). A holder that completes keeps its slot.
// An announcer that will not fetch from the origin says so with pkgsync_nofetch=1 (NoFetchParam):
// it gets no slot and gives back the one it holds. pkgsync nodes of a site without the origin
// (bt's site rule) do, so that no block of the origin's work waits for a node that never takes it.
// Every successful announce answer then carries one more key, which stock clients ignore:
//
//	"pkgsync": {"fetchers": <N x 20 bytes: each slot's holder's peer_id in slot order,
//	                         20 zero bytes for a free slot>,
//	            "slot": <the asker's slot in fetchers, -1 when it holds none>}
//
// Every announcer of a swarm is told the same fetchers, so the fetchers cut the origin's work into
// the same blocks whatever part of the swarm each of them knows, and the others leave the origin
// to them (originplan.View.Role; bt reads the key). A fetcher's peer list starts with the other
// fetchers, so that they connect to each other and exchange their claims. Without the option the
// answers are those of a stock tracker, and nodes agree among themselves (originplan's members).
//
// Load: `go run ./cmd/trackerload` (10,000 peers over 100 packages, server on one core).
package tracker

import (
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/pkgsync/pkgsync/metrics"
	"github.com/pkgsync/pkgsync/topology"
)

// Defaults for Options fields left zero.
const (
	// DefaultInterval is the re-announce interval handed to clients. A package fans out across
	// the data center in seconds to minutes, and a node that announced before its neighbours only
	// learns of them at its next announce (PEX and DHT are off on such networks), so the interval
	// must be short next to the fan-out itself. At 30 s a thousand nodes make about 33 announces a
	// second, which an in-memory store serves without effort. (anacrolix/torrent clients do not
	// re-announce more often than once a minute whatever they are told; aria2c and libtorrent
	// follow the interval.)
	DefaultInterval = 30 * time.Second
	// DefaultMaxPeers caps the peers returned in one announce, whatever numwant asks for.
	DefaultMaxPeers = 200
)

// Options configure a Tracker. The zero value is usable.
type Options struct {
	// Topology ranks peers by closeness to the asker; nil ranks by common address prefix only.
	Topology *topology.Map
	// Interval is the re-announce interval handed to clients; zero means DefaultInterval.
	Interval time.Duration
	// PeerTTL is how long a peer stays listed after its last announce; zero means 3 × Interval,
	// which outlives two lost announces (and the one-minute floor of anacrolix clients).
	PeerTTL time.Duration
	// MaxPeers caps the peers returned per announce (numwant is honoured below it); zero means
	// DefaultMaxPeers.
	MaxPeers int
	// Log, if not nil, receives one JSON object per line for every announce:
	//
	//	{"time":"2026-11-24T23:49:02.123Z","info_hash":"<40 hex>","peer_id":"<40 hex>",
	//	 "peer":"10.1.0.5:6881","remote":"10.1.0.5:51234","event":"started",
	//	 "uploaded":0,"downloaded":0,"left":1048576,"numwant":-1,"peers":12}
	//
	// "peer" is the address handed to other peers, "remote" the connection's address; "event"
	// is "" for a regular re-announce; "left" is -1 when the client did not send it; "peers" is
	// how many peers the answer listed. A refused request gives
	// {"time":...,"remote":...,"path":"/announce","failure":"..."} (plus "info_hash" when one was
	// readable). Lines are written whole, in batches: a line waits at most 100 ms (or until
	// 64 KiB wait) before it is written with the lines before it, and Close writes those still
	// waiting, so a tracker that is killed loses at most its last 100 ms of lines. Write errors
	// are ignored, so a full disk cannot stop the tracker.
	Log io.Writer
	// Allow, if not empty, lists the networks that may use the tracker: an announce or a scrape
	// over a connection from any other address is refused with a failure reason. The
	// connection's address counts, not the ip= an announce gives; behind a proxy that is the
	// proxy's. IPv4 prefixes match IPv4 connections also on a dual-stack listener.
	Allow []netip.Prefix
	// Secret, if not empty, is a token every announce and scrape must carry as the query
	// parameter SecretParam (secret=TOKEN, query-escaped); others are refused with a failure
	// reason. BitTorrent clients announce to the URL in the .torrent with their own parameters
	// appended, so giving `pkgsync make` the announce URL with secret=TOKEN in its query is
	// enough. The token is compared in constant time and never logged.
	Secret string
	// OriginFetchers, if positive, is the number of origin fetcher slots of each swarm, and
	// every announce answer carries the asker's origin role (see the package doc); zero hands
	// out no roles and answers as a stock tracker does. The command's default is
	// originplan.DefaultFetchers. It is capped at MaxPeers, since the fetchers are listed first
	// to each other.
	OriginFetchers int
	// AllowInfoHash, if not nil, decides which torrents this tracker serves; announces for others
	// fail and scrapes leave them out.
	AllowInfoHash func(infoHash [20]byte) bool
	// Now is the clock; nil means time.Now. Tests set it to expire peers without sleeping.
	Now func() time.Time
}

// PeerInfo is what the tracker knows of one peer of a torrent.
type PeerInfo struct {
	Addr       netip.AddrPort // address handed to other peers
	ID         [20]byte       // peer_id
	Uploaded   int64          // bytes, as last reported
	Downloaded int64          // bytes, as last reported
	Left       int64          // bytes, as last reported; -1 if never reported
	LastSeen   time.Time      // time of the last announce
}

// Seeder reports whether the peer has the whole torrent.
func (p PeerInfo) Seeder() bool { return p.Left == 0 }

// Tracker is an HTTP BitTorrent tracker. Its methods may be called from several goroutines.
type Tracker struct {
	opts    Options
	store   *store
	handler http.Handler

	logw    *batchLog // nil without Options.Log
	metrics *metrics.Tracker

	closeOnce sync.Once
	stop      chan struct{}
	stopped   chan struct{}
}

// New returns a Tracker. It starts a goroutine that drops expired peers every PeerTTL (peers are
// also dropped lazily whenever their torrent is looked at); Close stops it.
func New(opts Options) *Tracker {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.PeerTTL <= 0 {
		opts.PeerTTL = 3 * opts.Interval
	}
	if opts.MaxPeers <= 0 {
		opts.MaxPeers = DefaultMaxPeers
	}
	// The fetchers are listed first to each other, so that they see each other's claims:
	// more of them than one peer list holds would not.
	opts.OriginFetchers = min(opts.OriginFetchers, opts.MaxPeers)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t := &Tracker{
		opts:    opts,
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	t.store = newStore(opts)
	t.metrics = metrics.NewTracker(t.store.state)
	if opts.Log != nil {
		t.logw = &batchLog{w: opts.Log}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/announce", t.serveAnnounce)
	mux.HandleFunc("/scrape", t.serveScrape)
	t.handler = mux
	go t.sweepLoop()
	return t
}

// Handler returns the HTTP handler serving /announce and /scrape. Mount it at the root of a
// server, or under a prefix with http.StripPrefix.
func (t *Tracker) Handler() http.Handler { return t.handler }

// Metrics returns the tracker's Prometheus metrics: announces by event and result, scrapes by
// result, and the swarms, live peers and seeders it holds (see package metrics). Register them
// to serve them.
func (t *Tracker) Metrics() *metrics.Tracker { return t.metrics }

// Close stops the expiry goroutine and writes the log lines waiting. The handler keeps working
// afterwards, expiring peers lazily and writing each log line at once. Close may be called more
// than once.
func (t *Tracker) Close() {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.stopped
		if t.logw != nil {
			t.logw.close()
		}
	})
}

func (t *Tracker) sweepLoop() {
	defer close(t.stopped)
	tick := time.NewTicker(t.opts.PeerTTL)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.store.sweep()
		}
	}
}

// Peers returns the live peers of a torrent, ordered by address.
func (t *Tracker) Peers(infoHash [20]byte) []PeerInfo { return t.store.peerInfos(infoHash) }
