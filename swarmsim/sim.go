package swarmsim

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/pkgsync/pkgsync/originplan"
)

// Timer kinds.
const (
	evStart = iota
	evRound
	evRoundNow // a round right after an origin fetch ended; schedules no further round
	evAnnounce
	evKill
	evRestart
	evRefresh
)

// roundTick is how often a node's scheduler runs a round (bt's tick).
const roundTick = 0.25

// quickAnnounce is the re-announce period while a node knows no peer (bt's quickReannounce).
const quickAnnounce = 0.25

// peerTTL is how long a tracker lists a peer after its last announce (3 intervals).
const peerTTLIntervals = 3

// siteStall is how long the site rule may starve a node before it drops the rule (bt's
// siteStallFactor times StallTimeout).
const siteStall = 15.0

type timer struct {
	t    float64
	seq  uint64
	kind uint8
	a    int32 // node or link
	gen  int32 // the node's life the timer belongs to
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].t != h[j].t {
		return h[i].t < h[j].t
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// sim is one run of a scenario.
type sim struct {
	sc     Scenario
	pieces int
	rng    *rand.Rand
	now    float64
	base   time.Time // the simulation's time zero, for originplan
	nw     network
	timers timerHeap
	seq    uint64

	nodes      []*node
	originUp   int32
	rackUp     []int32 // by rack (global index); -1 without a cap
	rackDown   []int32
	interSite  [][]int32 // [from][to]; -1 without a cap
	have0      []bool    // the pieces every node starts with
	words      int       // the length of a piece bitset
	haves      []uint64  // every node's have bitset, one after the other
	avail      []uint64  // every node's avail bitset, one after the other
	done       []bool    // by node: alive and complete
	starved    []bool    // by node: wants a piece no peer it can ask has
	cand       bitset    // scratch: a node's wanted pieces
	racksBy    [][]int32 // listed nodes per rack, in order of first announce
	rackOrder  [][]int32 // per rack, every rack by closeness to it
	listed     []int32   // every node that ever announced, in order
	stamp      []uint32  // scratch: claims seen in the current round
	ownStamp   []uint32  // scratch: this node's origin fetches in the current round
	stampN     uint32
	pickMark   []uint32 // scratch for the stock tracker's samples
	pickN      uint32
	slots      *originplan.Slots           // pkgsync's tracker: the origin fetchers
	held       []originplan.SlotHolder     // scratch of node.round: the slots connected fetchers hold
	byID       map[originplan.PeerID]int32 // node by its current peer ID
	liveDone   int                         // nodes alive and complete
	pendingRes int                         // nodes killed and not yet restarted
	free       []*flow
	todo       []int // the pieces no node has at the start, every node's todo
	events     int64
	maxFlows   int // the most flows the origin's link carried at once

	originBytes float64
	crossBytes  [][]float64 // [from site][to site]
	wasted      float64
}

// Run simulates the scenario and returns its figures. It returns ctx's error if ctx ends first.
func Run(ctx context.Context, sc Scenario) (*Result, error) {
	s, err := newSim(sc)
	if err != nil {
		return nil, err
	}
	if err := s.loop(ctx); err != nil {
		return nil, fmt.Errorf("scenario %q: %w", sc.Name, err)
	}
	return s.result(), nil
}

func newSim(sc Scenario) (*sim, error) {
	sc, err := sc.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &sim{sc: sc, pieces: int((sc.Size + sc.PieceSize - 1) / sc.PieceSize),
		rng: rand.New(rand.NewPCG(sc.Seed, 0x5157a5e1)), base: time.Unix(0, 0)}
	s.nw.refresh = func(t float64, l int32) { s.after(t, evRefresh, l, 0) }
	s.slots = originplan.NewSlots(sc.Fetchers, peerTTLIntervals*sc.Interval)
	s.byID = make(map[originplan.PeerID]int32, sc.Nodes)
	s.stamp = make([]uint32, s.pieces)
	s.ownStamp = make([]uint32, s.pieces)
	s.pickMark = make([]uint32, sc.Nodes)
	s.have0 = make([]bool, s.pieces)
	s.cand = newBitset(s.pieces)
	for p := range s.pieces {
		s.have0[p] = s.rng.Float64() < sc.Have
	}
	for p := range s.pieces {
		if !s.have0[p] {
			s.todo = append(s.todo, p)
		}
	}
	s.buildNet()
	s.buildNodes()
	return s, nil
}

// buildNet makes the shared links: the origin's upload, rack links and inter-site links.
func (s *sim) buildNet() {
	sc := s.sc
	s.originUp = s.nw.addLink(sc.OriginRate)
	racks := sc.Sites * sc.Racks
	s.rackUp, s.rackDown = make([]int32, racks), make([]int32, racks)
	for r := range racks {
		s.rackUp[r], s.rackDown[r] = -1, -1
		if sc.RackRate > 0 {
			s.rackUp[r], s.rackDown[r] = s.nw.addLink(sc.RackRate), s.nw.addLink(sc.RackRate)
		}
	}
	s.interSite = make([][]int32, sc.Sites)
	s.crossBytes = make([][]float64, sc.Sites)
	for a := range sc.Sites {
		s.interSite[a] = make([]int32, sc.Sites)
		s.crossBytes[a] = make([]float64, sc.Sites)
		for b := range sc.Sites {
			s.interSite[a][b] = -1
			if a != b && sc.InterSiteRate > 0 {
				s.interSite[a][b] = s.nw.addLink(sc.InterSiteRate)
			}
		}
	}
	s.racksBy = make([][]int32, racks)
	s.rackOrder = make([][]int32, racks)
	for r := range racks {
		order := make([]int32, racks)
		for i := range order {
			order[i] = int32(i)
		}
		sortStable(order, func(a, b int32) bool { return rackCloseness(s.sc, r, int(a)) > rackCloseness(s.sc, r, int(b)) })
		s.rackOrder[r] = order
	}
}

// buildNodes places the nodes in sites and racks (round robin over racks, sites in turn) and
// schedules their starts and deaths.
func (s *sim) buildNodes() {
	sc := s.sc
	racks := sc.Sites * sc.Racks
	b := s.bound()
	s.words = len(newBitset(s.pieces))
	s.haves, s.avail = make([]uint64, sc.Nodes*s.words), make([]uint64, sc.Nodes*s.words)
	s.done, s.starved = make([]bool, sc.Nodes), make([]bool, sc.Nodes)
	for i := range sc.Nodes {
		rack := i % racks
		n := &node{s: s, idx: int32(i), rack: int32(rack), site: int32(rack / sc.Racks),
			host: int32(i/racks + 1)}
		n.up, n.down = s.nw.addLink(sc.NodeRate), s.nw.addLink(sc.NodeRate)
		n.have = s.haves[i*s.words : (i+1)*s.words : (i+1)*s.words]
		n.avail = s.avail[i*s.words : (i+1)*s.words : (i+1)*s.words]
		for p := range s.pieces {
			if s.have0[p] {
				n.have.set(p)
				n.haveList = append(n.haveList, uint16(p))
			}
		}
		n.firstStart = s.rng.Float64() * sc.Splay.Seconds()
		s.nodes = append(s.nodes, n)
		s.after(n.firstStart, evStart, int32(i), 0)
	}
	if sc.Churn > 0 {
		for _, i := range s.rng.Perm(sc.Nodes)[:int(math.Round(sc.Churn*float64(sc.Nodes)))] {
			n := s.nodes[i]
			s.after(n.firstStart+s.rng.Float64()*b, evKill, int32(i), 0)
			s.pendingRes++
		}
	}
}

func (s *sim) after(t float64, kind uint8, a, gen int32) {
	s.seq++
	heap.Push(&s.timers, timer{t: t, seq: s.seq, kind: kind, a: a, gen: gen})
}

// limit is how long a run may go on: a swarm that has not finished by then never will.
func (s *sim) limit() float64 {
	return s.sc.Splay.Seconds() + 50*s.bound() + 600
}

func (s *sim) loop(ctx context.Context) error {
	end := s.limit()
	for s.liveDone < s.sc.Nodes || s.pendingRes > 0 {
		tf, tt := math.Inf(1), math.Inf(1)
		if len(s.nw.heap) > 0 {
			tf = s.nw.heap.next().finish
		}
		if len(s.timers) > 0 {
			tt = s.timers[0].t
		}
		if math.IsInf(tf, 1) && math.IsInf(tt, 1) || min(tf, tt) > end {
			return nil
		}
		s.events++
		if s.events&(1<<16-1) == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if s.sc.Progress != nil {
				s.sc.Progress(time.Duration(s.now*float64(time.Second)), s.liveDone, int64(s.originBytes))
			}
		}
		if tf <= tt {
			s.now = max(s.now, tf)
			s.flowDone(s.nw.heap.next())
			continue
		}
		t := heap.Pop(&s.timers).(timer)
		s.now = max(s.now, t.t)
		s.fire(t)
	}
	return nil
}

