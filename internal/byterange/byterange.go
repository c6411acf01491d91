// Package byterange holds Range, the one type for a stretch of bytes of a file: the delta plan
// lists the target's missing ranges with it, httprange fetches them, and bt asks peers for them.
// It has a home of its own so that those three packages, none of which should import another
// for it, share one type and the updater passes ranges between them without converting.
package byterange

import "fmt"

// Range is the byte range [Off, Off+Len) of a file.
type Range struct{ Off, Len int64 }

// End returns the offset just past the range.
func (r Range) End() int64 { return r.Off + r.Len }

// String formats r the way a Range header would ask for it ("bytes 10-19" for Off 10, Len 10).
func (r Range) String() string {
	if r.Len <= 0 {
		return fmt.Sprintf("bytes %d (empty)", r.Off)
	}
	return fmt.Sprintf("bytes %d-%d", r.Off, r.End()-1)
}

// Sum returns the bytes rs covers, counting overlaps twice.
func Sum(rs []Range) (n int64) {
	for _, r := range rs {
		n += r.Len
	}
	return n
}

// Subtract returns sorted, disjoint rs without the bytes of cut, in a new slice.
func Subtract(rs []Range, cut Range) []Range {
	out := make([]Range, 0, len(rs)+1)
	for _, r := range rs {
		if cut.End() <= r.Off || r.End() <= cut.Off {
			out = append(out, r)
			continue
		}
		if r.Off < cut.Off {
			out = append(out, Range{Off: r.Off, Len: cut.Off - r.Off})
		}
		if cut.End() < r.End() {
			out = append(out, Range{Off: cut.End(), Len: r.End() - cut.End()})
		}
	}
	return out
}
