package bt

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/originplan"
	"github.com/pkgsync/pkgsync/topology"
)

func TestRankPeers(t *testing.T) {
	ap := netip.MustParseAddrPort
	topo, err := topology.Parse(strings.NewReader("10.0.0.0/8 dc1\n10.9.0.0/16 dc1/row9\n10.1.0.0/16 dc1/row1\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		topo *topology.Map
		self netip.AddrPort
		in   []netip.AddrPort
		want []netip.AddrPort
	}{
		{
			name: "sites first, then common prefix",
			topo: topo,
			self: ap("10.1.2.3:6881"),
			in:   []netip.AddrPort{ap("192.168.0.1:1"), ap("10.9.0.1:1"), ap("10.1.200.1:1"), ap("10.2.2.3:1")},
			want: []netip.AddrPort{ap("10.1.200.1:1"), ap("10.2.2.3:1"), ap("10.9.0.1:1"), ap("192.168.0.1:1")},
		},
		{
			name: "closest first, ties keep order",
			self: ap("10.1.2.3:6881"),
			in:   []netip.AddrPort{ap("10.9.0.1:1"), ap("10.1.2.9:1"), ap("192.168.0.1:1"), ap("10.1.2.4:1"), ap("10.9.0.2:1")},
			want: []netip.AddrPort{ap("10.1.2.4:1"), ap("10.1.2.9:1"), ap("10.9.0.1:1"), ap("10.9.0.2:1"), ap("192.168.0.1:1")},
		},
		{
			name: "drops self, duplicates, port 0, unmaps",
			self: ap("10.1.2.3:6881"),
			in:   []netip.AddrPort{ap("10.1.2.3:6881"), ap("10.1.2.5:0"), ap("[::ffff:10.1.2.6]:7"), ap("10.1.2.6:7")},
			want: []netip.AddrPort{ap("10.1.2.6:7")},
		},
		{
			name: "unspecified self keeps order",
			self: ap("0.0.0.0:6881"),
			in:   []netip.AddrPort{ap("192.168.0.1:1"), ap("10.1.2.4:1")},
			want: []netip.AddrPort{ap("192.168.0.1:1"), ap("10.1.2.4:1")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rankPeers(tc.self, tc.in, tc.topo)
			if !slices.Equal(got, tc.want) {
				t.Errorf("rankPeers = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClaimCodec(t *testing.T) {
	for _, tc := range []struct {
		kind   byte
		pieces []int
	}{
		{msgClaim, []int{0, 5, 1 << 20}},
		{msgRelease, []int{7}},
		{msgClaim, nil},
		{msgSlot, []int{7}},
		{msgSlot, []int{-1}},
	} {
		b := encodeClaim(tc.kind, tc.pieces)
		kind, pieces, err := decodeClaim(b, 1<<21)
		if err != nil || kind != tc.kind || !slices.Equal(pieces, append([]int{}, tc.pieces...)) {
			t.Errorf("round trip of %q %v: got %q %v, %v", tc.kind, tc.pieces, kind, pieces, err)
		}
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short index", []byte{msgClaim, 0, 0, 1}},
		{"unknown kind", []byte{'x', 0, 0, 0, 1}},
		{"piece out of range", encodeClaim(msgClaim, []int{10})},
		{"too many pieces", encodeClaim(msgClaim, make([]int, maxClaimPieces+1))},
		{"slot without its integer", []byte{msgSlot}},
		{"two slots", encodeClaim(msgSlot, []int{1, 2})},
		{"slot out of range", encodeClaim(msgSlot, []int{maxSlot})},
	}
	for _, tc := range bad {
		if _, _, err := decodeClaim(tc.b, 10); err == nil {
			t.Errorf("decodeClaim(%s) succeeded", tc.name)
		}
	}
	chunks := chunkPieces(make([]int, 2*maxClaimPieces+3))
	if len(chunks) != 3 || len(chunks[2]) != 3 {
		t.Errorf("chunkPieces split %d pieces into %d chunks", 2*maxClaimPieces+3, len(chunks))
	}
}

func TestElectCodec(t *testing.T) {
	id := func(b byte) originplan.PeerID { return originplan.PeerID{0: b, 19: b} }
	for _, h := range []originplan.Heard{
		{Swarm: 1, List: []originplan.Candidate{}},
		{Swarm: 48, List: []originplan.Candidate{{ID: id(1)}}},
		{Swarm: maxElectSwarm, List: []originplan.Candidate{{ID: id(1)}, {ID: id(2), Hops: 1}, {ID: id(3), Hops: originplan.MaxElectHops}}},
		{Swarm: 3, List: make([]originplan.Candidate, maxElectEntries)},
	} {
		got, err := decodeElect(encodeElect(h))
		if err != nil || got.Swarm != h.Swarm || !slices.Equal(got.List, h.List) {
			t.Errorf("round trip of %v: got %v, %v", h, got, err)
		}
	}
	one := originplan.Heard{Swarm: 2, List: []originplan.Candidate{{ID: id(1)}}}
	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"no swarm size", []byte{msgElect, 0, 0}},
		{"another kind", encodeClaim(msgClaim, []int{1})},
		{"short entry", encodeElect(one)[:25]},
		{"too far", encodeElect(originplan.Heard{List: []originplan.Candidate{{ID: id(1), Hops: originplan.MaxElectHops + 1}}})},
		{"too many", encodeElect(originplan.Heard{List: make([]originplan.Candidate, maxElectEntries+1)})},
		{"swarm too large", append([]byte{msgElect}, binary.BigEndian.AppendUint32(nil, maxElectSwarm+1)...)},
	}
	for _, tc := range bad {
		if _, err := decodeElect(tc.b); err == nil {
			t.Errorf("decodeElect(%s) succeeded", tc.name)
		}
	}
	// decodeClaim refuses 'e': onClaimMessage hands it to decodeElect.
	if _, _, err := decodeClaim(encodeElect(one), 10); err == nil {
		t.Error("decodeClaim accepted an 'e' message")
	}
}
