package bt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/internal/byterange"
	"github.com/pkgsync/pkgsync/originplan"
)

// TestRunWriter checks the bookkeeping of a run's writes: a piece is reported once, when the
// last of its expected bytes is written, whatever the order and cut of the writes (across
// pieces, out of order, overlapping); bytes outside the expected ranges do not count.
func TestRunWriter(t *testing.T) {
	const pl = 100
	tests := []struct {
		name   string
		expect map[int][]Range
		writes []Range
		done   []int // in order
		got    map[int]int64
	}{
		{"one write across pieces", map[int][]Range{0: {rg(0, 100)}, 1: {rg(100, 100)}, 2: {rg(200, 50)}},
			[]Range{rg(0, 250)}, []int{0, 1, 2}, map[int]int64{0: 100, 1: 100, 2: 50}},
		{"out of order", map[int][]Range{3: {rg(300, 100)}, 4: {rg(400, 100)}},
			[]Range{rg(450, 50), rg(300, 100), rg(400, 50)}, []int{3, 4}, map[int]int64{3: 100, 4: 100}},
		{"missing ranges only", map[int][]Range{1: {rg(110, 10), rg(150, 20)}, 2: {rg(200, 5)}},
			[]Range{rg(110, 10), rg(200, 5), rg(150, 20)}, []int{2, 1}, map[int]int64{1: 30, 2: 5}},
		{"overlap counts once", map[int][]Range{0: {rg(0, 100)}},
			[]Range{rg(0, 60), rg(40, 30), rg(50, 50)}, []int{0}, map[int]int64{0: 100}},
		{"incomplete", map[int][]Range{0: {rg(0, 100)}, 1: {rg(100, 100)}},
			[]Range{rg(0, 100), rg(100, 99)}, []int{0}, map[int]int64{0: 100, 1: 99}},
		{"bytes outside the ranges", map[int][]Range{1: {rg(120, 10)}},
			[]Range{rg(100, 20), rg(130, 70)}, nil, map[int]int64{1: 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := writeTemp(t, "run.part", make([]byte, 10*pl), false)
			w := newRunWriter(f, pl, len(tc.expect))
			for p, rs := range tc.expect {
				w.expect(p, rs)
			}
			for _, r := range tc.writes {
				buf := bytes.Repeat([]byte{byte(r.Off)}, int(r.Len))
				if n, err := w.WriteAt(buf, r.Off); n != len(buf) || err != nil {
					t.Fatalf("WriteAt %s = %d, %v", r, n, err)
				}
			}
			w.close()
			var done []int
			for p := range w.done {
				done = append(done, p)
			}
			if !slices.Equal(done, tc.done) {
				t.Errorf("reported %v, want %v", done, tc.done)
			}
			for p, n := range tc.got {
				if w.written(p) != n {
					t.Errorf("piece %d: %d bytes counted, want %d", p, w.written(p), n)
				}
				if w.complete(p) != slices.Contains(tc.done, p) {
					t.Errorf("piece %d: complete = %v", p, w.complete(p))
				}
			}
			if _, err := w.WriteAt([]byte{1}, 0); err == nil {
				t.Error("a write after close succeeded")
			}
		})
	}
}

func rg(off, n int64) Range { return Range{Off: off, Len: n} }

// rangeOrigin is an HTTP origin serving fx's source with net/http's ServeContent (ranges,
// multipart), counting the range requests, and the fetcher a node uses on it.
type rangeOrigin struct {
	srv      *httptest.Server
	requests atomic.Int64
	bytes    atomic.Int64 // the ranges asked for
	mu       sync.Mutex
	asked    map[string][]string // Range headers by the X-Node header of the request
	// breakAfter, when > 0, makes the first range request whose reply is longer send only
	// that many bytes of its body, then break the connection.
	breakAfter atomic.Int64
}

