package bt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent/metainfo"
	"golang.org/x/time/rate"
)

const (
	// fastIdle: a fast-path connection that sends no request for this long is closed.
	fastIdle = time.Minute
	// fastSendTimeout: a client that takes no byte of a reply for this long is dropped.
	fastSendTimeout = 30 * time.Second
	// fastSlice is how much of a piece passes the upload limiter and goes out at once when
	// the upload is limited; unlimited, a piece goes out in one sendfile call.
	fastSlice = 256 << 10
	// fastServeSlots is on how many connections at once a server sends pieces: a request on
	// another connection, while that many still have bytes of a piece the kernel has not sent
	// (unsentBytes), is answered busy, and the client asks another peer, or this one again a
	// little later (fastFetch.receive). A request on a connection that is still sending waits
	// behind its own pieces: it adds no flow to the link.
	//
	// Without the cap, every node that lacks a piece a server has asks it at once, and the
	// server's link is shared among them all: in a 48-node swarm a node's 32 KiB piece took
	// 1.8 s (median) where it takes 65 ms alone, so a new piece took seconds per hop to spread
	// and the swarm's last pieces came long after the origin's. With the cap a piece reaches
	// a few peers quickly, and they pass it on. swarmbench, 48 nodes under opentracker, 8 MiB
	// at 4 Mbit/s, 3 runs each: B/A 0.51-0.54 without the cap; 0.61-0.70 with 3, 0.56-0.67
	// with 4, 0.62-0.67 with 5, 0.61-0.63 with 8, 0.58-0.61 with 12 (docs/BENCHMARKS.md).
	fastServeSlots = 5
)

// fastServer is a Node's side of the fast path (see fastExtension): it sends whole complete
// pieces of any of the Node's torrents, straight from Package.Data to the socket (sendfile on
// Linux), to pkgsync peers that ask. It applies the Node's bans and upload limit.
type fastServer struct {
	n    *Node
	l    net.Listener
	port uint16
	wg   sync.WaitGroup
	// busyReplies counts the busy replies sent.
	busyReplies atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]*servedConn // the connections being served; busy counts those still sending
	slots  int                      // fastServeSlots; tests lower it
	closed bool
}

// servedConn is what busy knows of one connection a fastServer serves, so that it reads the
// socket of only those that may still be sending: in a swarm most of a server's connections
// have sent nothing for a while, and an ioctl for each of them on every request was half of the
// server's CPU (a 16-node fan-out's profile).
type servedConn struct {
	// wrote counts the sendfile calls made on the connection, each counted once it returns
	// (its bytes are in the socket by then).
	wrote atomic.Uint64
	// drained is wrote's value, read before the socket was seen with nothing unsent: while
	// wrote still has that value, nothing was written since. Guarded by fastServer.mu.
	drained uint64
}

// sending reports whether c, served as sc, has bytes its socket has not sent yet; it reads
// the socket only when something was written since it was last seen drained. Call it with
// fastServer.mu held.
func (sc *servedConn) sending(c net.Conn) bool {
	w := sc.wrote.Load()
	if w == sc.drained {
		return false
	}
	if unsentBytes(c) > 0 {
		return true
	}
	sc.drained = w
	return false
}

// startFastServer listens beside the BitTorrent listener, on the same address and another
// port. A Node whose fast path cannot listen works without one.
func (n *Node) startFastServer() error {
	ip := n.addr.Addr()
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return fmt.Errorf("bt: fast path: listening on %s: %w", ip, err)
	}
	fs := &fastServer{n: n, l: l, port: uint16(l.Addr().(*net.TCPAddr).Port), conns: make(map[net.Conn]*servedConn),
		slots: fastServeSlots}
	n.fast = fs
	fs.wg.Add(1)
	go fs.accept()
	return nil
}

