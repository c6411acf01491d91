package delta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestAssemble builds targets through the Assembler with reads of several sizes and checks the
// bytes read, the bytes left in dst, and that missing ranges were waited for before being read.
func TestAssemble(t *testing.T) {
	target := randBytes(1, 10000+37)
	noise := randBytes(2, 3000)
	edited := cat(target[:3000], noise[:700], target[3500:8000], target[9000:])
	tests := []struct {
		name  string
		old   []byte
		bs    int
		part  []byte // an InPlace source, or nil
		reads []int
	}{
		{"edited", edited, 100, nil, []int{1 << 20}},
		{"edited, small reads", edited, 100, nil, []int{1, 7, 99, 100, 101, 333}},
		{"old shorter than its last block", target[:9990], 64, nil, []int{4096}},
		{"unrelated", noise, 128, nil, []int{500}},
		{"identical", target, 256, nil, []int{4096, 1}},
		{"part file in place", edited, 100, cat(target[:5000], noise[:1000]), []int{250, 4096}},
	}
	for _, tc := range tests {
		for _, withWriter := range []bool{false, true} {
			name := tc.name
			if withWriter {
				name += ", SetWriter"
			}
			t.Run(name, func(t *testing.T) {
				f := makeFile(target, tc.bs, 0)
				dst := &memFile{}
				srcs := []Source{srcOf("old", tc.old)}
				if tc.part != nil {
					dst.b = append([]byte(nil), tc.part...)
					srcs = append(srcs, Source{Name: "part", R: dst, Size: int64(len(tc.part)), InPlace: true})
				}
				p, err := Scan(t.Context(), f, srcs, Options{})
				if err != nil {
					t.Fatal(err)
				}
				// The caller's fetch: write every missing range before the read needs it, and record
				// the order of events.
				missing := p.Missing()
				fetched := map[int64]bool{}
				wait := func(off, n int64) error {
					for _, r := range missing {
						if r.Off < off+n && off < r.Off+r.Len && !fetched[r.Off] {
							if _, err := dst.WriteAt(target[r.Off:r.Off+r.Len], r.Off); err != nil {
								return err
							}
							fetched[r.Off] = true
						}
					}
					return nil
				}
				a := p.Assemble(dst, srcs, wait)
				var written []Range // what the SetWriter writer was given
				if withWriter {
					a.SetWriter(func(b []byte, off int64) error {
						written = append(written, Range{Off: off, Len: int64(len(b))})
						_, err := dst.WriteAt(b, off)
						return err
					})
				}
				var got []byte
				for k := 0; ; k++ {
					buf := make([]byte, tc.reads[k%len(tc.reads)])
					n, err := a.Read(buf)
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got, target) {
					t.Fatalf("read %d bytes, not the target (%d bytes)", len(got), len(target))
				}
				if !bytes.Equal(dst.b[:len(target)], target) {
					t.Fatal("dst does not hold the target")
				}
				if len(fetched) != len(missing) {
					t.Fatalf("waited for %d of %d missing ranges", len(fetched), len(missing))
				}
				// Blocks the InPlace source held were not rewritten.
				for _, w := range dst.writes {
					if tc.part != nil && w.Off+w.Len <= 5000 && !isMissing(missing, w) {
						t.Fatalf("rewrote %v, which the part file already held", w)
					}
				}
				// The writer got the copied ranges only, in order: never a missing range (the
				// fetch wrote it) nor a block held in place.
				var prev int64
				for _, w := range written {
					if w.Off < prev {
						t.Fatalf("writer got %v after offset %d: out of order", w, prev)
					}
					prev = w.Off + w.Len
					for _, r := range missing {
						if r.Off < w.Off+w.Len && w.Off < r.Off+r.Len {
							t.Fatalf("writer got %v, which overlaps the missing range %v", w, r)
						}
					}
				}
				if withWriter && len(written) == 0 && p.ReusedBytes() > 0 && tc.part == nil {
					t.Fatal("the writer got nothing, yet blocks were copied")
				}
			})
		}
	}
}

func isMissing(missing []Range, w Range) bool {
	for _, r := range missing {
		if r.Off <= w.Off && w.Off+w.Len <= r.Off+r.Len {
			return true
		}
	}
	return false
}

// errWriter fails every write.
type errWriter struct{ memFile }

func (*errWriter) WriteAt([]byte, int64) (int, error) { return 0, errors.New("disk full") }

// failReaderAt fails every read.
type failReaderAt struct{}

func (failReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("EIO") }

func TestAssembleErrors(t *testing.T) {
	target := randBytes(3, 5000)
	f := makeFile(target, 100, 0)
	old := cat(target[:2000], randBytes(4, 1000), target[3000:])
	srcs := []Source{srcOf("old.tar", old)}
	p, err := Scan(t.Context(), f, srcs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dst  File
		srcs []Source
		wait func(off, n int64) error
		want string
	}{
		{"wait fails", &memFile{}, srcs, func(int64, int64) error { return errors.New("origin gone") }, "origin gone"},
		{"write fails", &errWriter{}, srcs, nil, "write target at offset 0 (2000 bytes from old.tar at 0): disk full"},
		{"source fails", &memFile{}, []Source{{Name: "old.tar", R: failReaderAt{}, Size: 5000}}, nil, "read old.tar at offset 0"},
		{"too few sources", &memFile{}, nil, nil, "block 0 comes from source 0, but only 0 sources were given"},
		{"missing range never written", &memFile{}, srcs, nil, "reading the fetched range at offset 2000 (1000 bytes) back"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := p.Assemble(tc.dst, tc.srcs, tc.wait)
			var err error
			for buf := make([]byte, 1<<16); err == nil; {
				_, err = a.Read(buf)
			}
			if err == io.EOF || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			// The error sticks.
			if _, err2 := a.Read(make([]byte, 10)); fmt.Sprint(err2) != fmt.Sprint(err) {
				t.Fatalf("second Read: %v, want %v", err2, err)
			}
		})
	}
}
