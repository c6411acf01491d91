//go:build linux

package bt

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendFile sends n bytes of f at off to c with sendfile(2): the bytes go from the page cache to
// the socket without a copy through this process, and f's offset is left alone (peers ask for
// pieces of one file in parallel). Connections other than TCP sockets take readAtWrite.
func sendFile(c net.Conn, f *os.File, off, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	sc, err := tcpRaw(c)
	if err != nil {
		return 0, err
	}
	if sc == nil {
		return readAtWrite(c, f, off, n)
	}
	fc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var sent int64
	var serr error
	cerr := fc.Control(func(ffd uintptr) {
		serr = rawWrite(sc, func(sfd int) (bool, error) {
			pos := off + sent
			m, err := syscall.Sendfile(sfd, int(ffd), &pos, int(n-sent))
			if m > 0 {
				sent += int64(m)
			}
			if err == nil && m == 0 {
				err = fmt.Errorf("%s ends before %d", f.Name(), off+n)
			}
			return sent >= n, err
		})
	})
	if serr == nil {
		serr = cerr
	}
	return sent, serr
}

// writeMore writes b to c with MSG_MORE: the kernel holds the bytes back until more are
// written (or for at most 200 ms), as TCP_CORK would without its two system calls. The next
// write must follow at once. Connections other than TCP sockets take a plain write.
func writeMore(c net.Conn, b []byte) error {
	sc, err := tcpRaw(c)
	if err != nil {
		return err
	}
	if sc == nil {
		_, err := c.Write(b)
		return err
	}
	return rawWrite(sc, func(fd int) (bool, error) {
		m, err := unix.SendmsgN(fd, b, nil, nil, unix.MSG_MORE)
		if m > 0 {
			b = b[m:]
		}
		return len(b) == 0, err
	})
}

// rawWrite calls step with sc's socket until it reports done or fails; when step fails with
// EAGAIN it waits for the socket to take more (and the write deadline), and EINTR is retried.
// step makes one system call and keeps its own count of what is written.
func rawWrite(sc syscall.RawConn, step func(fd int) (done bool, err error)) error {
	var serr error
	werr := sc.Write(func(fd uintptr) bool {
		for {
			done, err := step(int(fd))
			switch {
			case errors.Is(err, syscall.EAGAIN):
				return false // wait until the socket takes more
			case errors.Is(err, syscall.EINTR):
			case err != nil:
				serr = err
				return true
			case done:
				return true
			}
		}
	})
	if serr != nil {
		return serr
	}
	return werr
}

// setReadLowWater has c's socket hold back a read's wake-up until n bytes are there
// (SO_RCVLOWAT, which Linux's TCP honours in epoll): a piece that arrives at a shaped link's
// pace otherwise wakes its reader for every few packets. n must not exceed what is sure to
// arrive, or the reader waits until the connection ends. Connections other than TCP sockets
// are left alone.
func setReadLowWater(c net.Conn, n int) error {
	var serr error
	err := controlTCP(c, func(fd int) {
		serr = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	})
	if err != nil {
		return err
	}
	return serr
}

// unsentBytes returns how many bytes c's socket holds that TCP has not sent yet (bytes sent
// and not yet acknowledged are not counted); 0 for connections other than TCP sockets, and on
// error.
func unsentBytes(c net.Conn) int {
	n := 0
	controlTCP(c, func(fd int) {
		if v, err := unix.IoctlGetInt(fd, unix.SIOCOUTQNSD); err == nil {
			n = v
		}
	})
	return n
}

// controlTCP runs f on c's socket if c is a TCP connection, and does nothing otherwise.
func controlTCP(c net.Conn, f func(fd int)) error {
	sc, err := tcpRaw(c)
	if sc == nil || err != nil {
		return err
	}
	return sc.Control(func(fd uintptr) { f(int(fd)) })
}

// tcpRaw returns c's socket for system calls of this file's own, or nil when c is not a TCP
// connection (a test's pipe, a TLS wrapper): those take the plain path.
func tcpRaw(c net.Conn) (syscall.RawConn, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, nil
	}
	return tc.SyscallConn()
}
