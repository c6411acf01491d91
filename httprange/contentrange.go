package httprange

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ContentRange is a parsed Content-Range value in bytes (RFC 9110 section 14.4):
// "bytes First-Last/Total", "bytes First-Last/*" or, in a 416 reply, "bytes */Total".
type ContentRange struct {
	First, Last int64 // inclusive byte positions; both -1 for "bytes */Total"
	Total       int64 // complete length; -1 for "*"
}

// Satisfied reports whether c names a byte range (not the "bytes */Total" of a 416 reply).
func (c ContentRange) Satisfied() bool { return c.First >= 0 }

// Range returns the bytes c names as a Range.
func (c ContentRange) Range() Range {
	if !c.Satisfied() {
		return Range{}
	}
	return Range{Off: c.First, Len: c.Last - c.First + 1}
}

// String formats c as a Content-Range value.
func (c ContentRange) String() string {
	total := "*"
	if c.Total >= 0 {
		total = strconv.FormatInt(c.Total, 10)
	}
	if !c.Satisfied() {
		return "bytes */" + total
	}
	return fmt.Sprintf("bytes %d-%d/%s", c.First, c.Last, total)
}

// ParseContentRange parses a Content-Range value. It accepts only the bytes unit and returns an
// error wrapping ErrBadContentRange for anything malformed or impossible: First > Last, Last not
// below a known Total, "*/*", signs, or numbers (or a range length) that overflow int64.
func ParseContentRange(s string) (ContentRange, error) {
	bad := func(why string) (ContentRange, error) {
		return ContentRange{}, fmt.Errorf("%w %q: %s", ErrBadContentRange, s, why)
	}
	v := strings.TrimSpace(s)
	const unit = "bytes"
	if len(v) <= len(unit) || !strings.EqualFold(v[:len(unit)], unit) || (v[len(unit)] != ' ' && v[len(unit)] != '\t') {
		return bad(`not "bytes "`)
	}
	v = strings.TrimLeft(v[len(unit):], " \t")
	resp, total, ok := strings.Cut(v, "/")
	if !ok {
		return bad("no /")
	}
	c := ContentRange{First: -1, Last: -1, Total: -1}
	if total != "*" {
		n, ok := parseDigits(total)
		if !ok {
			return bad("complete length is not a number")
		}
		c.Total = n
	}
	if resp == "*" {
		if c.Total < 0 {
			return bad("neither range nor length")
		}
		return c, nil
	}
	first, last, ok := strings.Cut(resp, "-")
	if !ok {
		return bad("no - in range")
	}
	if c.First, ok = parseDigits(first); !ok {
		return bad("first byte position is not a number")
	}
	if c.Last, ok = parseDigits(last); !ok {
		return bad("last byte position is not a number")
	}
	if c.First > c.Last {
		return bad("first byte after last")
	}
	if c.Last == math.MaxInt64 {
		return bad("range longer than any file") // its length would overflow int64
	}
	if c.Total >= 0 && c.Last >= c.Total {
		return bad("range ends past the complete length")
	}
	return c, nil
}

// parseDigits parses a non-empty string of ASCII digits that fits in an int64.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
