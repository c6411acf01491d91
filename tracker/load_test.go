package tracker

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/originplan"
	"github.com/pkgsync/pkgsync/tracker/loadgen"
)

// BenchmarkLoad replays the announces of 10,000 peers over 100 packages against the tracker over
// real HTTP on loopback with keep-alive (tracker/loadgen): the peers register once, then each
// b.N re-announces them. It reports announces per second, the latency percentiles and the heap
// each registered peer holds (runtime.MemStats, after a GC, before and after the registration).
// The tracker hands out origin roles. It runs the server of `pkgsync tracker` (origin's Limits)
// twice: announces answered through net/http, and on origin's lean path (LeanRoute) as the
// command does, so that one run gives the ratio of the two. Client and server share this
// process, so the rates are lower than a server alone on one core serves: cmd/trackerload
// measures that, against a `pkgsync tracker` process.
//
//	go test ./tracker -run '^$' -bench Load -benchtime 100000x -count 3
func BenchmarkLoad(b *testing.B) {
	for _, lean := range []bool{false, true} {
		name := "server=net/http"
		if lean {
			name = "server=lean"
		}
		b.Run(name, func(b *testing.B) { benchmarkLoad(b, lean) })
	}
}

func benchmarkLoad(b *testing.B, lean bool) {
	const peers, packages = 10000, 100
	tr := New(Options{OriginFetchers: originplan.DefaultFetchers})
	defer tr.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs, hl := origin.NewHTTPServer(ln, tr.Handler(), origin.DefaultLimits())
	if lean {
		hs, hl = origin.NewLeanHTTPServer(ln, tr.Handler(), origin.DefaultLimits(), origin.LeanRoute{Path: "/announce", Answer: tr.AnswerAnnounce})
	}
	go hs.Serve(hl)
	defer hs.Close()
	load, err := loadgen.New(loadgen.Config{
		URL: "http://" + ln.Addr().String() + "/announce", Peers: peers, Packages: packages, Conns: 16,
		Announces: b.N, Duration: time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	before := heapInUse()
	if _, err := load.Register(ctx); err != nil {
		b.Fatal(err)
	}
	perPeer := float64(heapInUse()-before) / peers
	b.ReportAllocs()
	b.ResetTimer()
	r, err := load.Replay(ctx)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if r.Announces != b.N {
		b.Fatalf("%d of %d announces answered in the time bound", r.Announces, b.N)
	}
	b.ReportMetric(r.Rate(), "announces/s")
	b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.P99.Microseconds()), "p99-µs")
	b.ReportMetric(perPeer, "heap-B/peer")
	b.ReportMetric(float64(r.Peers)/float64(r.Announces), "peers/answer")
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
