//go:build !linux

package updater

import (
	"os"
)

// reserve does nothing outside Linux: without fallocate(2) a full disk shows when a write fails,
// which the update reports the same way, only later.
func reserve(f *os.File, n int64) error { return nil }

// startWriteback does nothing outside Linux: the fsync before the rename writes everything.
func startWriteback(f *os.File) {}

// flushData waits until f is on the disk.
func flushData(f *os.File) error { return f.Sync() }

// freeBytes cannot tell outside Linux; messages about a full disk then leave the figure out.
func freeBytes(dir string) (int64, bool) { return 0, false }