func newRangeOrigin(t testing.TB, src []byte) *rangeOrigin {
	o := &rangeOrigin{asked: make(map[string][]string)}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rh := r.Header.Get("Range"); rh != "" {
			o.requests.Add(1)
			o.mu.Lock()
			o.asked[r.Header.Get("X-Node")] = append(o.asked[r.Header.Get("X-Node")], rh)
			o.mu.Unlock()
			if rs, err := parseRangeHeader(rh); err == nil {
				o.bytes.Add(byterange.Sum(rs))
			}
		}
		if n := o.breakAfter.Load(); n > 0 && o.breakAfter.CompareAndSwap(n, 0) {
			w = &breakingWriter{ResponseWriter: w, left: n}
		}
		http.ServeContent(w, r, "pkg.bin", time.Time{}, bytes.NewReader(src))
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// piecesAsked lists, for each range request of the node named node, the pieces it asked for.
func (o *rangeOrigin) piecesAsked(node string) [][]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out [][]int
	for _, h := range o.asked[node] {
		rs, err := parseRangeHeader(h)
		if err != nil {
			panic(err) // httprange sent it
		}
		var pieces []int
		for _, r := range rs {
			for p := int(r.Off / testPieceLen); int64(p)*testPieceLen < r.End(); p++ {
				if len(pieces) == 0 || pieces[len(pieces)-1] != p {
					pieces = append(pieces, p)
				}
			}
		}
		out = append(out, pieces)
	}
	return out
}

// parseRangeHeader parses the "bytes=a-b,c-d" httprange sends.
func parseRangeHeader(h string) ([]Range, error) {
	var out []Range
	for _, part := range strings.Split(strings.TrimPrefix(h, "bytes="), ",") {
		var a, b int64
		if _, err := fmt.Sscanf(part, "%d-%d", &a, &b); err != nil {
			return nil, fmt.Errorf("range %q: %w", part, err)
		}
		out = append(out, Range{Off: a, Len: b - a + 1})
	}
	return out, nil
}

// fetcher returns a new httprange fetcher of the origin's package, as the updater makes.
func (o *rangeOrigin) fetcher(length int) *httprange.Fetcher {
	return httprange.New(o.srv.URL+"/pkg.bin", httprange.Options{Length: int64(length), RetryDelay: time.Millisecond})
}

// breakingWriter sends left bytes of a body, then aborts the reply: the server closes the
// connection mid-body.
type breakingWriter struct {
	http.ResponseWriter
	left int64
}

func (b *breakingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) < b.left {
		b.left -= int64(len(p))
		return b.ResponseWriter.Write(p)
	}
	b.ResponseWriter.Write(p[:b.left])
	b.ResponseWriter.(http.Flusher).Flush()
	panic(http.ErrAbortHandler)
}

// noSwarmRequests is how many requests one Fetch of every range the node misses makes on a
// fresh origin: what `update --no-swarm` sends for the same bytes.
func noSwarmRequests(t *testing.T, fx *fixture, ranges []Range) int64 {
	t.Helper()
	o := newRangeOrigin(t, fx.src)
	scratch := writeTemp(t, "scratch", make([]byte, len(fx.src)), false)
	if err := o.fetcher(len(fx.src)).Fetch(t.Context(), ranges, scratch); err != nil {
		t.Fatal(err)
	}
	return o.requests.Load()
}

