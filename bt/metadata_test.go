package bt

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	utHolepunch "github.com/anacrolix/torrent/peer_protocol/ut-holepunch"
)

// infoFallback is an origin for info dictionaries: it counts what it is asked.
type infoFallback struct {
	info  []byte
	calls atomic.Int64
}

func (f *infoFallback) fetch(context.Context) ([]byte, error) {
	f.calls.Add(1)
	return bytes.Clone(f.info), nil
}

// fetchInfos runs FetchInfo on every node at once for fx's torrent and returns the results.
func fetchInfos(t *testing.T, nodes []*Node, fx *fixture, fb *infoFallback, trackers []string, peers []netip.AddrPort, wait time.Duration) []InfoResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res := make([]InfoResult, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			res[i], errs[i] = n.FetchInfo(ctx, InfoRequest{InfoHash: fx.mi.HashInfoBytes(), Name: "pkg.bin", Length: int64(len(fx.src)),
				Trackers: trackers, Peers: peers, Wait: wait, Fallback: fb.fetch})
		})
	}
	wg.Wait()
	for i := range nodes {
		if errs[i] != nil {
			dumpNodes(t)
			t.Fatalf("node %d: %v", i, errs[i])
		}
		if !bytes.Equal(res[i].Info, fx.mi.InfoBytes) {
			t.Fatalf("node %d got an info dictionary of %d bytes, not the torrent's", i, len(res[i].Info))
		}
	}
	return res
}

// Nodes that start together, none of them with the info: the first to announce takes it from
// the origin, and the others get it from peers, also the ones that met before anybody had it
// (the wait is long, so that none gets there by the bound). Then each adds the package in the
// info-only torrent's place and downloads it from a seeder.
func TestFetchInfoTogether(t *testing.T) {
	const nodes = 6
	var ft fakeTracker
	srv := httptest.NewServer(&ft)
	defer srv.Close()
	announce := srv.URL + "/announce"
	fx := newFixture(t, 3<<20+5, 31, announce)
	// Many pieces, so that the info dictionary takes several metadata pieces of 16 KiB.
	fb := &infoFallback{info: fx.mi.InfoBytes}
	var ns []*Node
	for i := range nodes {
		ns = append(ns, startNode(t, loopback(t, i), nil))
	}
	start := time.Now()
	res := fetchInfos(t, ns, fx, fb, []string{announce}, nil, time.Minute)
	t.Logf("every node had the info after %v", time.Since(start).Round(time.Millisecond))
	fromPeers := 0
	for i, r := range res {
		t.Logf("node %d: from peers %v, fallback %q", i, r.FromPeers, r.Why)
		if r.FromPeers {
			fromPeers++
		} else if r.Why != "first" {
			t.Errorf("node %d went to the origin for %q", i, r.Why)
		}
	}
	if got := fb.calls.Load(); got != 1 || fromPeers != nodes-1 {
		t.Fatalf("the origin was asked %d times and %d nodes got the info from peers, want 1 and %d", got, fromPeers, nodes-1)
	}

	seeder := startNode(t, loopback(t, nodes), nil)
	addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
	var wg sync.WaitGroup
	for _, n := range ns {
		part := fx.partFile(t, nil)
		tor := addPkg(t, n, Package{MetaInfo: fx.mi, Data: part, Peers: []netip.AddrPort{seeder.Addr()}})
		wg.Go(func() {
			download(t, tor)
			checkData(t, part, fx.src)
		})
	}
	wg.Wait()
}

