package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDrawSplay(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		if got := drawSplay(d); got != 0 {
			t.Errorf("drawSplay(%s) = %s, want 0", d, got)
		}
	}
	// A delay of 1ns can only be 0; over 4 ns, 2000 draws see every value.
	if got := drawSplay(1); got != 0 {
		t.Errorf("drawSplay(1ns) = %s, want 0", got)
	}
	seen := map[time.Duration]bool{}
	for range 2000 {
		got := drawSplay(4)
		if got < 0 || got >= 4 {
			t.Fatalf("drawSplay(4ns) = %s, outside [0, 4ns)", got)
		}
		seen[got] = true
	}
	if len(seen) != 4 {
		t.Errorf("drawSplay(4ns) drew %v in 2000 tries, want all of 0-3ns", seen)
	}
	for range 1000 {
		if got := drawSplay(time.Hour); got < 0 || got >= time.Hour {
			t.Fatalf("drawSplay(1h) = %s, outside [0, 1h)", got)
		}
	}
}

func TestSplayFlag(t *testing.T) {
	parseSplay := func(args ...string) *splayFlag {
		t.Helper()
		var s splayFlag
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		s.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &s
	}

	t.Run("zero does not sleep", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a sleep would end with ctx's error
		if err := parseSplay().sleep(ctx, nil); err != nil {
			t.Fatalf("no --splay: %v", err)
		}
		if err := parseSplay("--splay", "0").sleep(ctx, nil); err != nil {
			t.Fatalf("--splay 0: %v", err)
		}
	})

	t.Run("negative is a usage error", func(t *testing.T) {
		if err := parseSplay("--splay=-1s").sleep(context.Background(), nil); !errors.Is(err, errUsage) {
			t.Fatalf("--splay -1s: got %v, want a usage error", err)
		}
	})

	t.Run("cancel ends the sleep", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		s := parseSplay("--splay", "1h")
		start := time.Now()
		err := s.sleep(ctx, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("the sleep ended %s after the start, long after the cancel", el)
		}
	})

	t.Run("sleeps below the bound", func(t *testing.T) {
		var log bytes.Buffer
		start := time.Now()
		if err := parseSplay("--splay", "30ms").sleep(context.Background(), slog.New(slog.NewTextHandler(&log, nil))); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("--splay 30ms slept %s", el)
		}
		if log.Len() > 0 && !strings.Contains(log.String(), "splay: sleeping") {
			t.Errorf("log: %q", log.String())
		}
	})
}

// TestUpdateSplay runs `pkgsync update --splay`: the sleep comes before anything is read, and
// Ctrl-C (a cancelled context) ends it with exit status 1 and says so.
func TestUpdateSplay(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"update", "--splay", "1h", "--old", "v1.tar", "http://127.0.0.1:1/none.torrent"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "interrupted during the --splay sleep") {
		t.Fatalf("exit %d, stderr %q; want 1 and the interrupted sleep", code, errOut.String())
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("update returned %s after the start", el)
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"update", "--splay=-1m", "x.torrent"}, &out, &errOut); code != 2 {
		t.Fatalf("--splay -1m: exit %d, stderr %q; want 2", code, errOut.String())
	}
}
