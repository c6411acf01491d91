package bt

import (
	"testing"

	"github.com/RoaringBitmap/roaring"
)

// HandOver waits while any connected peer lacks a piece this node got from the origin, not
// only until some peer holds it: nodes finishing together would otherwise all leave, each
// trusting the others, and the one still behind would go back to the origin.
func TestLackedBySome(t *testing.T) {
	bm := func(ps ...uint32) *roaring.Bitmap { return roaring.BitmapOf(ps...) }
	for _, tc := range []struct {
		name   string
		pieces []int
		held   []*roaring.Bitmap
		want   int
	}{
		{"no peers", []int{1, 2}, nil, 2},
		{"one peer holds all", []int{1, 2}, []*roaring.Bitmap{bm(0, 1, 2)}, 0},
		{"one peer lacks one", []int{1, 2}, []*roaring.Bitmap{bm(1)}, 1},
		{"a seeder and a node behind", []int{1, 2, 3}, []*roaring.Bitmap{bm(1, 2, 3), bm(2)}, 2},
		{"two peers lack the same piece", []int{1, 2}, []*roaring.Bitmap{bm(1), bm(1)}, 1},
		{"peers lack different pieces", []int{1, 2}, []*roaring.Bitmap{bm(1), bm(2)}, 2},
		{"peer with nothing yet", []int{5}, []*roaring.Bitmap{bm(5), bm()}, 1},
	} {
		if got := lackedBySome(tc.pieces, tc.held); got != tc.want {
			t.Errorf("%s: lackedBySome = %d, want %d", tc.name, got, tc.want)
		}
	}
}
