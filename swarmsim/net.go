package swarmsim

import (
	"container/heap"
	"math"
)

// The network is a set of links, each with a capacity in bytes per second, and flows, one per
// piece in transfer, each crossing a few links (the sender's upload, the receiver's download,
// and the rack and inter-site links on the way when they are capped). A flow's rate is the
// smallest equal share of the links it crosses: capacity over the number of flows on the
// link. When a flow starts or ends, only the flows on its links get new rates and new
// completion times, so an event costs the flows of a few links, not of the whole network.
//
// A link that carries more than lazyFlows flows (the origin's upload, under a policy that
// opens a fetch per node) shares out its capacity again only once its count of flows has moved
// by more than lazyDrift since it last did, and then at most every lazyPeriod: a flow that
// joins gets its share at once, the others keep theirs until then. That keeps the cost per
// event independent of the number of nodes; such a link carries up to about lazyDrift more or
// less than its capacity.
const (
	lazyFlows  = 256
	lazyDrift  = 0.01
	lazyPeriod = 0.002 // seconds
)

type link struct {
	cap    float64
	flows  []*flow
	dirty  bool // a lazy link whose flows' rates are stale
	sched  bool // a refresh is scheduled
	shared int  // flows when the capacity was last shared out
	linkID int32
}

// maxLinks is the most links a flow crosses: upload, rack up, inter-site, rack down, download.
const maxLinks = 5

type flow struct {
	id       uint64
	src, dst int32 // node indexes; src is -1 for the origin
	piece    int32
	links    [maxLinks]int32
	pos      [maxLinks]int32
	nlinks   int
	size     float64 // bytes
	done     float64 // bytes moved as of at
	rate     float64
	at       float64
	finish   float64
	heapIdx  int
	crossing bool // between sites
}

// network holds the links and the flows in order of completion.
type network struct {
	links  []link
	heap   flowHeap
	nextID uint64
	// refresh is called to schedule a lazy link's refresh at the given time.
	refresh func(t float64, l int32)
}

func (nw *network) addLink(cap float64) int32 {
	nw.links = append(nw.links, link{cap: cap, linkID: int32(len(nw.links))})
	return int32(len(nw.links) - 1)
}

// start adds a flow of size bytes over the given links at time now.
func (nw *network) start(now float64, f *flow, links []int32) {
	nw.nextID++
	f.id = nw.nextID
	f.at = now
	f.nlinks = len(links)
	for i, l := range links {
		f.links[i] = l
		f.pos[i] = int32(len(nw.links[l].flows))
		nw.links[l].flows = append(nw.links[l].flows, f)
	}
	f.rate = nw.share(f)
	f.finish = now + (f.size-f.done)/f.rate
	heap.Push(&nw.heap, f)
	for _, l := range links {
		nw.changed(now, l, f)
	}
}

// stop removes flow f at time now (completed or aborted) and returns the bytes it moved.
func (nw *network) stop(now float64, f *flow) float64 {
	moved := min(f.size, f.done+f.rate*(now-f.at))
	for i := range f.nlinks {
		l := &nw.links[f.links[i]]
		last := l.flows[len(l.flows)-1]
		// Find last's slot on this link to update its position.
		for j := range last.nlinks {
			if last.links[j] == f.links[i] {
				last.pos[j] = f.pos[i]
			}
		}
		l.flows[f.pos[i]] = last
		l.flows = l.flows[:len(l.flows)-1]
	}
	heap.Remove(&nw.heap, f.heapIdx)
	for i := range f.nlinks {
		nw.changed(now, f.links[i], nil)
	}
	return moved
}

// share is the rate f gets: the smallest equal share of its links.
func (nw *network) share(f *flow) float64 {
	r := 0.0
	for i := range f.nlinks {
		l := &nw.links[f.links[i]]
		s := l.cap / float64(len(l.flows))
		if i == 0 || s < r {
			r = s
		}
	}
	return r
}

// changed gives the flows of link l new rates after its count of flows changed (except
// skip, which has its rate already).
func (nw *network) changed(now float64, l int32, skip *flow) {
	lk := &nw.links[l]
	if n := len(lk.flows); n > lazyFlows {
		lk.dirty = true
		if !lk.sched && math.Abs(float64(n-lk.shared)) > lazyDrift*float64(lk.shared) {
			lk.sched = true
			nw.refresh(now+lazyPeriod, l)
		}
		return
	}
	nw.rerate(now, lk, skip)
}

// refreshLink is the scheduled refresh of a lazy link.
func (nw *network) refreshLink(now float64, l int32) {
	lk := &nw.links[l]
	lk.sched = false
	if lk.dirty {
		nw.rerate(now, lk, nil)
	}
}

func (nw *network) rerate(now float64, lk *link, skip *flow) {
	lk.dirty, lk.shared = false, len(lk.flows)
	for _, g := range lk.flows {
		if g == skip {
			continue
		}
		r := nw.share(g)
		if r == g.rate {
			continue
		}
		g.done = min(g.size, g.done+g.rate*(now-g.at))
		g.at, g.rate = now, r
		g.finish = now + (g.size-g.done)/r
		heap.Fix(&nw.heap, g.heapIdx)
	}
}

// flowHeap orders flows by completion time, then by id, so that runs are deterministic.
type flowHeap []*flow

func (h flowHeap) Len() int { return len(h) }
func (h flowHeap) Less(i, j int) bool {
	if h[i].finish != h[j].finish {
		return h[i].finish < h[j].finish
	}
	return h[i].id < h[j].id
}
func (h flowHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *flowHeap) Push(x any) {
	f := x.(*flow)
	f.heapIdx = len(*h)
	*h = append(*h, f)
}
func (h *flowHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	*h = old[:len(old)-1]
	return f
}
