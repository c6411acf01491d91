package originplan

import (
	"slices"
	"time"
)

// slotBlocks cuts the blocks by the tracker's fetcher slots (role.Fetchers, in slot order):
// every fetcher is told the same holders, so they cut the same blocks whatever part of the
// swarm each is connected to, and this node owns block role.Slot. The other slots' holders
// are its members whether it is connected to them or not; members carries the claims of
// those it is connected to.
//
// A holder whose claims show it working keeps its block. One that shows none is idle after
// IdleGrace, as under the member rules; one this node is not connected to shows nothing, so
// it counts as idle UnseenGrace later (it may be working for peers this node does not see,
// and a mistaken heir costs the pieces both fetch before they meet). A vacant slot (a zero
// ID: its holder stopped or fell silent, and nobody needing data announced since) is idle at
// once: its heir takes its block from the end, and the next holder walks it from the start.
func (pl *Planner) slotBlocks(now time.Time, role Role, members []Member) blockView {
	outstanding := pl.outstanding
	clear(outstanding)
	for _, m := range members {
		outstanding[m.ID] += m.Outstanding
	}
	nm := len(role.Fetchers)
	pl.idle = slices.Grow(pl.idle[:0], nm)[:nm]
	pl.orphan = slices.Grow(pl.orphan[:0], nm)[:nm]
	if len(pl.vacantSince) != nm {
		pl.vacantSince = make([]time.Time, nm)
	}
	idle, orphan := pl.idle, pl.orphan
	clear(idle)
	clear(orphan)
	for k, id := range role.Fetchers {
		if k == role.Slot {
			continue
		}
		if id == (PeerID{}) {
			if pl.vacantSince[k].IsZero() {
				pl.vacantSince[k] = now
			}
			idle[k] = true
			orphan[k] = now.Sub(pl.vacantSince[k]) >= pl.cfg.OrphanAfter
			continue
		}
		pl.vacantSince[k] = time.Time{}
		n, seen := outstanding[id]
		if n > 0 {
			delete(pl.idleSince, id)
			continue
		}
		since, ok := pl.idleSince[id]
		if !ok {
			since = now
			pl.idleSince[id] = now
		}
		late := time.Duration(0)
		if !seen {
			late = pl.cfg.UnseenGrace
		}
		idle[k] = now.Sub(since) >= pl.cfg.IdleGrace+late
		orphan[k] = now.Sub(since) >= pl.cfg.OrphanAfter+late
	}
	return blockView{nm: nm, rank: role.Slot, idle: idle, orphan: orphan}
}
