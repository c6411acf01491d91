//go:build linux

package bt

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sendingPair returns the two ends of a loopback TCP connection; with stuck, the server end
// holds bytes it could not send: its client reads nothing and takes little into its buffer.
func sendingPair(t *testing.T, stuck bool) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	client, err = d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	if stuck {
		// More than the client's window and the server's send buffer: the write stops at
		// the deadline with bytes left in the server's socket. On a loaded machine the
		// deadline can pass before the write starts: then it is tried again.
		b := make([]byte, 16<<20)
		for try := 0; try < 20 && unsentBytes(server) == 0; try++ {
			server.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			server.Write(b)
		}
		if unsentBytes(server) == 0 {
			t.Fatal("a connection whose client reads nothing has no unsent bytes")
		}
	} else if n := unsentBytes(server); n != 0 {
		t.Fatalf("an idle connection has %d unsent bytes", n)
	}
	return server, client
}

// The fast server answers busy once it sends on fastServeSlots other connections, and never
// to a connection that is sending itself: its new piece waits behind its own. A connection
// that was written to and has sent it all does not count, and is not read again until it is
// written to once more.
func TestFastServerBusy(t *testing.T) {
	const slots = 3
	tests := []struct {
		name        string
		others      int // other connections that are sending
		drained     int // other connections written to that sent it all
		idle        int // other connections never written to
		selfSending bool
		wantBusy    bool
	}{
		{"every slot taken", slots, 0, 0, false, true},
		{"every slot taken, idle connections beside", slots, 0, 4, false, true},
		{"every slot taken, drained connections beside", slots, 3, 0, false, true},
		{"one slot free", slots - 1, 0, 4, false, false},
		{"one slot free, the rest drained", slots - 1, 4, 0, false, false},
		{"the asking connection is sending", slots, 0, 0, true, false},
		{"no other connection sends", 0, 3, 6, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fastServer{conns: make(map[net.Conn]*servedConn), slots: slots}
			var drained []*servedConn
			for i := range tc.others + tc.drained + tc.idle {
				c, _ := sendingPair(t, i < tc.others)
				sc := &servedConn{}
				if i < tc.others+tc.drained {
					sc.wrote.Store(1)
				}
				if i >= tc.others && i < tc.others+tc.drained {
					drained = append(drained, sc)
				}
				fs.conns[c] = sc
			}
			self, _ := sendingPair(t, tc.selfSending)
			selfSC := &servedConn{}
			selfSC.wrote.Store(1)
			fs.conns[self] = selfSC
			if got := fs.busy(self, selfSC); got != tc.wantBusy {
				t.Errorf("busy: %t, want %t", got, tc.wantBusy)
			}
			if tc.wantBusy {
				return // busy stops counting at the last slot: it need not have read them all
			}
			for i, sc := range drained {
				if sc.drained != 1 {
					t.Errorf("drained connection %d: seen drained at %d writes, want 1", i, sc.drained)
				}
			}
		})
	}
}

// A connection's socket is read again once it is written to after it was seen drained.
func TestServedConnSending(t *testing.T) {
	c, _ := sendingPair(t, true)
	var sc servedConn
	if sc.sending(c) {
		t.Error("a connection never written to (by the server's count) is sending")
	}
	sc.wrote.Store(1)
	if !sc.sending(c) {
		t.Error("a connection with unsent bytes, written to, is not sending")
	}
	if sc.drained != 0 {
		t.Errorf("a sending connection was marked drained at %d writes", sc.drained)
	}
	idle, _ := sendingPair(t, false)
	sc.wrote.Store(2)
	if sc.sending(idle) || sc.drained != 2 {
		t.Errorf("a drained connection: sending, or marked drained at %d writes, want 2", sc.drained)
	}
	if sc.sending(c) {
		t.Error("a connection seen drained was read again before anything was written to it")
	}
}

// A seeder that sends on one connection at a time answers the others busy, and every
// downloader still gets the whole package over the fast path: a busy piece goes back and is
// asked for again, from the seeder or from a peer that has it by then.
func TestFastServerBusySwarm(t *testing.T) {
	fx := newFixture(t, 3<<20+999, 63)
	seeder := startNode(t, loopback(t, 0), nil)
	addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
	seeder.fast.mu.Lock()
	seeder.fast.slots = 1
	seeder.fast.mu.Unlock()
	type dl struct {
		part *os.File
		tor  *Torrent
	}
	var dls []dl
	for i := range 3 {
		// Downloaders that read slowly leave the seeder's sockets full, so that it counts
		// them as sending.
		n := startNode(t, loopback(t, 1+i), func(c *Config) { c.MaxDownloadRate = 2 << 20 })
		part := fx.partFile(t, nil)
		dls = append(dls, dl{part, addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Peers: []netip.AddrPort{seeder.Addr()}})})
	}
	var wg sync.WaitGroup
	for _, d := range dls {
		wg.Go(func() { download(t, d.tor) })
	}
	wg.Wait()
	for _, d := range dls {
		checkData(t, d.part, fx.src)
		if st := d.tor.Stats(); st.BytesFromPeersFast != int64(len(fx.src)) {
			t.Errorf("%d bytes over the fast path, want all %d", st.BytesFromPeersFast, len(fx.src))
		}
	}
	if n := seeder.fast.busyReplies.Load(); n == 0 {
		t.Error("the seeder with one slot answered no request busy")
	} else {
		t.Logf("the seeder answered %d requests busy", n)
	}
}

// sendFile sends the asked bytes of a file, and fails naming the file when it ends first;
// writeMore's bytes go out with what follows them.
func TestSendFile(t *testing.T) {
	fx := newFixture(t, 300<<10, 64)
	data, path := fx.src, fx.srcPath
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name    string
		off, n  int64
		wantErr bool
	}{
		{"all of it", 0, int64(len(data)), false},
		{"a piece in the middle", 1000, 64 << 10, false},
		{"nothing", 5, 0, false},
		{"past the end", int64(len(data)) - 10, 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			server, client := sendingPair(t, false)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(client)
				got <- b
			}()
			if err := writeMore(server, []byte("hdr:")); err != nil {
				t.Fatal(err)
			}
			sent, err := sendFile(server, f, tc.off, tc.n)
			server.Close()
			b := <-got
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), path) {
					t.Errorf("sendFile past the end: %v, want an error naming %s", err, path)
				}
				return
			}
			if err != nil || sent != tc.n {
				t.Fatalf("sendFile: %d, %v; want %d", sent, err, tc.n)
			}
			if want := append([]byte("hdr:"), data[tc.off:tc.off+tc.n]...); !bytes.Equal(b, want) {
				t.Errorf("the client got %d bytes, want the header and %d bytes of the file", len(b), tc.n)
			}
		})
	}
}
