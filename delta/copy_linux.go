package delta

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// copyFileRange copies n bytes between two files inside the kernel (copy_file_range(2)): no
// round trip through user memory, and a reflink where the file system can share extents. It
// reports false, having copied nothing that matters, when either side is not an *os.File or the
// kernel declines (another file system, an old kernel); the caller then copies by hand.
func copyFileRange(src io.ReaderAt, dst io.WriterAt, off, dstOff, n int64) bool {
	sf, ok1 := src.(*os.File)
	df, ok2 := dst.(*os.File)
	if !ok1 || !ok2 {
		return false
	}
	for n > 0 {
		c, err := unix.CopyFileRange(int(sf.Fd()), &off, int(df.Fd()), &dstOff, int(n), 0)
		if err != nil || c <= 0 {
			return false // the caller rewrites the whole run, so a partial copy is harmless
		}
		n -= int64(c)
	}
	return true
}