// TestOriginRunsAlone: a node alone with an OriginFetcher asks the origin for runs of pieces,
// not piece by piece, and makes no more requests than one Fetch of everything it misses (the
// --no-swarm path), whether every piece is missing, every other one or a few blocks of each.
func TestOriginRunsAlone(t *testing.T) {
	tests := []struct {
		name string
		size int
		// old returns the pieces the node has and the missing ranges of partial ones.
		old func(fx *fixture) (have []bool, missing func(int) []Range)
	}{
		{"everything missing", 4<<20 + 777, nil},
		{"every other piece", 4<<20 + 5, func(fx *fixture) ([]bool, func(int) []Range) {
			have := make([]bool, fx.num)
			for i := range have {
				have[i] = i%2 == 0
			}
			return have, nil
		}},
		{"scattered blocks", 4 << 20, func(fx *fixture) ([]bool, func(int) []Range) {
			have, missing, _, _ := fx.oldVersion(t, 3)
			return have, missing
		}},
		{"more than one run", runBytesAlone + 3*testPieceLen + 10, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, tc.size, uint64(40+i))
			var have []bool
			var missing func(int) []Range
			part := fx.partFile(t, nil)
			if tc.old != nil {
				have, missing = tc.old(fx)
				part = fx.partFile(t, have)
				if missing != nil {
					part = fx.oldFile(t, missing)
				}
			}
			want := missingRanges(fx, have, missing)
			o := newRangeOrigin(t, fx.src)
			n := startNode(t, "127.0.0.1", nil)
			tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Have: have, Missing: missing,
				OriginFetcher: o.fetcher(len(fx.src))})
			download(t, tor)
			checkData(t, part, fx.src)
			st := tor.Stats()
			alone := noSwarmRequests(t, fx, want)
			t.Logf("%d pieces, %d missing bytes in %d ranges: %d fetches, %d requests; one Fetch of it all: %d requests",
				fx.num, byterange.Sum(want), len(want), st.OriginRequests, o.requests.Load(), alone)
			if st.BytesFromOrigin != byterange.Sum(want) {
				t.Errorf("%d bytes from the origin, want the %d missing", st.BytesFromOrigin, byterange.Sum(want))
			}
			if got := o.requests.Load(); got > alone || got == 0 {
				t.Errorf("%d requests to the origin; one Fetch of the missing ranges makes %d", got, alone)
			}
		})
	}
}

// missingRanges lists the bytes a node with have and missing lacks.
func missingRanges(fx *fixture, have []bool, missing func(int) []Range) []Range {
	var out []Range
	for p := range fx.num {
		if have != nil && have[p] {
			continue
		}
		off, n := fx.pieceRange(p)
		if missing != nil && len(missing(p)) > 0 {
			out = append(out, missing(p)...)
			continue
		}
		out = append(out, Range{Off: off, Len: n})
	}
	return httprange.Coalesce(out)
}

// TestOriginRunStreams: the pieces of a run complete one by one while the run is still being
// fetched. The fetcher holds back the second half of the run until the first piece is complete
// (verified and marked by the library, so announced to peers); a node that waited for the
// whole run would never complete it, and the test would time out.
func TestOriginRunStreams(t *testing.T) {
	fx := newFixture(t, 2<<20, 51)
	part := fx.partFile(t, nil)
	n := startNode(t, "127.0.0.1", nil)
	var tor *Torrent // set before Download starts the fetch
	var calls atomic.Int64
	fetch := fetcherFunc(func(ctx context.Context, ranges []Range, w io.WriterAt) error {
		calls.Add(1)
		for i, r := range ranges {
			if _, err := w.WriteAt(fx.src[r.Off:r.End()], r.Off); err != nil {
				return err
			}
			if i > 0 || r.Len < testPieceLen {
				continue
			}
			for tor.PiecesComplete() == 0 {
				select {
				case <-ctx.Done():
					return fmt.Errorf("the first piece never completed while the run went on: %w", ctx.Err())
				case <-time.After(time.Millisecond):
				}
			}
		}
		return nil
	})
	tor = addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, OriginFetcher: fetch})
	download(t, tor)
	checkData(t, part, fx.src)
	if calls.Load() != 1 {
		t.Errorf("%d fetches for %d pieces, want one run", calls.Load(), fx.num)
	}
}

// fetcherFunc is a RangeFetcher made of a function.
type fetcherFunc func(ctx context.Context, ranges []Range, w io.WriterAt) error

func (f fetcherFunc) Fetch(ctx context.Context, ranges []Range, w io.WriterAt) error {
	return f(ctx, ranges, w)
}

