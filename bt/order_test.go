package bt

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/topology"
)

func TestShareOrder(t *testing.T) {
	tests := []struct {
		name                     string
		numPieces, members, rank int
		want                     []int
	}{
		{"alone", 5, 1, 0, []int{0, 1, 2, 3, 4}},
		{"two first", 10, 2, 0, []int{0, 1, 2, 3, 4, 9, 8, 7, 6, 5}},
		{"two second", 10, 2, 1, []int{5, 6, 7, 8, 9, 4, 3, 2, 1, 0}},
		{"uneven blocks", 7, 3, 1, []int{2, 3, 6, 5, 4, 1, 0}},
		{"uneven last", 7, 3, 2, []int{4, 5, 6, 1, 0, 3, 2}},
		{"more members than pieces", 2, 4, 3, []int{1, 0}},
		{"empty member block", 2, 4, 0, []int{0, 1}},
		{"bad rank falls back to alone", 3, 2, 5, []int{0, 1, 2}},
		{"no members falls back to alone", 3, 0, 0, []int{0, 1, 2}},
		{"no pieces", 0, 3, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Collect(shareOrder(tc.numPieces, tc.members, tc.rank))
			if !slices.Equal(got, tc.want) {
				t.Errorf("shareOrder(%d, %d, %d) = %v, want %v", tc.numPieces, tc.members, tc.rank, got, tc.want)
			}
		})
	}
}

// Every node's order is a permutation, and nodes start on disjoint pieces.
func TestShareOrderPermutation(t *testing.T) {
	for num := 1; num < 40; num += 3 {
		for members := 1; members <= 6; members++ {
			firsts := map[int]int{}
			for rank := range members {
				got := slices.Collect(shareOrder(num, members, rank))
				sorted := slices.Sorted(slices.Values(got))
				for i, p := range sorted {
					if p != i {
						t.Fatalf("shareOrder(%d, %d, %d) = %v: not a permutation", num, members, rank, got)
					}
				}
				if own := (rank+1)*num/members - rank*num/members; own > 0 {
					if prev, dup := firsts[got[0]]; dup {
						t.Fatalf("shareOrder(%d, %d, ·): ranks %d and %d both start at piece %d", num, members, prev, rank, got[0])
					}
					firsts[got[0]] = rank
				}
			}
		}
	}
}

func TestBlockOwner(t *testing.T) {
	for num := 1; num < 50; num++ {
		for members := 1; members <= 8; members++ {
			for k := range members {
				for p := blockStart(k, num, members); p < blockStart(k+1, num, members); p++ {
					if got := blockOwner(p, num, members); got != k {
						t.Fatalf("blockOwner(%d, %d, %d) = %d, want %d", p, num, members, got, k)
					}
				}
			}
		}
	}
}

func TestSortedMembers(t *testing.T) {
	id := func(b byte) [20]byte { return [20]byte{b} }
	tests := []struct {
		name        string
		self        [20]byte
		others      [][20]byte
		wantMembers int
		wantRank    int
	}{
		{"alone", id(5), nil, 1, 0},
		{"middle", id(5), [][20]byte{id(9), id(1)}, 3, 1},
		{"duplicates", id(5), [][20]byte{id(1), id(1), id(5)}, 2, 1},
		{"first", id(0), [][20]byte{id(3)}, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ids, r := sortedMembers(tc.self, tc.others)
			if len(ids) != tc.wantMembers || r != tc.wantRank || ids[r] != tc.self {
				t.Errorf("sortedMembers = %v, %d; want %d members, rank %d", ids, r, tc.wantMembers, tc.wantRank)
			}
		})
	}
}

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

func TestHeirOf(t *testing.T) {
	tests := []struct {
		name string
		k    int
		idle []bool
		want int
	}{
		{"next member works", 1, []bool{false, true, false, false}, 2},
		{"skips idle members", 1, []bool{false, true, true, true, false}, 4},
		{"wraps around", 3, []bool{false, false, false, true}, 0},
		{"wraps past idle ones", 2, []bool{true, false, true, true}, 1},
		{"only one other works", 0, []bool{true, true, false}, 2},
		{"alone", 0, []bool{true}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := heirOf(tc.k, tc.idle); got != tc.want {
				t.Errorf("heirOf(%d, %v) = %d, want %d", tc.k, tc.idle, got, tc.want)
			}
		})
	}
}

func TestThiefSkip(t *testing.T) {
	tests := []struct {
		name        string
		d, takeable int
		want        int
	}{
		{"next member takes the last piece", 1, 10, 0},
		{"second leaves one", 2, 10, 1},
		{"fifteenth leaves fourteen", 15, 20, 14},
		{"wraps when fewer pieces than takers", 5, 3, 1},
		{"one piece left: everyone may take it", 7, 1, 0},
		{"nothing takeable", 3, 0, 0},
		{"negative takeable", 3, -4, 0},
		{"own block", 0, 10, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := thiefSkip(tc.d, tc.takeable); got != tc.want {
				t.Errorf("thiefSkip(%d, %d) = %d, want %d", tc.d, tc.takeable, got, tc.want)
			}
		})
	}
	// Distinct takers of one block leave distinct counts while there are enough pieces.
	seen := map[int]bool{}
	for d := 1; d < 16; d++ {
		s := thiefSkip(d, 15)
		if seen[s] {
			t.Errorf("thiefSkip(%d, 15) = %d, already chosen by another taker", d, s)
		}
		seen[s] = true
	}
}
