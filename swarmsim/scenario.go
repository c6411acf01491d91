package swarmsim

import (
	"errors"
	"fmt"
	"time"

	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/originplan"
)

// Tracker kinds: how peer lists are made.
const (
	// TrackerPkgsync is pkgsync's tracker: the closest peers first (same rack, then same site),
	// among equals seeders first for a leecher, the rest in an order of the asker's own.
	TrackerPkgsync = "pkgsync"
	// TrackerStock is a stock tracker (opentracker): a uniform random sample of the swarm.
	TrackerStock = "stock"
)

// DefaultClaimDelay is Scenario.ClaimDelay when unset: claims arrive at once, as the model's
// other messages do. A claim is a message, though: it takes its way over the wire and through
// the receiver's event loop before the receiver's scheduler reads it, and nodes whose rounds
// fall on the same instant then pick the same pieces. With 10 ms, fetchers that all took
// from every vacant slot's block at once (before originplan.VacantHeirs) made the origin send
// 7.1 F in a 16-node fan-out with 128 slots, where the lab's 16 nodes sent 1.32 F; with heirs
// it sends 1.00 F. At 1,000 nodes and 10 Gbit/s, where a piece takes about as long to fetch
// as a claim to arrive, the model then sends 1.5 F: how much of that bt does is not measured.
const DefaultClaimDelay = 0

// Scenario is one simulated fan-out. Rates are in bytes per second.
type Scenario struct {
	Name      string
	Nodes     int
	Size      int64 // F, the package
	PieceSize int64 // 0: what pkgsync make picks
	Sites     int   // 1 or more; the origin is in the first
	Racks     int   // racks per site
	NodeRate  float64
	// OriginRate is the origin's upload.
	OriginRate float64
	// RackRate caps each rack's link to its site in each direction; 0: no cap.
	RackRate float64
	// InterSiteRate caps the link between two sites in each direction; 0: no cap.
	InterSiteRate float64
	Tracker       string
	// Fetchers is how many origin fetcher slots pkgsync's tracker hands out
	// (originplan.NewSlots). 0: as many as a peer list holds (min(MaxPeers, MaxConns)), at
	// most originplan.DefaultFetchers: the peers that pull each fresh piece from its fetcher
	// are the fetcher's connections, so fetchers beyond them add nothing.
	Fetchers int
	// NoElect keeps the nodes under a stock tracker from electing origin fetchers among
	// themselves (originplan.Election): each then cuts the blocks among the members it is
	// connected to.
	NoElect  bool
	MaxPeers int // the tracker's cap on a peer list (a node asks for MaxConns)
	MaxConns int // connections per node (bt's Config.MaxConns)
	// SiteRule applies bt's site rule (a topology that places the origin is configured).
	SiteRule bool
	Splay    time.Duration // each node starts at a uniform random offset in [0, Splay)
	// Churn is the share of nodes killed once at a random moment, each restarted Down later
	// with the pieces it had completed (OUT.part survives).
	Churn float64
	Down  time.Duration
	// Have is the share of pieces every node already has (the delta case: the pieces the old
	// version still provides, the same on every node).
	Have     float64
	Pipeline int // pieces a node fetches from peers at once
	// Interval is the tracker's re-announce interval.
	Interval time.Duration
	// ClaimDelay is how long after a node starts an origin fetch the others see its claim
	// (0: DefaultClaimDelay).
	ClaimDelay time.Duration
	Seed       uint64
	// Progress, when set, is called now and then with the simulated time, how many nodes have
	// completed and the bytes the origin has sent.
	Progress func(t time.Duration, done int, originBytes int64)
}

// withDefaults fills the zero fields and checks the rest.
func (s Scenario) withDefaults() (Scenario, error) {
	if s.PieceSize <= 0 {
		s.PieceSize = manifest.DefaultPieceSize(s.Size, 0, 0) // what pkgsync make picks
	}
	if s.Sites <= 0 {
		s.Sites = 1
	}
	if s.Racks <= 0 {
		s.Racks = 1
	}
	if s.Tracker == "" {
		s.Tracker = TrackerPkgsync
	}
	if s.MaxConns <= 0 {
		s.MaxConns = 128
	}
	if s.MaxPeers <= 0 {
		s.MaxPeers = 200
	}
	if s.Pipeline <= 0 {
		s.Pipeline = 8
	}
	if s.Interval <= 0 {
		s.Interval = 30 * time.Second
	}
	if s.ClaimDelay <= 0 {
		s.ClaimDelay = DefaultClaimDelay
	}
	if s.Down <= 0 {
		s.Down = 5 * time.Second
	}
	if s.Fetchers == 0 {
		s.Fetchers = min(originplan.DefaultFetchers, s.MaxPeers, s.MaxConns)
	}
	switch {
	case s.Nodes < 1:
		return s, fmt.Errorf("scenario %q: %d nodes: need at least 1", s.Name, s.Nodes)
	case s.Size <= 0:
		return s, fmt.Errorf("scenario %q: package size %d: need at least 1 byte", s.Name, s.Size)
	case (s.Size+s.PieceSize-1)/s.PieceSize > 65535:
		return s, fmt.Errorf("scenario %q: %d pieces of %d bytes: at most 65,535 pieces", s.Name, (s.Size+s.PieceSize-1)/s.PieceSize, s.PieceSize)
	case s.NodeRate <= 0 || s.OriginRate <= 0:
		return s, fmt.Errorf("scenario %q: node rate %g and origin rate %g B/s: both must be positive", s.Name, s.NodeRate, s.OriginRate)
	case s.Fetchers < 0:
		return s, fmt.Errorf("scenario %q: %d fetchers: want 0 (the default) or more", s.Name, s.Fetchers)
	case s.MaxConns > 250:
		return s, fmt.Errorf("scenario %q: %d connections per node: at most 250", s.Name, s.MaxConns)
	case s.Tracker != TrackerPkgsync && s.Tracker != TrackerStock:
		return s, fmt.Errorf("scenario %q: tracker %q: want %q or %q", s.Name, s.Tracker, TrackerPkgsync, TrackerStock)
	case s.Churn < 0 || s.Churn > 1 || s.Have < 0 || s.Have >= 1:
		return s, errors.New("scenario " + s.Name + ": churn must be in [0, 1] and have in [0, 1)")
	}
	return s, nil
}
