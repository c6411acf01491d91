package report

import (
	"bytes"
	"cmp"
	"fmt"
	"iter"
	"maps"
	"math"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/origin"
)

// DefaultGap is Options.Gap's default: a package whose tracker heard nothing of it for longer
// starts a new rollout. Peers re-announce every 30 s to a minute while they run, so a rollout
// stays one as long as any peer of it runs.
const DefaultGap = 10 * time.Minute

// accessSlack widens a rollout's window in the access log: a node fetches the .torrent (and
// may start on the origin's pieces) before its first announce, and the log stamps a request
// when its reply ends.
const accessSlack = time.Minute

// Package is what a .torrent tells of a package.
type Package struct {
	Name string
	Size int64
	Path string // the package's path on the origin (its url-list), "" when unknown
}

// Options are the sources besides the announce log; the zero value uses none.
type Options struct {
	// Gap splits a package's announces into rollouts; zero means DefaultGap.
	Gap time.Duration
	// Packages gives exact sizes, names and origin paths by info hash.
	Packages map[[20]byte]Package
	// Access is the origin's access log: the origin's share of each rollout is the body bytes
	// it sent for the package's path during the rollout.
	Access []AccessEntry
	// Stats is the origin's /.pkgsync/stats: the origin's share of a package that had one
	// rollout in the log (its counters cover the whole life of the server).
	Stats *origin.Stats
}

// Rollout is one package's fan-out: the announces of one info hash with no pause longer than
// Options.Gap between them.
type Rollout struct {
	InfoHash   [20]byte
	Name       string // from a .torrent or the origin's path; "" when unknown
	N, Of      int    // rollout N of the Of rollouts of this package in the log
	Start, End time.Time
	// Size is the package's size: from a .torrent (SizeExact), or the largest "left" announced.
	Size      int64
	SizeExact bool
	Peers     []Peer // by address
	Origin    Origin
	Spread    Spread
}

// Peer is one BitTorrent session (peer_id) of a rollout.
type Peer struct {
	ID          [20]byte
	Addr        netip.AddrPort
	First, Last time.Time // its first and last announce
	Seed        bool      // it held the whole package at its first announce
	Done        bool      // it completed during the rollout
	Took        time.Duration
	Uploaded    int64 // as last announced
	Downloaded  int64
	Left        int64 // at its last announce; -1 unknown
	// LastEvent is its last announce's event: "stopped" when it said goodbye, so its counters
	// are final.
	LastEvent string
}

// Origin is what the origin sent of the package during the rollout.
type Origin struct {
	Bytes int64
	Known bool
	From  string // "access log /pkg.tar", "stats /pkg.tar" or "peers' counters, a lower bound"
	// Diff is what the peers downloaded beyond what they uploaded: the bytes that came from
	// outside the swarm, the origin's web seed for pkgsync nodes.
	Diff int64
	// Note says why the access log or stats given could not be used.
	Note string
}

// Spread is the completion times of the rollout's nodes (peers that were not seeds).
type Spread struct {
	Nodes, Done           int
	Min, Median, P90, Max time.Duration
}

// Share is b as a share of the package.
func (r *Rollout) Share(b int64) float64 {
	if r.Size <= 0 {
		return 0
	}
	return float64(b) / float64(r.Size)
}

// Summarize splits announces into rollouts, by package and then by Options.Gap, and sums each
// up. Rollouts come in order of their start.
func Summarize(announces []Announce, opt Options) []*Rollout {
	if opt.Gap <= 0 {
		opt.Gap = DefaultGap
	}
	byHash := map[[20]byte][]Announce{}
	for _, a := range announces {
		byHash[a.InfoHash] = append(byHash[a.InfoHash], a)
	}
	var out []*Rollout
	for ih, as := range byHash {
		slices.SortStableFunc(as, func(a, b Announce) int { return a.Time.Compare(b.Time) })
		var groups [][]Announce
		start := 0
		for i := 1; i <= len(as); i++ {
			if i == len(as) || as[i].Time.Sub(as[i-1].Time) > opt.Gap {
				groups = append(groups, as[start:i])
				start = i
			}
		}
		for n, g := range groups {
			r := summarize(ih, g, opt)
			r.N, r.Of = n+1, len(groups)
			out = append(out, r)
		}
	}
	for _, r := range out {
		inAccess, inStats := alone(r, out, len(byHash))
		r.Origin = originShare(r, opt, inAccess, inStats)
	}
	slices.SortFunc(out, func(a, b *Rollout) int {
		return cmp.Or(a.Start.Compare(b.Start), bytes.Compare(a.InfoHash[:], b.InfoHash[:]))
	})
	return out
}

