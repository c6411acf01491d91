package httprange

import (
	"context"
	"fmt"
	"testing"
)

// sliceWriter is a lock-free io.WriterAt over a buffer, for parallel writes to disjoint ranges.
type sliceWriter []byte

func (s sliceWriter) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(s)) {
		return 0, fmt.Errorf("write of %d bytes at %d outside [0,%d)", len(p), off, len(s))
	}
	return copy(s[off:], p), nil
}

// BenchmarkFetch fetches 64 MiB as 64 scattered 1 MiB ranges of a 128 MiB file from ServeContent.
func BenchmarkFetch(b *testing.B) {
	const (
		mib    = 1 << 20
		size   = 128 * mib
		ranges = 64
	)
	data := randomData(size, 40)
	rs := make([]Range, ranges)
	for i := range rs {
		// One range in each 2 MiB slot, at an odd offset inside it.
		rs[i] = Range{Off: int64(i)*2*mib + int64(i*4099%mib), Len: mib}
	}
	for _, par := range []int{1, 4} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			srv, _ := newContentServer(b, data)
			f := New(srv.URL, Options{Parallel: par})
			dst := make(sliceWriter, size)
			b.SetBytes(ranges * mib)
			b.ReportAllocs()
			for b.Loop() {
				if err := f.Fetch(context.Background(), rs, dst); err != nil {
					b.Fatal(err)
				}
			}
			st := f.Stats()
			b.ReportMetric(float64(st.Requests)/float64(b.N), "requests/op")
		})
	}
}
