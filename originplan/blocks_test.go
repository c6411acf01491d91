package originplan

import (
	"bytes"
	"slices"
	"testing"
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
			got := slices.Collect(ShareOrder(tc.numPieces, tc.members, tc.rank))
			if !slices.Equal(got, tc.want) {
				t.Errorf("ShareOrder(%d, %d, %d) = %v, want %v", tc.numPieces, tc.members, tc.rank, got, tc.want)
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
				got := slices.Collect(ShareOrder(num, members, rank))
				sorted := slices.Sorted(slices.Values(got))
				for i, p := range sorted {
					if p != i {
						t.Fatalf("ShareOrder(%d, %d, %d) = %v: not a permutation", num, members, rank, got)
					}
				}
				if own := (rank+1)*num/members - rank*num/members; own > 0 {
					if prev, dup := firsts[got[0]]; dup {
						t.Fatalf("ShareOrder(%d, %d, ·): ranks %d and %d both start at piece %d", num, members, prev, rank, got[0])
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
				for p := BlockStart(k, num, members); p < BlockStart(k+1, num, members); p++ {
					if got := BlockOwner(p, num, members); got != k {
						t.Fatalf("BlockOwner(%d, %d, %d) = %d, want %d", p, num, members, got, k)
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
			ids, r := SortedMembers(tc.self, tc.others)
			if len(ids) != tc.wantMembers || r != tc.wantRank || ids[r] != tc.self {
				t.Errorf("SortedMembers = %v, %d; want %d members, rank %d", ids, r, tc.wantMembers, tc.wantRank)
			}
		})
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
			if got := HeirOf(tc.k, tc.idle); got != tc.want {
				t.Errorf("HeirOf(%d, %v) = %d, want %d", tc.k, tc.idle, got, tc.want)
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
			if got := ThiefSkip(tc.d, tc.takeable); got != tc.want {
				t.Errorf("ThiefSkip(%d, %d) = %d, want %d", tc.d, tc.takeable, got, tc.want)
			}
		})
	}
	// Distinct takers of one block leave distinct counts while there are enough pieces.
	seen := map[int]bool{}
	for d := 1; d < 16; d++ {
		s := ThiefSkip(d, 15)
		if seen[s] {
			t.Errorf("ThiefSkip(%d, 15) = %d, already chosen by another taker", d, s)
		}
		seen[s] = true
	}
}

func TestCompareIDs(t *testing.T) {
	ids := [][20]byte{{1}, {0, 0, 0, 0, 0, 0, 0, 0, 9}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, {}, {255, 1}, {0, 0, 0, 0, 0, 0, 0, 1}}
	for _, a := range ids {
		for _, b := range ids {
			if got, want := compareIDs(a, b), bytes.Compare(a[:], b[:]); got != want {
				t.Errorf("compareIDs(%x, %x) = %d, want %d", a, b, got, want)
			}
		}
	}
}