// summarize sums up the announces of one rollout, sorted by time.
func summarize(ih [20]byte, as []Announce, opt Options) *Rollout {
	r := &Rollout{InfoHash: ih, Start: as[0].Time, End: as[len(as)-1].Time}
	peers := map[[20]byte]*Peer{}
	for _, a := range as {
		r.Size = max(r.Size, a.Left)
		p := peers[a.PeerID]
		if p == nil {
			p = &Peer{ID: a.PeerID, Addr: a.Peer, First: a.Time, Seed: a.Left == 0}
			peers[a.PeerID] = p
		}
		p.Last, p.Left, p.LastEvent = a.Time, a.Left, a.Event
		p.Uploaded, p.Downloaded = max(p.Uploaded, a.Uploaded), max(p.Downloaded, a.Downloaded)
		if !p.Seed && !p.Done && (a.Event == "completed" || a.Left == 0) {
			p.Done, p.Took = true, a.Time.Sub(p.First)
		}
	}
	if pkg, ok := opt.Packages[ih]; ok {
		r.Name, r.Size, r.SizeExact = pkg.Name, pkg.Size, true
	}
	var took []time.Duration
	for _, p := range peers {
		r.Peers = append(r.Peers, *p)
		r.Origin.Diff += p.Downloaded - p.Uploaded
		if !p.Seed {
			r.Spread.Nodes++
			if p.Done {
				took = append(took, p.Took)
			}
		}
	}
	r.Origin.Diff = max(r.Origin.Diff, 0)
	slices.SortFunc(r.Peers, func(a, b Peer) int {
		return cmp.Or(a.Addr.Compare(b.Addr), bytes.Compare(a.ID[:], b.ID[:]))
	})
	r.Spread.Done = len(took)
	if len(took) > 0 {
		slices.Sort(took)
		r.Spread.Min, r.Spread.Max = took[0], took[len(took)-1]
		r.Spread.Median, r.Spread.P90 = quantile(took, 0.5), quantile(took, 0.9)
	}
	return r
}

// quantile interpolates linearly between the closest ranks of sorted (numpy's default).
func quantile(sorted []time.Duration, q float64) time.Duration {
	pos := q * float64(len(sorted)-1)
	i := int(math.Floor(pos))
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(i)
	return sorted[i] + time.Duration(math.Round(frac*float64(sorted[i+1]-sorted[i])))
}

// alone reports whether the origin's only package path may be taken for r's package: in the
// access log, when no other package's rollout overlaps r's window there; in the stats, which
// cover the server's whole life, when the log holds one package only.
func alone(r *Rollout, all []*Rollout, packages int) (inAccess, inStats bool) {
	from, to := r.Start.Add(-accessSlack), r.End.Add(accessSlack)
	for _, o := range all {
		if o.InfoHash != r.InfoHash && !o.End.Add(accessSlack).Before(from) && !o.Start.Add(-accessSlack).After(to) {
			return false, packages == 1
		}
	}
	return true, packages == 1
}

const fromCounters = "peers' counters, a lower bound"

