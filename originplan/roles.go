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
// IdleGrace, as under the member rules. One this node is not connected to shows nothing: it
// may be working for peers this node does not see, whose pieces reach this node through
// them, so it counts as idle only while this node is stalled (its peers bring nothing, as
// when that holder died). A vacant slot (a zero ID: its holder stopped or fell silent, or
// fewer nodes than slots need data) is an orphan at once: every fetcher takes its block from
// the end, each leaving a different number of its last open pieces (ThiefSkip), and the next
// holder walks it from the start. A swarm with fewer nodes than slots thus shares the vacant
// blocks out among all its fetchers.
func (pl *Planner) slotBlocks(now time.Time, role Role, members []Member, stalled bool) blockView {
	outstanding := pl.outstanding
	clear(outstanding)
	for _, m := range members {
		outstanding[m.ID] += m.Outstanding
	}
	nm := len(role.Fetchers)
	pl.idle = slices.Grow(pl.idle[:0], nm)[:nm]
	pl.orphan = slices.Grow(pl.orphan[:0], nm)[:nm]
	idle, orphan := pl.idle, pl.orphan
	clear(idle)
	clear(orphan)
	for k, id := range role.Fetchers {
		if k == role.Slot {
			continue
		}
		if id == (PeerID{}) {
			idle[k], orphan[k] = true, true
			continue
		}
		n, seen := outstanding[id]
		idle[k], orphan[k] = pl.idleFor(now, id, n > 0 || (!seen && !stalled))
	}
	return blockView{nm: nm, rank: role.Slot, idle: idle, orphan: orphan}
}
