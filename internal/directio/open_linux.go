package directio

import (
	"os"

	"golang.org/x/sys/unix"
)

// Open opens path for writes that bypass the page cache (O_DIRECT). A file system that does
// not support it (tmpfs) may accept the open and refuse the first write with EINVAL.
func Open(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
}
