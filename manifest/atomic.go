package manifest

import (
	"fmt"
	"os"
	"path/filepath"
)

// atomicFile is written under a temporary name in the destination's folder and renamed over the
// destination by Commit after an fsync; Abort (safe after Commit) removes the temporary file.
type atomicFile struct {
	*os.File
	dest string
	done bool
}

func newAtomicFile(dest string) (*atomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", dest, err)
	}
	return &atomicFile{File: f, dest: dest}, nil
}

// Commit makes the written content durable and visible under the destination name.
func (a *atomicFile) Commit() error {
	if err := a.Chmod(0o644); err != nil {
		return fmt.Errorf("%s: %w", a.dest, err)
	}
	if err := a.Sync(); err != nil {
		return fmt.Errorf("%s: sync: %w", a.dest, err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("%s: %w", a.dest, err)
	}
	if err := os.Rename(a.Name(), a.dest); err != nil {
		return fmt.Errorf("%s: %w", a.dest, err)
	}
	a.done = true
	if d, err := os.Open(filepath.Dir(a.dest)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort removes the temporary file unless Commit succeeded.
func (a *atomicFile) Abort() {
	if a.done {
		return
	}
	a.Close()
	os.Remove(a.Name())
}

// WriteFile writes data to path as the outputs of Make are written: under a temporary name in
// the same folder, synced, mode 0644, then renamed over path, so that a reader sees the old
// file or the new one, never a part.
func WriteFile(path string, data []byte) error {
	a, err := newAtomicFile(path)
	if err != nil {
		return err
	}
	defer a.Abort()
	if _, err := a.Write(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return a.Commit()
}