func (s *sim) fire(t timer) {
	if t.kind == evRefresh {
		s.nw.refreshLink(s.now, t.a)
		return
	}
	n := s.nodes[t.a]
	if t.kind != evStart && t.kind != evKill && t.kind != evRestart && t.gen != n.gen {
		return // a timer of an earlier life
	}
	switch t.kind {
	case evStart:
		n.begin()
	case evRestart:
		s.pendingRes--
		n.begin()
	case evKill:
		if !n.alive {
			// Not started yet: it dies later, once it has run for a while.
			s.after(s.now+1, evKill, t.a, 0)
			return
		}
		n.kill()
		s.after(s.now+s.sc.Down.Seconds(), evRestart, t.a, 0)
	case evRound:
		if n.alive && !n.complete {
			s.after(s.now+roundTick, evRound, t.a, n.gen)
			n.round()
		}
	case evRoundNow:
		if n.alive && !n.complete {
			n.round()
		}
	case evAnnounce:
		if n.alive {
			n.announce()
		}
	default:
		panic(fmt.Sprintf("swarmsim: unknown timer kind %d", t.kind))
	}
}

// peerHas reports whether node q has piece p, without reading q's struct.
func (s *sim) peerHas(q int32, p int) bool {
	return s.haves[int(q)*s.words+p>>6]&(1<<(p&63)) != 0
}

