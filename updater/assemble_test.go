package updater

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/directio"
	"github.com/pkgsync/pkgsync/manifest"
)

// TestCoverage checks that wait returns once the ranges written (in any order, in pieces,
// overlapping) cover what it asks for, and that the end of the fetch wakes every waiter.
func TestCoverage(t *testing.T) {
	c := newCoverage()
	c.add(100, 50)  // [100,150)
	c.add(300, 100) // [300,400)
	c.add(150, 50)  // joins the first: [100,200)
	c.add(120, 10)  // inside
	c.add(390, 20)  // extends: [300,410)
	if got, want := fmt.Sprint(c.done), "[{100 200} {300 410}]"; got != want {
		t.Fatalf("spans %s, want %s", got, want)
	}
	for _, r := range [][2]int64{{100, 100}, {150, 1}, {300, 110}, {405, 5}} {
		if err := c.wait(r[0], r[1]); err != nil {
			t.Fatalf("wait(%d, %d): %v", r[0], r[1], err)
		}
	}
	c.add(200, 100) // bridges both: [100,410)
	if got, want := fmt.Sprint(c.done), "[{100 410}]"; got != want {
		t.Fatalf("spans %s, want %s", got, want)
	}

	// A waiter blocks until its range is written.
	done := make(chan error, 1)
	go func() { done <- c.wait(500, 100) }()
	c.add(500, 60)
	select {
	case err := <-done:
		t.Fatalf("wait returned (%v) with 40 bytes still missing", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.add(560, 40)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The end of the fetch: its error, or a clear one for bytes it never wrote.
	go func() { done <- c.wait(1000, 10) }()
	c.finish(nil)
	if err := <-done; err == nil {
		t.Fatal("wait for bytes never written returned no error after the fetch ended")
	}
	c2 := newCoverage()
	go func() { done <- c2.wait(0, 10) }()
	boom := errors.New("origin gone")
	c2.finish(boom)
	if err := <-done; !errors.Is(err, boom) {
		t.Fatalf("wait after a failed fetch: %v, want %v", err, boom)
	}
}

// TestDirectWriter writes stretches of every alignment through the direct writer (O_DIRECT where
// the test's file system has it, the page cache where not) and checks the file's bytes.
func TestDirectWriter(t *testing.T) {
	const size = 2*directBuf + 3*directAlign + 100
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*31 + i>>8)
	}
	// The source buffer's own alignment does not matter: where it is not aligned as the
	// offset is, the writer copies the aligned middle into an aligned buffer of its own.
	// src[1:] starts off any page.
	src := make([]byte, size+1)[1:]
	copy(src, want)
	tests := []struct {
		name     string
		off, len int
	}{
		{"larger than a direct buffer", 0, size},
		{"aligned", 0, 16384},
		{"aligned, short tail", 4096, 10000},
		{"unaligned head", 100, 12188},
		{"head, middle and tail", 3000, 20000},
		{"smaller than a block", 5000, 700},
		{"ends at the end", size - 9000, 9000},
		{"one byte", 12345, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, dw := newTestDirectWriter(t, size)
			defer dw.close()
			if err := dw.write(src[tc.off:tc.off+tc.len], int64(tc.off)); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Every whole aligned block inside the stretch went direct.
			first := (tc.off + directAlign - 1) / directAlign * directAlign
			last := (tc.off + tc.len) / directAlign * directAlign
			if wantDirect := int64(max(last-first, 0)); dw.direct.Bytes() != wantDirect && !dw.direct.Off() {
				t.Errorf("%d bytes went direct, want %d", dw.direct.Bytes(), wantDirect)
			}
			exp := make([]byte, size)
			copy(exp[tc.off:], want[tc.off:tc.off+tc.len])
			if !bytes.Equal(got, exp) {
				t.Fatalf("the file differs from what was written at %d+%d", tc.off, tc.len)
			}
		})
	}
}

// newTestDirectWriter makes a part file of size bytes in a temporary folder and its directWriter,
// or skips the test where the file system has no O_DIRECT (tmpfs): there the part file alone is
// written, as the build does.
func newTestDirectWriter(t *testing.T, size int64) (string, *directWriter) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.part")
	part, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { part.Close() })
	if err := part.Truncate(size); err != nil {
		t.Fatal(err)
	}
	dw := newDirectWriter(path, part)
	if dw != nil {
		dw.min = 0 // the alignment cases go direct whatever their length (see TestDirectWriterShort)
	}
	if dw == nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no O_DIRECT in %s: CI's temporary folder must be on a disk", filepath.Dir(path))
		}
		t.Skip("no O_DIRECT here: the part file alone is written")
	}
	return path, dw
}

