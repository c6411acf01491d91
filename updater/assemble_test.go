package updater

import (
	"errors"
	"fmt"
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
