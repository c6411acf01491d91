package bt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestServesOnlyItsPackages checks issue 22's "a node only ever serves pieces of packages it
// was asked to update or seed": a peer that connects to a seeding node and names a package the
// node does not have learns nothing about it and is cut off after the handshake (anacrolix/
// torrent v1.59.1 echoes the handshake before it looks the info hash up), while for the package
// it seeds the node goes on to say what it has.
func TestServesOnlyItsPackages(t *testing.T) {
	ips := faultIPs(t, 1)
	fx := newFixture(t, 1<<20, 61)
	other := newFixture(t, 1<<20, 62)
	n := startNode(t, ips[0], nil)
	addPkg(t, n, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})

	// after connects, names ih and returns what the node sends after its handshake, until it
	// closes the connection (closed) or is quiet for a second.
	after := func(ih [20]byte) (rest []byte, closed bool) {
		t.Helper()
		c, err := net.DialTimeout("tcp4", n.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := append([]byte("\x13BitTorrent protocol"), make([]byte, 8)...)
		msg = append(msg, ih[:]...)
		msg = append(msg, []byte("-XX0001-abcdefghijkl")...)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		hs := make([]byte, 68)
		if _, err := io.ReadFull(c, hs); err != nil {
			return nil, true
		}
		var buf bytes.Buffer
		for {
			c.SetReadDeadline(time.Now().Add(time.Second))
			b := make([]byte, 4096)
			k, err := c.Read(b)
			buf.Write(b[:k])
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return buf.Bytes(), false
			}
			if err != nil {
				return buf.Bytes(), true
			}
		}
	}
	if rest, _ := after(fx.mi.HashInfoBytes()); len(rest) == 0 {
		t.Fatal("the node said nothing after the handshake for the package it seeds")
	}
	if rest, closed := after(other.mi.HashInfoBytes()); len(rest) != 0 || !closed {
		t.Fatalf("for a package the node does not have: %d bytes after the handshake (%x), closed %v; want none, closed", len(rest), rest, closed)
	}
}
