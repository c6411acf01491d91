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

// setReadLowWater does nothing where SO_RCVLOWAT is not known to hold back epoll's wake-ups
// (see the Linux version): reads wake as data arrives.
func setReadLowWater(c net.Conn, n int) error { return nil }

// unsentBytes returns 0 where the bytes a socket has not sent cannot be read: the fast server
// never answers busy there.
func unsentBytes(c net.Conn) int { return 0 }

// writeMore writes b to c: MSG_MORE is used on Linux only.
func writeMore(c net.Conn, b []byte) error {
	_, err := c.Write(b)
	return err
}
