package delta

import (
	"sync"
	"testing"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

const benchSize = 64 << 20

var bench struct {
	once           sync.Once
	target         []byte
	f              *zsyncfile.File
	unrelated, ins []byte
}

// benchData builds a 64 MiB target with its control file (block size 2048, hash lengths as
// zsyncmake picks: 2,2,5), an unrelated old file, and an old file with a few bytes inserted or
// deleted every 256 KiB or so.
func benchData(b *testing.B) {
	b.Helper()
	bench.once.Do(func() {
		bench.target = randBytes(1000, benchSize)
		bench.f = makeFile(bench.target, 2048, 0)
		bench.unrelated = randBytes(1001, benchSize)
		noise := randBytes(1002, 1<<16)
		var ins []byte
		for off, k := 0, 0; off < benchSize; k++ {
			next := min(off+256<<10+k*7919%65536, benchSize)
			ins = append(ins, bench.target[off:next]...)
			if k%2 == 0 {
				ins = append(ins, noise[k*131%60000:][:1+k*37%200]...)
				off = next
			} else {
				off = next + 1 + k*53%300 // deletion
			}
		}
		bench.ins = ins
	})
}

func benchScan(b *testing.B, old []byte) {
	srcs := []Source{srcOf("old", old)}
	b.SetBytes(int64(len(old)))
	b.ReportAllocs()
	var p *Plan
	cpu0 := cpuTime()
	for b.Loop() {
		var err error
		if p, err = Scan(b.Context(), bench.f, srcs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	// The machine is shared: MB per CPU-second, times the cores Scan used, says what a quiet
	// machine would give when the wall-clock MB/s is dragged down by other processes.
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(len(old))*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
	b.ReportMetric(100*float64(p.ReusedBytes())/float64(p.Length), "%reused")
}

func BenchmarkScanIdentical(b *testing.B) { benchData(b); benchScan(b, bench.target) }
func BenchmarkScanUnrelated(b *testing.B) { benchData(b); benchScan(b, bench.unrelated) }
func BenchmarkScanEdited(b *testing.B)    { benchData(b); benchScan(b, bench.ins) }