// originShare finds what the origin sent of r's package: from the access log, else the stats,
// else the peers' counters.
func originShare(r *Rollout, opt Options, aloneInAccess, aloneInStats bool) Origin {
	o := Origin{Diff: r.Origin.Diff}
	pkgPath := opt.Packages[r.InfoHash].Path
	if opt.Access != nil {
		from, to := r.Start.Add(-accessSlack), r.End.Add(accessSlack)
		var window []AccessEntry
		for _, e := range opt.Access {
			if !e.Time.Before(from) && !e.Time.After(to) && e.Method == "GET" && (e.Status == 200 || e.Status == 206) {
				window = append(window, e)
			}
		}
		p, note := choosePath(pkgPath, r.Name, aloneInAccess, func(yield func(string) bool) {
			for _, e := range window {
				if !yield(e.Path) {
					return
				}
			}
		})
		if p != "" {
			for _, e := range window {
				if e.Path == p {
					o.Bytes += e.Bytes
				}
			}
			o.Known, o.From = true, "access log "+p
			r.setName(p)
			return o
		}
		o.Note = "access log: " + note
	} else if opt.Stats != nil {
		p, note := choosePath(pkgPath, r.Name, aloneInStats, maps.Keys(opt.Stats.Files))
		switch {
		case p != "" && r.Of > 1:
			o.Note = fmt.Sprintf("stats: %s counts all %d rollouts of the package", p, r.Of)
		case p != "":
			o.Bytes, o.Known, o.From = opt.Stats.Files[p].BodyBytes, true, "stats "+p
			r.setName(p)
			return o
		default:
			o.Note = "stats: " + note
		}
	}
	o.Bytes, o.Known, o.From = o.Diff, true, fromCounters
	return o
}

// setName names the rollout after its origin path when no .torrent named it.
func (r *Rollout) setName(p string) {
	if r.Name == "" {
		r.Name = path.Base(p)
	}
}

// choosePath picks the package's path among the origin's: the known one, or the only one named
// after the package, or, when the package is alone, the only path of package data (not a
// manifest, signature, index or tracker path). The note says why none was chosen.
func choosePath(known, name string, alone bool, paths iter.Seq[string]) (string, string) {
	seen := map[string]bool{}
	var data, named []string
	for p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		if !isDataPath(p) {
			continue
		}
		data = append(data, p)
		if name != "" && path.Base(p) == name {
			named = append(named, p)
		}
	}
	switch {
	case known != "":
		if !seen[known] {
			return "", fmt.Sprintf("no request for %s", known)
		}
		return known, ""
	case len(named) == 1:
		return named[0], ""
	case len(data) == 0:
		return "", "no request for package data"
	case len(data) == 1 && alone:
		return data[0], ""
	case len(data) == 1:
		return "", fmt.Sprintf("%s may be another package's, which the log also holds; give the package's .torrent with --torrent", data[0])
	}
	slices.Sort(data)
	return "", fmt.Sprintf("requests for %d packages (%s); give the package's .torrent with --torrent", len(data), strings.Join(data, ", "))
}

func isDataPath(p string) bool {
	for _, s := range []string{".torrent", ".zsync", ".sig", "/index.json"} {
		if strings.HasSuffix(p, s) {
			return false
		}
	}
	return p != "/announce" && p != "/scrape" && !strings.HasPrefix(p, "/.pkgsync/") && p != "/"
}

// LoadTorrent reads what report needs of a .torrent: its info hash, name, size and the path
// of its first web seed (url-list) on the origin.
func LoadTorrent(file string) ([20]byte, Package, error) {
	mi, err := metainfo.LoadFromFile(file)
	if err != nil {
		return [20]byte{}, Package{}, fmt.Errorf("%s: %w", file, err)
	}
	info, err := mi.UnmarshalInfo()
	if err != nil {
		return [20]byte{}, Package{}, fmt.Errorf("%s: info dictionary: %w", file, err)
	}
	pkg := Package{Name: info.BestName(), Size: info.TotalLength()}
	if len(mi.UrlList) > 0 {
		if u, err := url.Parse(mi.UrlList[0]); err == nil {
			pkg.Path = u.Path
			if strings.HasSuffix(pkg.Path, "/") { // BEP 19: a folder URL; the file is under it
				pkg.Path += pkg.Name
			}
		}
	}
	return mi.HashInfoBytes(), pkg, nil
}
