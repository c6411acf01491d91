//go:build unix

package bt

import (
	"context"
	"crypto/sha1"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/sync/errgroup"
)

// BenchmarkFanOut measures the CPU a fan-out costs per MiB delivered: fanOutNodes empty nodes
// and one seeder on loopback, every node capped at 10 Mbit/s each way as in swarmbench's lab,
// with the lab's 32 KiB pieces (pkgsync make's choice for a package of 16 MiB). The fixed
// costs (scheduler rounds, per-piece messages, polling) show up here as they do in the lab,
// without its namespaces. It reports the process's CPU seconds (user + system, from rusage)
// per MiB delivered, and that CPU over what SHA-1 of the same bytes costs in the same run
// ("x-sha1"): the figure to compare across machines and loads. It also reports the process's
// context switches per MiB delivered ("csw/MiB", voluntary and involuntary, from rusage): at a
// slow link's pace most of a node's CPU goes to waking up, a cost that follows the count of
// wake-ups rather than the bytes, and the count moves less with the machine's load than time.
func BenchmarkFanOut(b *testing.B) {
	const (
		size        = 8 << 20
		pieceLen    = 32 << 10
		fanOutNodes = 8
		rate        = 10e6 / 8
	)
	mi, src := benchTorrent(b, size, pieceLen)
	capRate := func(c *Config) { c.MaxUploadRate, c.MaxDownloadRate = rate, rate }
	seeder := startNode(b, loopback(b, 0), capRate)
	addPkg(b, seeder, Package{MetaInfo: mi, Data: writeTemp(b, "seed.bin", src, true), Have: allPieces(b, mi)})
	b.SetBytes(int64(fanOutNodes * size))
	var cpu time.Duration
	var csw int64
	for b.Loop() {
		b.StopTimer()
		tors, nodes := make([]*Torrent, fanOutNodes), make([]*Node, fanOutNodes)
		peers := []netip.AddrPort{seeder.Addr()}
		for i := range nodes {
			nodes[i] = startNode(b, loopback(b, 1+i), capRate)
			peers = append(peers, nodes[i].Addr())
		}
		for i, n := range nodes {
			part := writeTemp(b, fmt.Sprintf("out%d.part", i), make([]byte, size), false)
			tors[i] = addPkg(b, n, Package{MetaInfo: mi, Data: part, Peers: peers})
		}
		before, cswBefore := cpuTime(b), contextSwitches(b)
		b.StartTimer()
		var g errgroup.Group
		for _, tor := range tors {
			g.Go(func() error { return tor.Download(context.Background()) })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime(b) - before
		csw += contextSwitches(b) - cswBefore
		for _, n := range nodes {
			if err := n.Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	mib := float64(b.N) * fanOutNodes * size / (1 << 20)
	b.ReportMetric(cpu.Seconds()/mib, "cpu-s/MiB")
	b.ReportMetric(float64(csw)/mib, "csw/MiB")
	start := cpuTime(b)
	for range b.N * fanOutNodes {
		sha1.Sum(src)
	}
	b.ReportMetric(cpu.Seconds()/(cpuTime(b)-start).Seconds(), "x-sha1")
}

// benchTorrent makes a torrent of size pseudo-random bytes with pieces of pieceLen.
func benchTorrent(b *testing.B, size int, pieceLen int64) (*metainfo.MetaInfo, []byte) {
	src := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), uint64(pieceLen)))
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	path := filepath.Join(b.TempDir(), "pkg.bin")
	if err := os.WriteFile(path, src, 0o644); err != nil {
		b.Fatal(err)
	}
	info := metainfo.Info{PieceLength: pieceLen}
	if err := info.BuildFromFilePath(path); err != nil {
		b.Fatal(err)
	}
	mi := &metainfo.MetaInfo{}
	var err error
	if mi.InfoBytes, err = bencode.Marshal(info); err != nil {
		b.Fatal(err)
	}
	return mi, src
}

// allPieces is a Package.Have of every piece of mi.
func allPieces(b *testing.B, mi *metainfo.MetaInfo) []bool {
	info, err := mi.UnmarshalInfo()
	if err != nil {
		b.Fatal(err)
	}
	have := make([]bool, info.NumPieces())
	for i := range have {
		have[i] = true
	}
	return have
}

// cpuTime is the CPU time (user + system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// contextSwitches is how often the process's threads have been switched out so far, waiting
// (voluntary) or preempted.
func contextSwitches(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return int64(ru.Nvcsw + ru.Nivcsw)
}
