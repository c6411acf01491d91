package bt

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/pkgsync/pkgsync/topology"
)

// rankPeers returns addrs without duplicates and without self, closest to self first by
// topology.Closeness; ties keep their given order (a tracker's own ranking survives).
// Without a specific self address the order is left as given.
func rankPeers(self netip.AddrPort, addrs []netip.AddrPort, m *topology.Map) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(addrs))
	seen := make(map[netip.AddrPort]bool, len(addrs))
	for _, a := range addrs {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !a.IsValid() || a.Port() == 0 || a == self || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	if !self.Addr().IsValid() || self.Addr().IsUnspecified() {
		return out
	}
	score := make(map[netip.AddrPort]int, len(out))
	for _, a := range out {
		score[a] = topology.Closeness(m, self.Addr(), a.Addr())
	}
	slices.SortStableFunc(out, func(a, b netip.AddrPort) int {
		return cmp.Compare(score[b], score[a])
	})
	return out
}