// A node whose peers hold the package (here a seeder) takes the info from them and never asks
// the origin.
func TestFetchInfoFromSeeder(t *testing.T) {
	var ft fakeTracker
	srv := httptest.NewServer(&ft)
	defer srv.Close()
	announce := srv.URL + "/announce"
	fx := newFixture(t, 1<<20, 32, announce)
	fb := &infoFallback{info: fx.mi.InfoBytes}
	seeder := startNode(t, loopback(t, 0), nil)
	addPkg(t, seeder, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
	waitFor(t, "the seeder's announce", func() bool { return ft.sawEvent(seeder.Addr().String() + " started") })
	ns := []*Node{startNode(t, loopback(t, 1), nil), startNode(t, loopback(t, 2), nil), startNode(t, loopback(t, 3), nil)}
	for i, r := range fetchInfos(t, ns, fx, fb, []string{announce}, nil, time.Minute) {
		if !r.FromPeers {
			t.Errorf("node %d: fallback %q", i, r.Why)
		}
	}
	if got := fb.calls.Load(); got != 0 {
		t.Fatalf("the origin was asked %d times", got)
	}
	// The info-only torrents never learn what their peers have (see Node.setCallbacks): the
	// seeder's pieces are not counted, so nothing can be miscounted when they are dropped. And
	// neither the seeder's package nor the info-only torrents offer hole punching.
	for i, n := range ns {
		n.mu.Lock()
		lt := n.metas[fx.mi.HashInfoBytes()].lt
		n.mu.Unlock()
		waitFor(t, fmt.Sprintf("node %d's extended handshake with the seeder", i), func() bool {
			for _, pc := range lt.PeerConns() {
				if pc.RemoteAddr.String() == seeder.Addr().String() && pc.PeerExtensionIDs != nil {
					return true
				}
			}
			return false
		})
		for _, pc := range lt.PeerConns() {
			if pieces := pc.PeerPieces(); !pieces.IsEmpty() {
				t.Errorf("node %d's info-only torrent knows %d pieces of %v", i, pieces.GetCardinality(), pc.RemoteAddr)
			}
			if pc.PeerExtensionIDs == nil {
				continue // a connection whose extended handshake is on its way
			}
			if _, ok := pc.PeerExtensionIDs[utHolepunch.ExtensionName]; ok {
				t.Errorf("node %d: %v offers ut_holepunch: %v", i, pc.RemoteAddr, pc.PeerExtensionIDs)
			}
			if _, ok := pc.PeerExtensionIDs[pp.ExtensionNameMetadata]; !ok {
				t.Errorf("node %d: %v does not offer ut_metadata: %v", i, pc.RemoteAddr, pc.PeerExtensionIDs)
			}
		}
	}
	// The Node knows it now: no second fetch; and a node that leaves tells the tracker.
	again, err := ns[0].FetchInfo(t.Context(), InfoRequest{InfoHash: fx.mi.HashInfoBytes(), Fallback: fb.fetch})
	if err != nil || !bytes.Equal(again.Info, fx.mi.InfoBytes) || fb.calls.Load() != 0 {
		t.Fatalf("a second FetchInfo: %v", err)
	}
	ns[0].DropInfo(fx.mi.HashInfoBytes())
	if !ft.sawEvent(ns[0].Addr().String() + " stopped") {
		t.Fatal("DropInfo sent no stopped announce")
	}
}

// Peers that do not have the info: the node waits the bound, takes it from the origin, and
// passes it on to the peer it waited for.
func TestFetchInfoFallback(t *testing.T) {
	fx := newFixture(t, 1<<20, 33)
	lacking := startNode(t, loopback(t, 0), nil)
	ih := fx.mi.HashInfoBytes()
	// With no tracker, no peer and no other source, there is nobody to ask.
	if _, err := lacking.FetchInfo(t.Context(), InfoRequest{InfoHash: ih, Name: "pkg.bin"}); err == nil {
		t.Fatal("FetchInfo with nobody to ask and no fallback succeeded")
	}
	got := make(chan error, 1)
	n := startNode(t, loopback(t, 1), nil)
	go func() {
		// Peers only: it gets the info once the other node has it.
		r, err := lacking.FetchInfo(t.Context(), InfoRequest{InfoHash: ih, Name: "pkg.bin", Peers: []netip.AddrPort{n.Addr()}, Wait: time.Minute})
		if err == nil && !bytes.Equal(r.Info, fx.mi.InfoBytes) {
			err = fmt.Errorf("a wrong info dictionary")
		}
		got <- err
	}()
	fb := &infoFallback{info: fx.mi.InfoBytes}
	start := time.Now()
	r, err := n.FetchInfo(t.Context(), InfoRequest{InfoHash: ih, Name: "pkg.bin", Peers: []netip.AddrPort{lacking.Addr()}, Wait: 300 * time.Millisecond, Fallback: fb.fetch})
	if err != nil || r.FromPeers || r.Why != "wait" || fb.calls.Load() != 1 || !bytes.Equal(r.Info, fx.mi.InfoBytes) {
		t.Fatalf("FetchInfo: %+v, %v; fallback called %d times", r.Why, err, fb.calls.Load())
	}
	t.Logf("fell back after %v", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("the peer that lacked the info: %v", err)
		}
	case <-time.After(testTimeout):
		dumpNodes(t)
		t.Fatal("the peer that lacked the info never got it from the node that fetched it")
	}
}

