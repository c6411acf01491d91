package swarmsim

import "math"

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
	each   float64 // cap over the flows on the link: a flow's share of it
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
		lk := &nw.links[l]
		lk.flows = append(lk.flows, f)
		lk.each = lk.cap / float64(len(lk.flows))
	}
	f.rate = nw.share(f)
	f.finish = now + (f.size-f.done)/f.rate
	nw.heap.push(f)
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
		l.each = l.cap / float64(len(l.flows))
	}
	nw.heap.remove(f.heapIdx)
	for i := range f.nlinks {
		nw.changed(now, f.links[i], nil)
	}
	return moved
}

// share is the rate f gets: the smallest equal share of its links.
func (nw *network) share(f *flow) float64 {
	r := nw.links[f.links[0]].each
	for i := 1; i < f.nlinks; i++ {
		r = min(r, nw.links[f.links[i]].each)
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
		nw.heap.earlier(g.heapIdx)
	}
}

// flowHeap orders flows by completion time, then by id, so that runs are deterministic. It
// holds tens of thousands of flows and every rate change may move one, so it is 4-ary (half
// the levels of a binary heap) and keeps each flow's key beside its pointer (comparisons read
// no flow).
//
// A key is a lower bound of its flow's finish, not always the finish: a flow whose finish
// moves later (a flow joined one of its links: half of all rate changes) keeps its key and
// stays where it is, and is moved down only once it comes to the top (next). A finish that
// moves earlier lowers the key at once (earlier). The first flow whose key is its finish
// with no key below it is the one that completes first, as with exact keys.
type flowHeap []heapEntry

type heapEntry struct {
	finish float64
	id     uint64
	f      *flow
}

func (a *heapEntry) before(b *heapEntry) bool {
	return a.finish < b.finish || a.finish == b.finish && a.id < b.id
}

// next is the flow that completes first; the heap must not be empty.
func (h flowHeap) next() *flow {
	for h[0].finish != h[0].f.finish {
		h[0].finish = h[0].f.finish
		h.down(0)
	}
	return h[0].f
}

// earlier takes the new finish of the flow at index i into account: a later one stays a
// lower bound until next meets it, an earlier one moves the flow up at once.
func (h flowHeap) earlier(i int) {
	if f := h[i].f.finish; f < h[i].finish {
		h[i].finish = f
		h.up(i)
	}
}

func (h *flowHeap) push(f *flow) {
	*h = append(*h, heapEntry{f.finish, f.id, f})
	h.up(len(*h) - 1)
}

// remove takes out the flow at index i.
func (h *flowHeap) remove(i int) {
	last := len(*h) - 1
	if i != last {
		(*h)[i] = (*h)[last]
		(*h)[i].f.heapIdx = i
	}
	*h = (*h)[:last]
	if i != last {
		h.fix(i)
	}
}

// fix restores the order after the flow at index i changed its finish.
func (h flowHeap) fix(i int) {
	h[i].finish = h[i].f.finish
	if !h.down(i) {
		h.up(i)
	}
}

func (h flowHeap) up(i int) {
	e := h[i]
	for i > 0 {
		p := (i - 1) / 4
		if !e.before(&h[p]) {
			break
		}
		h[i] = h[p]
		h[i].f.heapIdx = i
		i = p
	}
	h[i] = e
	e.f.heapIdx = i
}

// down moves the entry at i towards the leaves; it reports whether it moved.
func (h flowHeap) down(i int) bool {
	e, start, n := h[i], i, len(h)
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		best := c
		for k := c + 1; k < min(c+4, n); k++ {
			if h[k].before(&h[best]) {
				best = k
			}
		}
		if !h[best].before(&e) {
			break
		}
		h[i] = h[best]
		h[i].f.heapIdx = i
		i = best
	}
	h[i] = e
	e.f.heapIdx = i
	return i != start
}