// TestOriginRunFails: a run that breaks off gives back the pieces whose bytes had not all
// arrived, and only those are fetched again; pieces with bad bytes are fetched again whole;
// the file ends exact either way.
func TestOriginRunFails(t *testing.T) {
	fx := newFixture(t, 3<<20+100, 52)
	half := int64(len(fx.src)) / 2
	tests := []struct {
		name string
		// first is the first fetch: it writes some of the ranges and returns an error or not.
		first func(ranges []Range, w io.WriterAt) error
		// refetched is the bytes the later fetches must ask for in all.
		refetched int64
	}{
		{"breaks off midway", func(ranges []Range, w io.WriterAt) error {
			w.WriteAt(fx.src[:half], 0)
			return fmt.Errorf("origin: %w", io.ErrUnexpectedEOF)
		}, int64(len(fx.src)) - half/testPieceLen*testPieceLen},
		{"returns without the last byte", func(ranges []Range, w io.WriterAt) error {
			w.WriteAt(fx.src[:len(fx.src)-1], 0)
			return nil
		}, int64(len(fx.src)) - int64(fx.num-1)*testPieceLen},
		{"bad bytes in one piece", func(ranges []Range, w io.WriterAt) error {
			bad := slices.Clone(fx.src)
			bad[testPieceLen+7] ^= 1
			w.WriteAt(bad, 0)
			return nil
		}, testPieceLen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			part := fx.partFile(t, nil)
			n := startNode(t, "127.0.0.1", nil)
			var mu sync.Mutex
			var calls int
			var later int64
			fetch := fetcherFunc(func(ctx context.Context, ranges []Range, w io.WriterAt) error {
				mu.Lock()
				calls++
				first := calls == 1
				if !first {
					later += byterange.Sum(ranges)
				}
				mu.Unlock()
				if first {
					return tc.first(ranges, w)
				}
				for _, r := range ranges {
					if _, err := w.WriteAt(fx.src[r.Off:r.End()], r.Off); err != nil {
						return err
					}
				}
				return nil
			})
			tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, OriginFetcher: fetch})
			download(t, tor)
			checkData(t, part, fx.src)
			if later != tc.refetched {
				t.Errorf("the fetches after the first asked for %d bytes, want %d", later, tc.refetched)
			}
		})
	}
}

// TestOriginRunBrokenBody: over HTTP, a body that breaks off midway is resumed for the rest
// (httprange asks again for what did not arrive), in one more request, and the file is exact.
// Package.Written hears of every byte the origin wrote, the resumed rest included
// (TestFastPath checks the peers' paths).
func TestOriginRunBrokenBody(t *testing.T) {
	fx := newFixture(t, 3<<20+100, 53)
	part := fx.partFile(t, nil)
	o := newRangeOrigin(t, fx.src)
	o.breakAfter.Store(int64(len(fx.src)) / 3)
	n := startNode(t, "127.0.0.1", nil)
	var written atomic.Int64
	tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, OriginFetcher: o.fetcher(len(fx.src)),
		Written: func(n int64) { written.Add(n) }})
	download(t, tor)
	checkData(t, part, fx.src)
	st := tor.Stats()
	if got := o.requests.Load(); got != 2 || st.BytesFromOrigin != int64(len(fx.src)) {
		t.Errorf("%d requests, %d bytes; want 2 requests (the run, then its rest) and %d bytes", got, st.BytesFromOrigin, len(fx.src))
	}
	if w, size := written.Load(), int64(len(fx.src)); w != size {
		t.Errorf("Package.Written told of %d bytes written, want %d", w, size)
	}
}