// A peer that offers an info dictionary of another hash: the node does not take it (the
// library does, see metadata.go), and asks the origin.
func TestFetchInfoWrongPeer(t *testing.T) {
	fx := newFixture(t, 1<<20, 34)
	other := newFixture(t, 1<<20, 35)
	liar := startMetaLiar(t, loopback(t, 0), fx.mi.HashInfoBytes(), other.mi.InfoBytes)
	n := startNode(t, loopback(t, 1), nil)
	fb := &infoFallback{info: fx.mi.InfoBytes}
	r, err := n.FetchInfo(t.Context(), InfoRequest{InfoHash: fx.mi.HashInfoBytes(), Name: "pkg.bin", Peers: []netip.AddrPort{liar}, Wait: time.Minute, Fallback: fb.fetch})
	if err != nil {
		t.Fatal(err)
	}
	if r.FromPeers || r.Why != "bad" || !bytes.Equal(r.Info, fx.mi.InfoBytes) || fb.calls.Load() != 1 {
		t.Fatalf("result %q from peers %v, fallback called %d times", r.Why, r.FromPeers, fb.calls.Load())
	}
	// The node now serves the right one: a second node takes it from the first.
	m := startNode(t, loopback(t, 2), nil)
	r2, err := m.FetchInfo(t.Context(), InfoRequest{InfoHash: fx.mi.HashInfoBytes(), Name: "pkg.bin", Peers: []netip.AddrPort{n.Addr()}, Wait: time.Minute})
	if err != nil || !r2.FromPeers || !bytes.Equal(r2.Info, fx.mi.InfoBytes) {
		dumpNodes(t)
		t.Fatalf("from the node that fell back: %v", err)
	}
}

// startMetaLiar starts a peer on ip that offers info (of another hash) as the metadata of ih.
func startMetaLiar(t *testing.T, ip string, ih metainfo.Hash, info []byte) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				serveMetaLie(c, ih, info)
			})
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// serveMetaLie speaks to one connection: handshake, an extended handshake offering ut_metadata
// of len(info) bytes, and info's pieces for every request.
func serveMetaLie(c net.Conn, ih metainfo.Hash, info []byte) {
	c.SetDeadline(time.Now().Add(testTimeout))
	var id [20]byte
	copy(id[:], "-LIAR01-")
	_, _ = rand.Read(id[8:])
	var bits pp.PeerExtensionBits
	bits.SetBit(pp.ExtensionBitLtep, true)
	if res, err := pp.Handshake(context.Background(), c, &ih, id, bits); err != nil || res.Hash != ih {
		return
	}
	const ourMetadataID = 3
	hs := bencode.MustMarshal(pp.ExtendedHandshakeMessage{M: map[pp.ExtensionName]pp.ExtensionNumber{pp.ExtensionNameMetadata: ourMetadataID}, MetadataSize: len(info)})
	send := func(m pp.Message) error {
		b, err := m.MarshalBinary()
		if err == nil {
			_, err = c.Write(b)
		}
		return err
	}
	if send(pp.Message{Type: pp.Extended, ExtendedID: pp.HandshakeExtendedID, ExtendedPayload: hs}) != nil {
		return
	}
	d := pp.Decoder{R: bufio.NewReader(c), MaxLength: 1 << 20, Pool: &sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}}
	var theirs pp.ExtensionNumber
	for {
		var m pp.Message
		if d.Decode(&m) != nil {
			return
		}
		if m.Type != pp.Extended {
			continue
		}
		if m.ExtendedID == pp.HandshakeExtendedID {
			var h pp.ExtendedHandshakeMessage
			if bencode.Unmarshal(m.ExtendedPayload, &h) == nil {
				theirs = h.M[pp.ExtensionNameMetadata]
			}
			continue
		}
		var q pp.ExtendedMetadataRequestMsg
		if m.ExtendedID != ourMetadataID || theirs == 0 || bencode.Unmarshal(m.ExtendedPayload, &q) != nil || q.Type != pp.RequestMetadataExtensionMsgType {
			continue
		}
		start := q.Piece * 16 << 10
		if start >= len(info) {
			continue
		}
		piece := info[start:min(start+16<<10, len(info))]
		payload := append(bencode.MustMarshal(pp.ExtendedMetadataRequestMsg{Type: pp.DataMetadataExtensionMsgType, Piece: q.Piece, TotalSize: len(info)}), piece...)
		if send(pp.Message{Type: pp.Extended, ExtendedID: theirs, ExtendedPayload: payload}) != nil {
			return
		}
	}
}

