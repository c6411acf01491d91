package byterange

import "testing"

func TestRange(t *testing.T) {
	for _, tc := range []struct {
		r    Range
		end  int64
		text string
	}{
		{Range{10, 10}, 20, "bytes 10-19"},
		{Range{0, 1}, 1, "bytes 0-0"},
		{Range{5, 0}, 5, "bytes 5 (empty)"},
	} {
		if got := tc.r.End(); got != tc.end {
			t.Errorf("%#v.End() = %d, want %d", tc.r, got, tc.end)
		}
		if got := tc.r.String(); got != tc.text {
			t.Errorf("%#v.String() = %q, want %q", tc.r, got, tc.text)
		}
	}
}