// TestOriginRunsSwarm: nodes that start together and share the origin each ask it for their
// own block in runs of at most twice OriginConcurrency pieces (plus one request: a node may
// start alone, with a longer run), and for pieces of another's block (it ran out of work first)
// in runs no longer. Every request is counted at the origin, by the node that sent it.
func TestOriginRunsSwarm(t *testing.T) {
	for _, nodes := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) {
			fx := newFixture(t, 8<<20, 54)
			o := newRangeOrigin(t, fx.src)
			var ns []*Node
			for i := range nodes {
				ns = append(ns, startNode(t, loopback(t, i), nil))
			}
			var tors []*Torrent
			var parts []*os.File
			for i, n := range ns {
				var peers []netip.AddrPort
				for j, m := range ns {
					if j != i {
						peers = append(peers, m.Addr())
					}
				}
				f := httprange.New(o.srv.URL+"/pkg.bin", httprange.Options{Length: int64(len(fx.src)),
					Header: http.Header{"X-Node": {fmt.Sprint(i)}}})
				part := fx.partFile(t, nil)
				parts = append(parts, part)
				tors = append(tors, addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, OriginFetcher: f, Peers: peers}))
			}
			downloadAll(t, tors)
			var ids [][20]byte
			for _, n := range ns {
				ids = append(ids, n.cl.PeerID())
			}
			for i, n := range ns {
				checkData(t, parts[i], fx.src)
				_, rank := originplan.SortedMembers(n.cl.PeerID(), slices.DeleteFunc(slices.Clone(ids), func(id [20]byte) bool { return id == n.cl.PeerID() }))
				lo, hi := originplan.BlockStart(rank, fx.num, nodes), originplan.BlockStart(rank+1, fx.num, nodes)
				own, taken := 0, 0
				for _, pieces := range o.piecesAsked(fmt.Sprint(i)) {
					switch {
					case pieces[0] >= lo && pieces[len(pieces)-1] < hi:
						own++
					case len(pieces) <= 2*defaultOriginConcurrency:
						taken++
					default:
						t.Errorf("node %d (block %d-%d) asked for pieces %v of other blocks at once", i, lo, hi-1, pieces)
					}
				}
				ownBytes := int64(hi-lo) * testPieceLen
				st := tors[i].Stats()
				t.Logf("node %d: block of pieces %d-%d in %d requests, %d requests for pieces of other blocks; %d bytes from the origin, %d from peers",
					i, lo, hi-1, own, taken, st.BytesFromOrigin, st.BytesFromPeers)
				if allowed := (hi-lo+2*defaultOriginConcurrency-1)/(2*defaultOriginConcurrency) + 1; own > allowed {
					t.Errorf("node %d asked for its block of %d bytes in %d requests, want at most %d", i, ownBytes, own, allowed)
				}
			}
			if sent := o.bytes.Load(); sent > int64(len(fx.src))*5/4 {
				t.Errorf("the origin sent %d bytes for a package of %d", sent, len(fx.src))
			}
		})
	}
}