// TestDirectWriterError: a failed direct write comes back from that write, from every later one
// and from close; a second close returns nil.
func TestDirectWriterError(t *testing.T) {
	_, dw := newTestDirectWriter(t, 0)
	dw.file.Close() // every direct write now fails with "file already closed"
	buf := directio.AlignedBuf(4 * directAlign)
	if err := dw.write(buf, 0); err == nil || !strings.Contains(err.Error(), "writing") {
		t.Fatalf("write to a closed descriptor: %v, want a write error", err)
	}
	if err := dw.write(buf, 0); err == nil {
		t.Fatal("a write after a failed one succeeded")
	}
	if err := dw.sink(0, buf); err != nil {
		t.Fatalf("a sink with nothing queued: %v", err)
	}
	if err := dw.queue(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := dw.sink(0, buf); err == nil {
		t.Fatal("the sink wrote a queued stretch after a failed write")
	}
	if err := dw.close(); err == nil {
		t.Fatal("close after a failed write: nil error")
	}
	if err := dw.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// TestDirectWriterSink runs the writer as the updater does: stretches queued as an ordered pass
// reads them into manifest.Hash's chunks (some spanning a chunk boundary, some with fetched
// bytes between them that must not be written), written by the sink from the chunks themselves.
// The file must hold exactly the queued stretches, and the chunks' aligned middles go direct.
func TestDirectWriterSink(t *testing.T) {
	const size = 3<<20 + 5000
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + i>>9)
	}
	copied := []span{ // the rest is "fetched": already in the file, not to be written
		{0, 100000},
		{100000 + 4096, 256<<10 + 9000}, // across the first chunk boundary
		{300000, 300001},
		{1 << 20, 3 << 20}, // many chunks
		{3<<20 + 10, size},
	}
	path, dw := newTestDirectWriter(t, size)
	defer dw.close()
	// The pass: reads in odd sizes, queueing the copied part of each read as the Assembler does.
	r := &queueingReader{data: want, copied: copied, queue: dw.queue}
	if _, err := manifest.Hash(context.Background(), r, manifest.HashOptions{Name: path, Length: size, Whole: true, Tee: dw.sink, NewBuffer: directio.AlignedBuf}); err != nil {
		t.Fatal(err)
	}
	if err := dw.close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	exp := make([]byte, size)
	var direct int64
	for _, s := range copied {
		copy(exp[s.off:s.end], want[s.off:s.end])
		direct += max(s.end&^(directAlign-1)-(s.off+directAlign-1)&^(directAlign-1), 0)
	}
	if !bytes.Equal(got, exp) {
		t.Fatal("the file is not the queued stretches")
	}
	// A stretch across a chunk boundary is written in two parts, both aligned at the boundary.
	if dw.direct.Bytes() != direct && !dw.direct.Off() {
		t.Errorf("%d bytes went direct, want %d", dw.direct.Bytes(), direct)
	}
}

// queueingReader reads data in reads of varying sizes and queues the parts of each read that
// fall in copied, as the Assembler does with its copied stretches.
type queueingReader struct {
	data   []byte
	copied []span
	queue  func(p []byte, off int64) error
	pos    int64
	n      int
}

func (r *queueingReader) Read(b []byte) (int, error) {
	if r.pos >= int64(len(r.data)) {
		return 0, io.EOF
	}
	r.n++
	b = b[:min(len(b), 70000+r.n*1111, len(r.data)-int(r.pos))]
	copy(b, r.data[r.pos:])
	for _, s := range r.copied {
		lo, hi := max(s.off, r.pos), min(s.end, r.pos+int64(len(b)))
		if lo < hi {
			if err := r.queue(b[lo-r.pos:hi-r.pos], lo); err != nil {
				return 0, err
			}
		}
	}
	r.pos += int64(len(b))
	return len(b), nil
}

// TestDirectWriterShort checks that a stretch shorter than directMin goes through the page cache
// (an O_DIRECT write waits for the device, once per stretch), and a longer one direct.
func TestDirectWriterShort(t *testing.T) {
	const size = 2 * directMin
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 13)
	}
	path, dw := newTestDirectWriter(t, size)
	defer dw.close()
	dw.min = directMin
	if err := dw.write(data[:directMin-directAlign], 0); err != nil {
		t.Fatal(err)
	}
	if dw.direct.Bytes() != 0 {
		t.Errorf("%d bytes of a stretch shorter than %d went direct", dw.direct.Bytes(), directMin)
	}
	if err := dw.write(data[directMin-directAlign:], directMin-directAlign); err != nil {
		t.Fatal(err)
	}
	if want := int64(size - (directMin - directAlign)); dw.direct.Bytes() != want && !dw.direct.Off() {
		t.Errorf("%d bytes of a stretch of %d went direct, want all", dw.direct.Bytes(), want)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the file is not what was written")
	}
}

// The writeback flushes once flushEvery bytes are written, and close reports a flush that
// failed (here the file is closed under it); the writebacks in between report nothing, and
// neither does a writeback of a file with nothing due.
func TestWritebackFlushError(t *testing.T) {
	tests := []struct {
		name    string
		writes  []int64
		wantErr bool
	}{
		{"nothing written", nil, false},
		{"writebacks only", []int64{writebackEvery, writebackEvery, flushEvery - 2*writebackEvery - 1}, false},
		{"a flush due", []int64{writebackEvery, flushEvery - writebackEvery}, true},
		{"in small writes", slices.Repeat([]int64{1 << 20}, flushEvery>>20), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "part"))
			if err != nil {
				t.Fatal(err)
			}
			f.Close() // every sync of it fails
			wb := newWriteback(f)
			for _, n := range tc.writes {
				wb.wrote(n)
			}
			err = wb.close()
			if (err != nil) != tc.wantErr {
				t.Fatalf("close: %v, want an error: %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "writing to disk") {
				t.Errorf("close: %v, want it to say the write to disk failed", err)
			}
		})
	}
}