// pieceSize is the length of piece p (the last one may be short).
func (s *sim) pieceSize(p int) float64 {
	return float64(min(s.sc.PieceSize, s.sc.Size-int64(p)*s.sc.PieceSize))
}

// path returns the links of a transfer from src (-1: the origin) to dst.
func (s *sim) path(buf *[maxLinks]int32, src, dst *node) []int32 {
	links := buf[:0]
	srcSite := int32(0)
	if src == nil {
		links = append(links, s.originUp)
	} else {
		links = append(links, src.up)
		srcSite = src.site
		if src.rack != dst.rack && s.rackUp[src.rack] >= 0 {
			links = append(links, s.rackUp[src.rack])
		}
	}
	if srcSite != dst.site && s.interSite[srcSite][dst.site] >= 0 {
		links = append(links, s.interSite[srcSite][dst.site])
	}
	if (src == nil || src.rack != dst.rack) && s.rackDown[dst.rack] >= 0 {
		links = append(links, s.rackDown[dst.rack])
	}
	return append(links, dst.down)
}

// transfer starts moving piece p from src (nil: the origin) to dst.
func (s *sim) transfer(src, dst *node, p int) *flow {
	f := s.newFlow()
	*f = flow{src: -1, dst: dst.idx, piece: int32(p), size: s.pieceSize(p)}
	if src != nil {
		f.src = src.idx
		src.ups = append(src.ups, f)
		f.crossing = src.site != dst.site
	} else {
		f.crossing = dst.site != 0
		s.maxFlows = max(s.maxFlows, len(s.nw.links[s.originUp].flows)+1)
	}
	dst.downs = append(dst.downs, f)
	var buf [maxLinks]int32
	s.nw.start(s.now, f, s.path(&buf, src, dst))
	return f
}

// newFlow takes a flow from the free list: a run starts and ends tens of millions.
func (s *sim) newFlow() *flow {
	if k := len(s.free); k > 0 {
		f := s.free[k-1]
		s.free = s.free[:k-1]
		return f
	}
	return new(flow)
}

// end takes flow f off the network and accounts for the bytes it moved.
func (s *sim) end(f *flow) float64 {
	moved := s.nw.stop(s.now, f)
	dst := s.nodes[f.dst]
	dst.recv += moved
	dst.downs = removeFlow(dst.downs, f)
	srcSite := int32(0)
	if f.src >= 0 {
		src := s.nodes[f.src]
		src.sent += moved
		src.ups = removeFlow(src.ups, f)
		srcSite = src.site
	} else {
		s.originBytes += moved
	}
	s.crossBytes[srcSite][dst.site] += moved
	s.free = append(s.free, f)
	return moved
}

func removeFlow(fs []*flow, f *flow) []*flow {
	for i, g := range fs {
		if g == f {
			fs[i] = fs[len(fs)-1]
			return fs[:len(fs)-1]
		}
	}
	panic("swarmsim: flow not found")
}

// flowDone handles the completion of flow f.
func (s *sim) flowDone(f *flow) {
	dst, p, fromOrigin := s.nodes[f.dst], int(f.piece), f.src < 0
	s.end(f) // f is free from here on
	if fromOrigin {
		dst.originDone++
		dst.removeOriginPiece(p)
		dst.got(p)
		if !dst.complete {
			s.after(s.now, evRoundNow, dst.idx, dst.gen)
		}
		return
	}
	dst.peerFlows--
	dst.got(p)
	dst.fill()
}

// at converts simulated seconds into the time originplan takes.
func (s *sim) at(t float64) time.Time {
	return s.base.Add(time.Duration(t * float64(time.Second)))
}

// bound is B: max(U/u_origin, U/d_node, N*U/(u_origin + N*u_node)), and U over the inter-site
// rate with more than one site, where U is the bytes no node has at the start (F without a
// delta).
func (s *sim) bound() float64 {
	u := s.missingBytes()
	sc := s.sc
	n := float64(sc.Nodes)
	b := max(u/sc.OriginRate, u/sc.NodeRate, n*u/(sc.OriginRate+n*sc.NodeRate))
	if sc.Sites > 1 && sc.InterSiteRate > 0 {
		b = max(b, u/sc.InterSiteRate)
	}
	return b
}

// missingBytes is U, the bytes of the pieces the nodes do not have at the start.
func (s *sim) missingBytes() float64 {
	u := 0.0
	for p := range s.pieces {
		if !s.have0[p] {
			u += s.pieceSize(p)
		}
	}
	return u
}

// sortStable is insertion sort by less: the slices it sorts are short (racks).
func sortStable(a []int32, less func(x, y int32) bool) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && less(a[j], a[j-1]); j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