// TestOriginRunCut: a run claims a window ahead of its stream, and is cut before the first
// unclaimed piece of it that a peer claims or has. Node A starts alone: one run over the whole
// package, its stream held after the first piece, so that its window stays on its first
// pieces. Node B joins and fetches pieces of A's run beyond that window. A's run is cut (a
// probe write of one byte into the first such piece tells when), its stream then ends at the
// cut, and A takes the pieces from there on from B or in new runs: both end exact, and the
// origin sends each piece once.
func TestOriginRunCut(t *testing.T) {
	fx := newFixture(t, 6<<20, 55)
	window := 2 * defaultOriginConcurrency
	partA, partB := fx.partFile(t, nil), fx.partFile(t, nil)
	nodeA, nodeB := startNode(t, loopback(t, 0), nil), startNode(t, loopback(t, 1), nil)
	var torB *Torrent // set before A's first stream goes past its first piece
	var bSet sync.WaitGroup
	bSet.Add(1)
	var fromOriginA, fromOriginB, callsA atomic.Int64
	var cutAt atomic.Int64 // the piece A's first stream was refused at
	cutAt.Store(-1)
	write := func(w io.WriterAt, r Range, n *atomic.Int64) error {
		if _, err := w.WriteAt(fx.src[r.Off:r.End()], r.Off); err != nil {
			return err
		}
		n.Add(r.Len)
		return nil
	}
	// firstStream is A's first fetch: piece 0, then a wait until B holds a piece q past A's
	// window and A has cut its run there, then the pieces up to the cut.
	firstStream := func(ctx context.Context, w io.WriterAt) error {
		if err := write(w, rg(0, testPieceLen), &fromOriginA); err != nil {
			return err
		}
		bSet.Wait()
		q := -1
		for q < 0 {
			for p := window; p < fx.num && q < 0; p++ {
				if torB.store.isComplete(p) {
					q = p
				}
			}
			if err := sleepCtx(ctx); err != nil {
				return err
			}
		}
		off := int64(q) * testPieceLen
		for {
			if _, err := w.WriteAt(fx.src[off:off+1], off); errors.Is(err, errRunCut) {
				break
			}
			if err := sleepCtx(ctx); err != nil {
				return fmt.Errorf("A's run was not cut at piece %d, which B has: %w", q, err)
			}
		}
		for p := 1; p < fx.num; p++ {
			off, n := fx.pieceRange(p)
			if err := write(w, rg(off, n), &fromOriginA); err != nil {
				cutAt.Store(int64(p))
				return err
			}
		}
		return errors.New("A's stream was never refused")
	}
	fetchA := fetcherFunc(func(ctx context.Context, ranges []Range, w io.WriterAt) error {
		if callsA.Add(1) == 1 {
			return firstStream(ctx, w)
		}
		for _, r := range ranges {
			if err := write(w, r, &fromOriginA); err != nil {
				return err
			}
		}
		return nil
	})
	fetchB := fetcherFunc(func(ctx context.Context, ranges []Range, w io.WriterAt) error {
		for _, r := range ranges {
			if err := write(w, r, &fromOriginB); err != nil {
				return err
			}
		}
		return nil
	})
	torA := addPkg(t, nodeA, Package{MetaInfo: fx.mi, Data: partA, OriginFetcher: fetchA})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	errA := make(chan error, 1)
	go func() { errA <- torA.Download(ctx) }()
	for torA.PiecesComplete() == 0 {
		if err := sleepCtx(ctx); err != nil {
			t.Fatal("A completed no piece:", err)
		}
	}
	torB = addPkg(t, nodeB, Package{MetaInfo: fx.mi, Data: partB, OriginFetcher: fetchB, Peers: []netip.AddrPort{nodeA.Addr()}})
	bSet.Done()
	if err := torB.Download(ctx); err != nil {
		t.Fatalf("B: %v", err)
	}
	if err := <-errA; err != nil {
		t.Fatalf("A: %v", err)
	}
	checkData(t, partA, fx.src)
	checkData(t, partB, fx.src)
	sent := fromOriginA.Load() + fromOriginB.Load()
	t.Logf("A's first run was cut at piece %d of %d (window %d); A took %d bytes from the origin in %d fetches, B %d; %d of %d",
		cutAt.Load(), fx.num, window, fromOriginA.Load(), callsA.Load(), fromOriginB.Load(), sent, len(fx.src))
	if c := cutAt.Load(); c < int64(window) {
		t.Errorf("A's run was cut at piece %d, inside the window it claimed", c)
	}
	if sent != int64(len(fx.src)) {
		t.Errorf("the origin sent %d bytes for %d", sent, len(fx.src))
	}
}

// claimedBy reports whether a peer of tor claims piece p.
func claimedBy(tor *Torrent, p int) bool {
	tor.mu.Lock()
	defer tor.mu.Unlock()
	for _, rn := range tor.remotes {
		if _, ok := rn.claims[p]; ok {
			return true
		}
	}
	return false
}

// sleepCtx waits a millisecond, or until ctx ends.
func sleepCtx(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Millisecond):
		return nil
	}
}

// TestSharing: a node streams long runs only when nobody shares the origin work with it: no
// connected member and no other fetcher named by a coordinating tracker.
func TestSharing(t *testing.T) {
	self, other := originplan.PeerID{1}, originplan.PeerID{2}
	tests := []struct {
		name    string
		members []originplan.Member
		role    *originplan.Role
		want    bool
	}{
		{"alone, stock tracker", nil, nil, false},
		{"a connected member", []originplan.Member{{ID: other}}, nil, true},
		{"the only fetcher", nil, &originplan.Role{Slot: 0, Fetchers: []originplan.PeerID{self, {}, {}}}, false},
		{"another fetcher", nil, &originplan.Role{Slot: 1, Fetchers: []originplan.PeerID{other, self}}, true},
		{"not a fetcher", nil, &originplan.Role{Slot: -1, Fetchers: []originplan.PeerID{other}}, true},
		{"not a fetcher, no fetchers", nil, &originplan.Role{Slot: -1, Fetchers: []originplan.PeerID{{}}}, false},
	}
	for _, tc := range tests {
		if got := sharing(tc.members, tc.role); got != tc.want {
			t.Errorf("%s: sharing = %v, want %v", tc.name, got, tc.want)
		}
	}
}