// A node that waits alone (WaitAlone) is not taken for the first of its swarm: it waits for a
// node that offers the info with ServeInfo and announces it after it.
func TestServeInfoWaitAlone(t *testing.T) {
	var ft fakeTracker
	srv := httptest.NewServer(&ft)
	defer srv.Close()
	announce := srv.URL + "/announce"
	fx := newFixture(t, 1<<20, 36, announce)
	ih := fx.mi.HashInfoBytes()
	fb := &infoFallback{info: fx.mi.InfoBytes}
	waiter, server := startNode(t, loopback(t, 0), nil), startNode(t, loopback(t, 1), nil)
	got := make(chan InfoResult, 1)
	go func() {
		r, err := waiter.FetchInfo(t.Context(), InfoRequest{InfoHash: ih, Name: "pkg.bin", Trackers: []string{announce}, Wait: time.Minute, Fallback: fb.fetch, WaitAlone: true})
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	waitFor(t, "the waiter's announce", func() bool { return ft.sawEvent(waiter.Addr().String() + " started") })
	if err := server.ServeInfo(InfoRequest{InfoHash: ih, Name: "pkg.bin", Trackers: []string{announce}}, fx.other(t)); err == nil {
		t.Fatal("ServeInfo took an info dictionary of another hash")
	}
	if err := server.ServeInfo(InfoRequest{InfoHash: ih, Name: "pkg.bin", Trackers: []string{announce}}, fx.mi.InfoBytes); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if !r.FromPeers || !bytes.Equal(r.Info, fx.mi.InfoBytes) || fb.calls.Load() != 0 {
		t.Fatalf("from peers %v (%q), fallback called %d times", r.FromPeers, r.Why, fb.calls.Load())
	}
	// Add takes the place of the info-only torrent.
	addPkg(t, server, Package{MetaInfo: fx.mi, Data: fx.seedFile(t), Have: fx.all()})
}

// other returns the info dictionary of another file.
func (fx *fixture) other(t *testing.T) []byte {
	return newFixture(t, len(fx.src), 99).mi.InfoBytes
}

func TestWithoutHolepunch(t *testing.T) {
	tests := []struct {
		name        string
		in          torrent.LocalLtepProtocolMap
		want        []pp.ExtensionName
		wantBuiltin int
	}{
		{"the library's, PEX off", torrent.LocalLtepProtocolMap{Index: []pp.ExtensionName{pp.ExtensionNameMetadata, utHolepunch.ExtensionName}, NumBuiltin: 2},
			[]pp.ExtensionName{pp.ExtensionNameMetadata}, 1},
		{"the library's, PEX on", torrent.LocalLtepProtocolMap{Index: []pp.ExtensionName{pp.ExtensionNameMetadata, utHolepunch.ExtensionName, pp.ExtensionNamePex}, NumBuiltin: 3},
			[]pp.ExtensionName{pp.ExtensionNameMetadata, pp.ExtensionNamePex}, 2},
		{"no hole punching to remove", torrent.LocalLtepProtocolMap{Index: []pp.ExtensionName{pp.ExtensionNameMetadata}, NumBuiltin: 1},
			[]pp.ExtensionName{pp.ExtensionNameMetadata}, 1},
		{"a user protocol stays one", torrent.LocalLtepProtocolMap{Index: []pp.ExtensionName{utHolepunch.ExtensionName, claimExtension}, NumBuiltin: 1},
			[]pp.ExtensionName{claimExtension}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			before := slices.Clone(in.Index)
			got := withoutHolepunch(&in)
			if !slices.Equal(got.Index, tt.want) || got.NumBuiltin != tt.wantBuiltin {
				t.Errorf("got %v (%d builtin), want %v (%d builtin)", got.Index, got.NumBuiltin, tt.want, tt.wantBuiltin)
			}
			if !slices.Equal(in.Index, before) {
				t.Errorf("the library's map changed: %v, was %v", in.Index, before)
			}
		})
	}
}
