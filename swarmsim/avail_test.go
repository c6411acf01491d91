package swarmsim

import (
	"slices"
	"testing"
)

func bitsOf(n int, ps ...int) bitset {
	b := newBitset(n)
	for _, p := range ps {
		b.set(p)
	}
	return b
}

func TestBitsets(t *testing.T) {
	tests := []struct {
		name              string
		n                 int
		avail, have, busy []int
		want              []int // wanted pieces, in order
		unseen            int
	}{
		{"nothing known", 10, nil, nil, nil, nil, 10},
		{"peers have some", 10, []int{1, 3, 5}, nil, nil, []int{1, 3, 5}, 7},
		{"had and busy pieces are not wanted", 130, []int{0, 64, 65, 129}, []int{64, 100}, []int{0, 5}, []int{65, 129}, 124},
		{"every piece had", 3, []int{0, 1, 2}, []int{0, 1, 2}, nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cand := newBitset(tc.n)
			c := wanted(cand, bitsOf(tc.n, tc.avail...), bitsOf(tc.n, tc.have...), bitsOf(tc.n, tc.busy...))
			var got []int
			for k := range c {
				got = append(got, nth(cand, k))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("wanted, by nth = %v, want %v", got, tc.want)
			}
			if nth(cand, c) != -1 {
				t.Errorf("nth past the end = %d, want -1", nth(cand, c))
			}
			if u := unseenCount(bitsOf(tc.n, tc.avail...), bitsOf(tc.n, tc.have...), bitsOf(tc.n, tc.busy...), tc.n); u != tc.unseen {
				t.Errorf("unseenCount = %d, want %d", u, tc.unseen)
			}
		})
	}
	b := newBitset(70)
	b.fill(70)
	if c := wanted(newBitset(70), b, newBitset(70), newBitset(70)); c != 70 {
		t.Errorf("fill(70) holds %d pieces", c)
	}
}
