package updater

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pkgsync/pkgsync/internal/logging"
)

// One update of an output at a time. Cron overlaps itself (a slow run and the next one), and two
// runs building the same OUT.part would each take the other's half-written blocks for their own.
// The lock is flock(2) on OUT.lock: the kernel drops it when its holder exits, however it exits
// (SIGKILL and power loss too, the file then stays behind, unlocked), so a stale lock never needs
// clearing. The holder writes its PID into the file for the message of the run it turns away.
//
// The holder removes OUT.lock when it is done. A run that opened the file just before, and then
// gets the lock on the removed file, sees that the path no longer leads to what it locked and
// starts over, so two runs never both believe they hold it.

// LockedError reports an output that another update holds.
type LockedError struct {
	Lock string        // the lock file, OUT.lock
	PID  int           // the holder's, as it wrote it; 0 when it could not be read
	Wait time.Duration // how long this run waited for it (Options.LockWait)
}

func (e *LockedError) Error() string {
	who := "another update"
	if e.PID > 0 {
		who = fmt.Sprintf("another update (PID %d)", e.PID)
	}
	if e.Wait > 0 {
		return fmt.Sprintf("%s: %s still holds the lock after %s", e.Lock, who, e.Wait)
	}
	return fmt.Sprintf("%s: %s holds the lock on this output; --lock-wait waits for it", e.Lock, who)
}

// lockPoll is how often a waiting run tries the lock again: a blocking flock would not see ctx.
const lockPoll = 100 * time.Millisecond

// Lock takes the lock of path (on PATH.lock) as an update takes its output's, for a caller that
// changes several files under one lock: pkgsync sync holds it on its folder.
func Lock(ctx context.Context, path string, wait time.Duration, log *slog.Logger) (release func(), err error) {
	return lockOutput(ctx, path, wait, log)
}

// lockOutput takes the lock of out, waiting up to wait for another holder, and returns the
// function that releases it. A wait is logged on log (nil: quiet).
func lockOutput(ctx context.Context, out string, wait time.Duration, log *slog.Logger) (release func(), err error) {
	path := out + ".lock"
	deadline := time.Now().Add(wait)
	logged := false
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("cannot lock the output %s: %w", out, err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			if !sameFile(f, path) {
				f.Close() // its holder removed it as we opened it
				continue
			}
			if err := writePID(f); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return func() {
				if sameFile(f, path) {
					os.Remove(path) // before the unlock: see the comment at the top
				}
				f.Close()
			}, nil
		}
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: flock: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			return nil, &LockedError{Lock: path, PID: readPID(ctx, path), Wait: wait}
		}
		if !logged {
			logging.OrDiscard(log).Info("lock: another run holds it; waiting", "lock", path, "pid", readPID(ctx, path), "wait", wait)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(lockPoll, time.Until(deadline))):
		}
	}
}

// sameFile reports whether path still leads to the open file f.
func sameFile(f *os.File, path string) bool {
	fst, err := f.Stat()
	if err != nil {
		return false
	}
	pst, err := os.Stat(path)
	return err == nil && os.SameFile(fst, pst)
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readPID reads the holder's PID from the lock file. A holder that has just taken the lock
// writes it a moment later: an empty file is read again for up to half a second.
func readPID(ctx context.Context, path string) int {
	for range 25 {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			return pid
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0
}
