package updater

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// The Linux calls the updater uses where they help, each with a portable fallback in
// sys_other.go: the update is correct without them, only slower or less careful of the disk.

// reserve allocates n bytes for f, so that a full disk fails at once and not after an hour of
// transfer. A file system without fallocate(2) (EOPNOTSUPP) is no error.
func reserve(f *os.File, n int64) error {
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil && !errors.Is(err, syscall.EOPNOTSUPP) {
		return err
	}
	return nil
}

// startWriteback asks the kernel to start writing f's dirty pages to disk without waiting for
// them (sync_file_range(2)); where the file system cannot, the fsync does it all.
func startWriteback(f *os.File) {
	_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

// flushData waits until f's data is on the disk (fdatasync(2)), not its times: the fsync
// before the rename writes those.
func flushData(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}

// freeBytes returns the bytes free to unprivileged users on the file system that holds dir.
func freeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}
