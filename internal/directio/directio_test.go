package directio

import (
	"testing"
	"unsafe"
)

func TestAlignedBuf(t *testing.T) {
	for _, n := range []int{1, Align - 1, Align, 1 << 20, 1<<20 + 17} {
		for range 8 { // several allocations: the runtime's offsets vary
			b := AlignedBuf(n)
			if len(b) != n || cap(b) != n {
				t.Fatalf("AlignedBuf(%d): len %d cap %d", n, len(b), cap(b))
			}
			if p := uintptr(unsafe.Pointer(&b[0])); p%Align != 0 {
				t.Fatalf("AlignedBuf(%d) starts at %#x, not on a %d boundary", n, p, Align)
			}
		}
	}
}
