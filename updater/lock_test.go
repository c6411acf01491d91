package updater

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLockExclusive: many runs after the same output, each waiting, hold the lock one at a time,
// although each holder removes OUT.lock as it lets go (a run that locked the removed file must
// notice and start over).
func TestLockExclusive(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pkg.tar")
	var holders atomic.Int32
	var overlap atomic.Bool
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				release, err := lockOutput(context.Background(), out, 30*time.Second, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if holders.Add(1) > 1 {
					overlap.Store(true)
				}
				time.Sleep(100 * time.Microsecond)
				holders.Add(-1)
				release()
			}
		}()
	}
	wg.Wait()
	if overlap.Load() {
		t.Fatal("two runs held the lock at once")
	}
	if _, err := os.Stat(out + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
}

func TestLockBusy(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pkg.tar")
	release, err := lockOutput(context.Background(), out, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	tests := []struct {
		name string
		wait time.Duration
		ctx  func() (context.Context, context.CancelFunc)
		want func(error) bool
	}{
		{"no wait", 0, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			func(err error) bool {
				var le *LockedError
				return errors.As(err, &le) && le.PID == os.Getpid() && le.Lock == out+".lock"
			}},
		{"wait runs out", 150 * time.Millisecond, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			func(err error) bool {
				var le *LockedError
				return errors.As(err, &le) && le.Wait == 150*time.Millisecond
			}},
		{"cancelled while waiting", time.Minute, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 150*time.Millisecond)
		}, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := lockOutput(ctx, out, tt.wait, nil)
			if !tt.want(err) {
				t.Fatalf("got %v", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
	// The holder's file is still there and still names it.
	if pid := readPID(context.Background(), out+".lock"); pid != os.Getpid() {
		t.Fatalf("lock file names PID %d, want %d", pid, os.Getpid())
	}
}
