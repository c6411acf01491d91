package updater

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	// The source buffer's own alignment does not matter: the writer copies the aligned middle
	// into aligned buffers of its own. src[1:] starts off any page.
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
			path := filepath.Join(t.TempDir(), "out.part")
			part, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer part.Close()
			if err := part.Truncate(size); err != nil {
				t.Fatal(err)
			}
			dw := newDirectWriter(path, part)
			if dw == nil {
				t.Skip("no O_DIRECT here: the part file alone is written") // tmpfs
			}
			defer dw.close()
			if err := dw.write(src[tc.off:tc.off+tc.len], int64(tc.off)); err != nil {
				t.Fatal(err)
			}
			if err := dw.flush(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Every whole aligned block inside the stretch went direct.
			first := (tc.off + directAlign - 1) / directAlign * directAlign
			last := (tc.off + tc.len) / directAlign * directAlign
			if wantDirect := int64(max(last-first, 0)); dw.bytes != wantDirect && !dw.off {
				t.Errorf("%d bytes went direct, want %d", dw.bytes, wantDirect)
			}
			exp := make([]byte, size)
			copy(exp[tc.off:], want[tc.off:tc.off+tc.len])
			if !bytes.Equal(got, exp) {
				t.Fatalf("the file differs from what was written at %d+%d", tc.off, tc.len)
			}
		})
	}
}

// TestDirectWriterError: a direct write that fails in the background comes back from flush,
// from close and from every later write; nothing hangs.
func TestDirectWriterError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.part")
	part, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer part.Close()
	dw := newDirectWriter(path, part)
	if dw == nil {
		t.Skip("no O_DIRECT here") // tmpfs
	}
	dw.direct.Close() // every direct write now fails with "file already closed"
	buf := make([]byte, 4*directBuf)
	if err := dw.write(buf, 0); err != nil {
		t.Logf("write: %v", err) // a later buffer may already see the first failure
	}
	if err := dw.flush(); err == nil || !strings.Contains(err.Error(), "writing") {
		t.Fatalf("flush after a failed write: %v, want the write's error", err)
	}
	if err := dw.write(buf, 0); err == nil {
		t.Fatal("a write after a failed one succeeded")
	}
	if err := dw.close(); err == nil {
		t.Fatal("close after a failed write: nil error")
	}
	if err := dw.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
