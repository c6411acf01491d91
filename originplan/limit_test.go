package originplan

import "testing"

// openPrefix turns per-piece openness of todo into the openBefore counts Plan computes.
func openPrefix(open []bool) []int {
	ob := make([]int, len(open)+1)
	for i, o := range open {
		ob[i+1] = ob[i]
		if o {
			ob[i+1]++
		}
	}
	return ob
}

// blocks returns the openness of nt pieces cut into nm blocks, where block k has its
// first left[k] pieces open.
func blocks(nt int, left []int) []bool {
	nm := len(left)
	open := make([]bool, nt)
	for k, n := range left {
		start, end := BlockStart(k, nt, nm), BlockStart(k+1, nt, nm)
		for p := start; p < end && p < start+n; p++ {
			open[p] = true
		}
	}
	return open
}

func TestLimit(t *testing.T) {
	tests := []struct {
		name string
		rank int
		left []int // open pieces left in each member's block
		want int
	}{
		{"alone", 0, []int{10}, 4},
		{"alone, nothing open", 0, []int{0}, 4},
		{"two members, both working", 0, []int{5, 5}, 2},
		{"two members, the other done", 0, []int{5, 0}, 4},
		{"sixteen members, all working", 3, []int{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, 1},
		{"sixteen members, nine working: two each", 3, []int{9, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0}, 2},
		{"sixteen members, four working: four each", 1, []int{9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 4},
		{"sixteen members, only self working: the whole swarm's", 15, []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, 16},
		{"own block done: a taker keeps the base", 5, []int{9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 1},
		{"three members, base one each", 2, []int{4, 0, 4}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nt := 10 * len(tc.left)
			ob := openPrefix(blocks(nt, tc.left))
			if got := Limit(4, len(tc.left), tc.rank, nt, ob); got != tc.want {
				t.Errorf("Limit = %d, want %d", got, tc.want)
			}
		})
	}
}
