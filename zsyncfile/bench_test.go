package zsyncfile_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// benchFile returns the control file of a 1 GiB package at zsyncmake's default 4096-byte blocks:
// 262144 records of 3+5 bytes (2 MiB of table). The records are arbitrary; Read does not check them.
func benchFile(b *testing.B) []byte {
	const length = 1 << 30
	f := &zsyncfile.File{Header: zsyncfile.NewHeader("pkg.deb", length, 0, time.Unix(1700000000, 0))}
	f.URLs = []string{"http://origin.example/pool/pkg.deb"}
	n := zsyncfile.NumBlocks(length, f.Blocksize)
	rec := f.RsumBytes + f.ChecksumBytes
	table := testData(30, n*rec)
	f.Blocks = make([]zsyncfile.Block, n)
	for i := range f.Blocks {
		r := table[i*rec : (i+1)*rec]
		f.Blocks[i].Weak = uint32(r[0])<<16 | uint32(r[1])<<8 | uint32(r[2])
		copy(f.Blocks[i].Strong[:], r[3:])
	}
	var buf bytes.Buffer
	if err := zsyncfile.Write(&buf, f); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkRead(b *testing.B) {
	raw := benchFile(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := zsyncfile.Read(bytes.NewReader(raw))
		if err != nil {
			b.Fatal(err)
		}
		if len(f.Blocks) != 262144 {
			b.Fatalf("%d blocks, want 262144", len(f.Blocks))
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	f, err := zsyncfile.Read(bytes.NewReader(benchFile(b)))
	if err != nil {
		b.Fatal(err)
	}
	cw := &countWriter{}
	if err := zsyncfile.Write(cw, f); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(cw.n)
	b.ReportAllocs()
	for b.Loop() {
		if err := zsyncfile.Write(cw, f); err != nil {
			b.Fatal(err)
		}
	}
}

// countWriter counts what is written to it, so that the benchmark measures Write alone.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)