func (fs *fastServer) accept() {
	defer fs.wg.Done()
	for {
		c, err := fs.l.Accept()
		if err != nil {
			return // closed
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil || fs.n.isBanned(ap.Addr()) {
			c.Close()
			continue
		}
		fs.mu.Lock()
		if fs.closed {
			fs.mu.Unlock()
			c.Close()
			return
		}
		sc := &servedConn{}
		fs.conns[c] = sc
		fs.wg.Add(1)
		fs.mu.Unlock()
		go func() {
			defer fs.wg.Done()
			fs.serve(c, sc, ap.Addr().Unmap())
			fs.mu.Lock()
			delete(fs.conns, c)
			fs.mu.Unlock()
			c.Close()
		}()
	}
}

// close stops listening, closes every connection and waits for their goroutines.
func (fs *fastServer) close() {
	fs.mu.Lock()
	fs.closed = true
	fs.l.Close()
	for c := range fs.conns {
		c.Close()
	}
	fs.mu.Unlock()
	fs.wg.Wait()
}

// serve answers one connection's requests in order until it closes, goes idle or errs. sc is
// its entry in fs.conns; remote is the client's address, unmapped.
func (fs *fastServer) serve(c net.Conn, sc *servedConn, remote netip.Addr) {
	br := bufio.NewReaderSize(c, 512)
	var magic [len(fastMagic)]byte
	c.SetReadDeadline(time.Now().Add(fastIdle))
	if _, err := io.ReadFull(br, magic[:]); err != nil || magic != fastMagic && magic != fastMagicBusy {
		return
	}
	takesBusy := magic == fastMagicBusy
	req := make([]byte, fastRequestLen)
	for {
		c.SetReadDeadline(time.Now().Add(fastIdle))
		if _, err := io.ReadFull(br, req); err != nil {
			return
		}
		ih, piece, err := decodeFastRequest(req)
		if err != nil {
			fs.n.log.Debug("bt: fast path: closing a connection", "peer", c.RemoteAddr().String(), "err", err)
			return
		}
		if err := fs.reply(c, sc, remote, ih, piece, takesBusy); err != nil {
			fs.n.log.Debug("bt: fast path: closing a connection", "peer", c.RemoteAddr().String(), "err", err)
			return
		}
	}
}

// reply sends piece of the torrent ih to the client at remote, or a refusal when the Node does
// not have it complete, or, to a client that takes it, a busy reply when the server sends on
// fastServeSlots other connections already (busy). sc is c's entry in fs.conns.
func (fs *fastServer) reply(c net.Conn, sc *servedConn, remote netip.Addr, ih metainfo.Hash, piece uint32, takesBusy bool) error {
	fs.n.mu.Lock()
	t := fs.n.torrents[ih]
	fs.n.mu.Unlock()
	if t == nil || uint64(piece) >= uint64(t.info.NumPieces()) || t.store.closed.Load() || !t.store.isComplete(int(piece)) {
		return writeReplyHeader(c, msgFastRefused, int(piece), 0)
	}
	if takesBusy && fs.busy(c, sc) {
		fs.busyReplies.Add(1)
		return writeReplyHeader(c, msgFastBusy, int(piece), 0)
	}
	p := int(piece)
	length := t.store.pieceLength(p)
	if err := writeReplyHeader(c, msgFastData, p, length); err != nil {
		return err
	}
	off := int64(p) * t.info.PieceLength
	for sent := int64(0); sent < length; {
		n := length - sent
		if fs.n.upLimit.Limit() != rate.Inf {
			n = min(fastSlice, n)
		}
		if err := waitRate(t.ctx, fs.n.upLimit, int(n)); err != nil {
			return err
		}
		c.SetWriteDeadline(time.Now().Add(fastSendTimeout))
		m, err := sendFile(c, t.pkg.Data, off+sent, n)
		sc.wrote.Add(1)
		sent += m
		t.fastUp.Add(m)
		if err != nil {
			return fmt.Errorf("sending piece %d of %s from %s at %d: %w", p, t.name, t.pkg.Data.Name(), off+sent, err)
		}
	}
	t.creditFastUpload(remote, length)
	return nil
}

// writeReplyHeader writes a reply's header (encodeFastReply) to c. A data reply's header is
// held back for the piece that follows it (writeMore), so that the two leave in the same
// packets: written alone, on a connection without Nagle's algorithm, it took a packet of its
// own (and an acknowledgement) per piece.
func writeReplyHeader(c net.Conn, kind byte, piece int, length int64) error {
	c.SetWriteDeadline(time.Now().Add(fastSendTimeout))
	hdr := encodeFastReply(kind, piece, length)
	if kind == msgFastData && length > 0 {
		return writeMore(c, hdr)
	}
	_, err := c.Write(hdr)
	return err
}

// busy reports whether the server sends pieces on fs.slots connections other than c (served
// as sc), and c has nothing of its own left to send: a new piece on c would share the link
// with them. With no more connections than slots it reads no socket, and of the others only
// those written to since they were last seen drained (servedConn.sending).
func (fs *fastServer) busy(c net.Conn, sc *servedConn) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.conns) <= fs.slots || sc.sending(c) {
		return false
	}
	sending := 0
	for o, osc := range fs.conns {
		if o != c && osc.sending(o) {
			if sending++; sending >= fs.slots {
				return true
			}
		}
	}
	return false
}

// readAtWrite sends n bytes of f at off to w through a buffer: sendFile where the system has
// no sendfile, or the connection is not a TCP socket.
func readAtWrite(w io.Writer, f *os.File, off, n int64) (int64, error) {
	buf := make([]byte, min(n, fastSlice))
	var sent int64
	for sent < n {
		b := buf[:min(int64(len(buf)), n-sent)]
		if _, err := f.ReadAt(b, off+sent); err != nil {
			return sent, err
		}
		m, err := w.Write(b)
		sent += int64(m)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// waitRate waits until lim allows n bytes; nil or unlimited limiters never wait. A burst below
// n is taken in steps; a burst of 0 (the library's download limiter) waits n/limit.
func waitRate(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil || lim.Limit() == rate.Inf || n <= 0 {
		return nil
	}
	if lim.Limit() <= 0 {
		return errors.New("bt: rate limit of 0")
	}
	for n > 0 {
		b := lim.Burst()
		if b <= 0 {
			d := time.Duration(float64(n) / float64(lim.Limit()) * float64(time.Second))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
				return nil
			}
		}
		k := min(n, b)
		if err := lim.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
