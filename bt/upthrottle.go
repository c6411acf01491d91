package bt

import (
	"slices"
	"time"
)

// upThrottle decides when a downloading node should cap its own upload: when it falls behind
// its peers because its upload link is full.
//
// A node's requests and TCP acknowledgements leave on its upload link, queued behind the
// piece data it sends. When that link stays full, they wait the whole queue, the flows that
// bring the node its data slow down against the others at each sender, and the node
// downloads well below its link while it uploads more than the swarm's average: it finishes
// seconds after the others, and its download comes back to full speed the moment the others
// are done and its uploads stop (the swarm benchmark's figures are in docs/BENCHMARKS.md).
//
// The rule, decided once a second over the last upWindow: a node whose download rate is
// below upDownRatio of its upload rate, and that holds fewer pieces than the median of its
// downloading peers by more than upBehind of the torrent, caps its upload at upCapFraction of
// its average upload rate since the download began, which drains the queue in about a
// second. Not of the window's rate: bytes handed to the sockets over a few seconds can exceed
// what the link carried by what the socket buffers took in, so a cap below the window's rate
// may not bind. Over the whole download that excess is small. The average leaves out the time spent capped, so caps do not ratchet down.
//
// The cap is lifted once the node holds as many pieces as that median, or after upCapMax: a
// node behind for another reason (it started late) would otherwise stay capped for the rest
// of the download. The rule then waits for a whole window without the cap before it decides
// again. Nodes that keep pace are never capped: the swarm's upload capacity, nearly all used
// in a fan-out, loses only a share of one node's while it catches up.
type upThrottle struct {
	// freeUp bytes were uploaded over freeTime without a cap: the average the cap is set from.
	freeUp   int64
	freeTime time.Duration
	samples  []upSample // oldest first, spanning at least upWindow once full
	decided  time.Time  // the last decision
	since    time.Time  // when the cap was set
	limit    float64    // bytes per second; 0 when not capped
}

type upSample struct {
	at       time.Time
	up, down int64 // bytes uploaded and downloaded so far
}

const (
	upWindow      = 2 * time.Second
	upDecideEvery = time.Second
	upSampleEvery = 250 * time.Millisecond // scheduler rounds come up to 10 times as often
	upDownRatio   = 0.8
	upCapFraction = 0.85
	upBehind      = 0.01
	upCapMax      = 5 * time.Second
	upMinPeers    = 3 // fewer downloading peers say too little about the swarm's pace
)

// due reports whether a sample is due at now: the counters cost a pass over the connections
// under the client lock, so the caller reads them only then.
func (u *upThrottle) due(now time.Time) bool {
	n := len(u.samples)
	return n == 0 || now.Sub(u.samples[n-1].at) >= upSampleEvery
}

// update records the counters at now and returns the upload cap in bytes per second (0 for
// none) and whether it changed. mine is how many pieces this node holds, peers how many
// each downloading peer holds, num the torrent's piece count.
func (u *upThrottle) update(now time.Time, up, down int64, mine int, peers []int, num int) (limit float64, changed bool) {
	if n := len(u.samples); n > 0 && u.limit == 0 {
		last := u.samples[n-1]
		u.freeUp += up - last.up
		u.freeTime += now.Sub(last.at)
	}
	u.samples = append(u.samples, upSample{now, up, down})
	// Keep one sample at least upWindow old, and nothing older than it.
	for len(u.samples) > 2 && now.Sub(u.samples[1].at) >= upWindow {
		u.samples = u.samples[1:]
	}
	if now.Sub(u.decided) < upDecideEvery {
		return u.limit, false
	}
	first := u.samples[0]
	span := now.Sub(first.at)
	if span < upWindow || len(peers) < upMinPeers {
		return u.limit, false
	}
	u.decided = now
	median := medianOf(peers)
	was := u.limit
	switch {
	case u.limit > 0 && (float64(mine) >= median || now.Sub(u.since) >= upCapMax):
		u.limit = 0                              // caught up, or behind for another reason
		u.samples = u.samples[len(u.samples)-1:] // the next window starts without the cap
	case u.limit == 0 && float64(mine) < median-upBehind*float64(num):
		upRate := float64(up-first.up) / span.Seconds()
		downRate := float64(down-first.down) / span.Seconds()
		if upRate > 0 && downRate < upDownRatio*upRate {
			avg := float64(u.freeUp) / u.freeTime.Seconds()
			u.limit, u.since = upCapFraction*avg, now
		}
	}
	return u.limit, u.limit != was
}

func medianOf(v []int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return float64(s[n/2])
	}
	return float64(s[n/2-1]+s[n/2]) / 2
}
