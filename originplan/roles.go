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
// when that holder died).
//
// A vacant slot (a zero ID: its holder stopped or fell silent, or fewer nodes than slots need
// data) has one heir among the holders (VacantHeirs), which walks its block as its own after
// its own (slotOrder), and whose state the block follows for the others: they take from it
// as from a working holder's block, leaving the heir the steal gap counted over all it walks
// first (heirAhead), and as from an idle or orphaned one when the heir is. When every fetcher
// took from every vacant block at once, they converged on the same last open pieces before
// their claims arrived: four nodes under 16 slots on loopback made the origin send up to
// 2.4 F, a 16-node lab fan-out with 128 slots 1.32 F.
func (pl *Planner) slotBlocks(now time.Time, role Role, members []Member, stalled bool, nt int) blockView {
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
		if k == role.Slot || id == (PeerID{}) {
			continue
		}
		n, seen := outstanding[id]
		idle[k], orphan[k] = pl.idleFor(now, id, n > 0 || (!seen && !stalled))
	}
	heir := pl.vacantHeirs(role.Fetchers, nt)
	for k, h := range heir {
		if h >= 0 && h != role.Slot {
			idle[k], orphan[k] = idle[h], orphan[h] // a vacant block follows its heir
		}
	}
	return blockView{nm: nm, rank: role.Slot, idle: idle, orphan: orphan, heir: heir}
}

// vacantHeirs is VacantHeirs of fetchers for nt pieces of todo, kept between rounds: the list
// changes only when the tracker's answer does.
func (pl *Planner) vacantHeirs(fetchers []PeerID, nt int) []int {
	if pl.heirs == nil || pl.heirsNT != nt || !slices.Equal(fetchers, pl.heirsOf) {
		pl.heirsOf = append(pl.heirsOf[:0], fetchers...)
		pl.heirsNT = nt
		pl.heirs = VacantHeirs(fetchers, func(k int) int {
			return BlockStart(k+1, nt, len(fetchers)) - BlockStart(k, nt, len(fetchers))
		})
	}
	return pl.heirs
}

// VacantHeirs returns, for each slot of fetchers (a Role's list), the slot of the holder that
// takes its block over while the slot is vacant (a zero ID), or -1 for a held slot (and for
// every slot when none is held). size gives the pieces of each slot's block (nil: one each).
// Every fetcher told the same list, for the same pieces, works out the same heirs.
//
// The vacant blocks, from the highest slot down, each go to the holder that inherits the
// fewest pieces so far, the hash of its ID and the slot (rendezvous hashing) breaking ties:
// the holders inherit about as many pieces each, and which blocks depends on the hashes.
func VacantHeirs(fetchers []PeerID, size func(k int) int) []int {
	heirs := make([]int, len(fetchers))
	var held []int
	for k, id := range fetchers {
		heirs[k] = -1
		if id != (PeerID{}) {
			held = append(held, k)
		}
	}
	if len(held) == 0 {
		return heirs
	}
	load := make(map[int]int, len(held))
	for k := len(fetchers) - 1; k >= 0; k-- {
		if fetchers[k] != (PeerID{}) {
			continue
		}
		var best uint64
		for _, j := range held {
			w := heirWeight(fetchers[j], k)
			if h := heirs[k]; h < 0 || load[j] < load[h] || (load[j] == load[h] && w > best) {
				heirs[k], best = j, w
			}
		}
		n := 1
		if size != nil {
			n = size(k)
		}
		load[heirs[k]] += n
	}
	return heirs
}

// heirWeight is the rendezvous weight of holder id for slot k.
func heirWeight(id PeerID, k int) uint64 { return weight(id, uint64(k)) }

// weight is a rendezvous weight of id under salt: FNV-1a over the ID and the salt, then a
// final mix (a finalizer of MurmurHash3) so that IDs that differ in few bytes (pkgsync's
// share a client prefix) still weigh independently.
func weight(id PeerID, salt uint64) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range id {
		h = (h ^ uint64(b)) * 1099511628211
	}
	h = (h ^ salt) * 1099511628211
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
