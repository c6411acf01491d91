package bt

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/pkgsync/pkgsync/topology"
)

// Config holds the settings of a Node. The zero value of every field means its default, so
// Config{} and DefaultConfig() behave the same; DefaultConfig spells the defaults out.
type Config struct {
	// NoElect keeps a node that got no origin Role from a tracker (a stock tracker, or none)
	// from electing origin fetchers with its pkgsync peers (originplan.Election): it then
	// cuts the origin work among the peers it is connected to, which differ from node to
	// node when each sees part of the swarm.
	NoElect bool
	// electFetchers is how many fetchers an election names (0: originplan.ElectedFetchers): a
	// test's swarm is smaller than 16.
	electFetchers int
	// Seeder: this node only seeds (`pkgsync seed`), and says so to pkgsync peers in its
	// extended handshake (seederExtension). A node that fetches from the origin takes a
	// pkgsync peer on the origin's host for the seeder beside the web server (atOrigin) only
	// when it says so: runners on one host, or hosts behind one NAT, share the origin's
	// address, and a node among them that completed is a peer like any other.
	Seeder bool
	// ListenAddr is the "host:port" the BitTorrent TCP listener binds (uTP is never used).
	// Default ":0": every address, an ephemeral port, which trackers learn from announces.
	// With a specific host, outgoing peer and tracker connections also leave from that
	// address, so that peers see (and ban, and rank) the same address the tracker lists.
	ListenAddr string
	// TitForTat restores the library's reciprocity while this node still needs data: a peer
	// is served only while it has pieces we want, and at most 100 KiB ahead of what it gave
	// us. The default (false) unchokes every peer at once: in a data center every node is
	// ours and upload capacity is what makes the fan-out fast.
	TitForTat bool
	// RequireEncryption makes connections use BEP 8 header obfuscation with RC4. The
	// default (false) initiates plaintext, accepts both, and picks plaintext when offered.
	RequireEncryption bool
	// DHT starts the library's DHT servers (bootstrapping from the public DHT). PEX enables
	// ut_pex. Both default to false: peers come from trackers and Package.Peers only.
	DHT, PEX bool
	// LPD (local peer discovery) does not exist in anacrolix/torrent; NewNode refuses
	// a Config that asks for it rather than silently ignoring it.
	LPD bool
	// MaxConns caps established peer connections per torrent. Default 128.
	MaxConns int
	// MaxUploadRate and MaxDownloadRate cap peer traffic of the whole Node in bytes per
	// second; 0 means unlimited. Origin traffic is the OriginFunc's business.
	MaxUploadRate, MaxDownloadRate int64
	// Topology ranks peer addresses by topology.Closeness: the closest are dialed first.
	// Nil ranks by the common address prefix alone.
	Topology *topology.Map
	// OriginConcurrency is how many pieces one Torrent fetches from the origin at once when
	// it is alone; nodes sharing the origin divide it among themselves (at least one each).
	// Default 4.
	OriginConcurrency int
	// PeerWait bounds how long Download waits, before its first origin request, for the
	// known peers (Package.Peers and the first tracker answers) to connect and say which
	// pieces they have. It ends early once they all have; it is skipped when no peer is
	// known. Default 2s.
	PeerWait time.Duration
	// StallTimeout is how long peers may deliver nothing before pieces that peers claim to
	// have may go to the origin as well. Default 5s.
	StallTimeout time.Duration
	// NoFastPath turns off the fast path between pkgsync nodes (fast.go): pieces then move
	// between them over BitTorrent as with any client. The fast path is off anyway with
	// RequireEncryption (it is plaintext) and with TitForTat (it serves whoever asks).
	NoFastPath bool
	// TLS is the trust (RootCAs) and identity (Certificates) of announces to https trackers,
	// whose names are always verified. Nil: the system's roots, no client certificate.
	TLS *tls.Config
	// Logger receives this package's log records and the library's (those of Info level and
	// above; the library's attributes in the group "anacrolix"). Nil means quiet. pkgsync
	// update gives the updater and the Node the same logger, so that -v reads as one log.
	Logger *slog.Logger
}

// Defaults, see the Config fields.
const (
	defaultListenAddr        = ":0"
	defaultMaxConns          = 128
	defaultOriginConcurrency = 4
	defaultPeerWait          = 2 * time.Second
	defaultStallTimeout      = 5 * time.Second
)

// DefaultConfig returns the data-center defaults: listen on an ephemeral TCP port, unchoke
// every peer, plaintext preferred, no DHT/PEX/LPD, 128 connections per torrent, no rate
// limits, 4 origin fetches in flight.
func DefaultConfig() Config {
	return Config{
		ListenAddr:        defaultListenAddr,
		MaxConns:          defaultMaxConns,
		OriginConcurrency: defaultOriginConcurrency,
		PeerWait:          defaultPeerWait,
		StallTimeout:      defaultStallTimeout,
	}
}

// withDefaults fills the zero fields of cfg.
func (cfg Config) withDefaults() Config {
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = defaultListenAddr
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.OriginConcurrency <= 0 {
		cfg.OriginConcurrency = defaultOriginConcurrency
	}
	if cfg.PeerWait <= 0 {
		cfg.PeerWait = defaultPeerWait
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = defaultStallTimeout
	}
	return cfg
}
