package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/spf13/pflag"
)

// splayFlag is --splay D: a job that cron or a timer starts on every node at the same minute
// first sleeps a random time in [0, D), so that the nodes do not reach the origin and the
// tracker all in the same second.
type splayFlag struct {
	max time.Duration
}

func (s *splayFlag) register(fs *pflag.FlagSet) {
	fs.DurationVar(&s.max, "splay", 0, "sleep a random time in [0, D) before starting, e.g. 10m, so that nodes started together by cron spread out (0: start at once)")
}

// sleep waits the drawn delay, logging it on log when log is not nil. It returns early, with
// an error that wraps ctx's, when ctx ends (Ctrl-C, SIGTERM); a negative D is a usage error.
func (s *splayFlag) sleep(ctx context.Context, log *slog.Logger) error {
	if s.max < 0 {
		return fmt.Errorf("%w: --splay %s: want a duration of 0 or more", errUsage, s.max)
	}
	d := drawSplay(s.max)
	if d == 0 {
		return nil
	}
	if log != nil {
		log.Info("splay: sleeping a random time below --splay", "sleep", d.Round(time.Millisecond), "splay", s.max)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted during the --splay sleep of %s: %w", d.Round(time.Millisecond), context.Cause(ctx))
	}
}

// drawSplay returns a uniformly random delay in [0, max), or 0 when max is not positive.
func drawSplay(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max)
}
