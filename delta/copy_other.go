//go:build !linux

package delta

import "io"

// copyFileRange reports false: outside Linux there is no copy_file_range(2), and the caller
// copies through user memory, which is correct everywhere.
func copyFileRange(src io.ReaderAt, dst io.WriterAt, off, dstOff, n int64) bool { return false }
