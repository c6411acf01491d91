package bt

import (
	"net/netip"

	"github.com/pkgsync/pkgsync/topology"
)

// Crossing between sites.
//
// The link between two data centers is the scarce one: every node of the far site pulling
// pieces over it would carry each piece across several times (3.6 F measured with 8 + 8 nodes
// and the origin in one site). The library cannot be told to request a piece from one peer
// rather than another, so the rule is enforced with connections, the one thing this package
// controls: a node of a site without the origin keeps no connection to other sites unless it
// is its site's gateway, the node with the lowest address among the ones of its site it
// knows. The gateway connects to the origin's site and pulls every piece across once, as a
// node that needs the package itself (no relay stage: it is one of the site's nodes), and the
// site's other nodes take the pieces from it and from each other. Nodes of the origin's site
// keep cross-site connections with the other sites' gateways only, and take nothing from them
// (Torrent.farFromOriginSite). Only the origin's site fetches from the origin; a gateway does
// too when it knows no peer in the origin's site.
//
// Every node works the gateway out from the same tracker answers, so the nodes agree; when
// they do not (a node that has not heard of a lower address yet), a site has two gateways
// for a while, which costs link bytes, not correctness. A node that has completed no piece
// for Config.StallTimeout drops the rule, so a dead or stuck gateway cannot strand its site.
//
// The rule needs a topology (Config.Topology) that places this node and the origin
// (Package.OriginAddrs) in sites; without one every peer is allowed, as before.

// sitePolicy is one moment's view of the rule for one torrent.
type sitePolicy struct {
	on         bool
	m          *topology.Map
	self       netip.Addr
	site       string
	originSite string
	gateway    bool                  // this node is its site's gateway
	gateways   map[string]netip.Addr // the gateway of every site, by the known peers
	originPeer bool                  // a peer of the origin's site is known
}

// newSitePolicy works the rule out for a node at self that knows the peers known, with the
// origin at originAddrs (the first one placed in a site counts).
func newSitePolicy(m *topology.Map, self netip.Addr, originAddrs []netip.Addr, known []netip.AddrPort) sitePolicy {
	p := sitePolicy{m: m, self: self.Unmap()}
	if m == nil || !p.self.IsValid() || p.self.IsUnspecified() {
		return p
	}
	p.site = m.Site(p.self)
	p.originSite = originSite(m, originAddrs)
	if p.site == "" || p.originSite == "" {
		return p
	}
	p.on = true
	p.gateways = map[string]netip.Addr{p.site: p.self}
	for _, ap := range known {
		a := ap.Addr().Unmap()
		s := m.Site(a)
		if s == "" {
			continue
		}
		if s == p.originSite {
			p.originPeer = true
		}
		if g, ok := p.gateways[s]; !ok || a.Less(g) {
			p.gateways[s] = a
		}
	}
	p.gateway = p.site != p.originSite && p.gateways[p.site] == p.self
	return p
}

// originSite is the site of the first of originAddrs that m places in one, or "".
func originSite(m *topology.Map, originAddrs []netip.Addr) string {
	for _, a := range originAddrs {
		if s := m.Site(a); s != "" {
			return s
		}
	}
	return ""
}

// allowPeer reports whether this node may be connected to a peer at a.
func (p sitePolicy) allowPeer(a netip.Addr) bool {
	if !p.on {
		return true
	}
	a = a.Unmap()
	s := p.m.Site(a)
	switch {
	case s == "" || s == p.site:
		return true
	case p.site == p.originSite:
		// Serve the other sites' gateways, nobody else of theirs.
		return p.gateways[s] == a
	default:
		return p.gateway
	}
}

// allowOrigin reports whether this node may fetch from the origin.
func (p sitePolicy) allowOrigin() bool {
	return !p.on || p.site == p.originSite || (p.gateway && !p.originPeer)
}
