//go:build !linux

package bt

import (
	"net"
	"os"
)

// sendFile sends n bytes of f at off to c through a buffer (sendfile is used on Linux only).
func sendFile(c net.Conn, f *os.File, off, n int64) (int64, error) {
	return readAtWrite(c, f, off, n)
}
