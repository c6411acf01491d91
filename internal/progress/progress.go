// Package progress draws a one-line progress bar on a terminal and stays silent otherwise, so
// that pkgsync is informative when a person runs it and quiet under cron.
package progress

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/term"
)

// IsTerminal reports whether w is a terminal, the test cron fails. A character device is not
// enough: /dev/null is one, and a job whose stderr goes there must stay quiet.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Bar is a progress bar for one task of known size. A nil *Bar is valid and does nothing, so
// callers need not check whether a terminal is attached.
type Bar struct {
	w     io.Writer
	label string
	total int64
	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// New starts a bar on w that redraws a few times a second, or returns nil when w is not a
// terminal.
func New(w io.Writer, label string, total int64) *Bar {
	if !IsTerminal(w) {
		return nil
	}
	b := &Bar{w: w, label: label, total: total, start: time.Now(), stop: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.draw()
			}
		}
	}()
	return b
}

// Set records absolute progress.
func (b *Bar) Set(n int64) {
	if b != nil {
		b.done.Store(n)
	}
}

// Add records n more bytes done.
func (b *Bar) Add(n int64) {
	if b != nil {
		b.done.Add(n)
	}
}

// Done draws the final state and ends the line.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	close(b.stop)
	b.wg.Wait()
	b.draw()
	fmt.Fprintln(b.w)
}

func (b *Bar) draw() {
	n := b.done.Load()
	frac := 0.0
	if b.total > 0 {
		frac = min(float64(n)/float64(b.total), 1)
	}
	const width = 30
	fill := int(frac * width)
	rate := float64(n) / max(time.Since(b.start).Seconds(), 1e-3)
	fmt.Fprintf(b.w, "\r%-12s [%s%s] %3.0f%% %s / %s %s/s ", b.label,
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), frac*100, Bytes(n), Bytes(b.total), Bytes(int64(rate)))
}

// Bytes formats n with binary units, e.g. "1.5 GiB", as go-humanize's IBytes does; negative
// counts keep their sign.
func Bytes(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// ParseSize reads the sizes people type on command lines: a byte count, or a whole number with K,
// M or G (binary units, as Bytes prints them: "64M" is 64 MiB).
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	num := s
	switch {
	case strings.HasSuffix(s, "G"):
		mult, num = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, num = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, num = 1<<10, strings.TrimSuffix(s, "K")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: want a byte count or a whole number with K, M or G", s)
	}
	return n * mult, nil
}
