package versions

import (
	"bytes"
	"testing"
)

func TestDeterministic(t *testing.T) {
	if !bytes.Equal(Random(1, 1000), Random(1, 1000)) || bytes.Equal(Random(1, 1000), Random(2, 1000)) {
		t.Fatal("Random is not a function of its seed")
	}
	v1 := Random(3, 1<<20)
	a, b := Edit(v1, 4, 20, 100, 5000), Edit(v1, 4, 20, 100, 5000)
	if !bytes.Equal(a, b) {
		t.Fatal("Edit is not deterministic")
	}
	if bytes.Equal(a, v1) {
		t.Fatal("Edit changed nothing")
	}
	if !bytes.Equal(v1, Random(3, 1<<20)) {
		t.Fatal("Edit modified its input")
	}
}

func TestEditKeepsMostOfV1(t *testing.T) {
	v1 := Random(6, 1<<20)
	v2 := Edit(v1, 7, 9, 1000, 2000)
	// Every edit is at most 2000 bytes: the untouched stretches between them are all there.
	step := len(v1) / 10
	for e := 0; e < 9; e++ {
		chunk := v1[e*step+3000 : (e+1)*step-100]
		if !bytes.Contains(v2, chunk) {
			t.Fatalf("stretch %d of v1 is missing from v2", e)
		}
	}
	if d := len(v2) - len(v1); d < -9*2000 || d > 9*2000 {
		t.Fatalf("length changed by %d for 9 edits of at most 2000 bytes", d)
	}
}

func TestEditEdgeCases(t *testing.T) {
	for _, n := range []int{0, 1, 10, 100} {
		v1 := Random(8, n)
		a, b := Edit(v1, 9, 5, 1, 3), Edit(v1, 9, 5, 1, 3)
		if !bytes.Equal(a, b) {
			t.Fatalf("%d bytes: Edit is not deterministic", n)
		}
		// Five edits of at most 3 bytes each: the length moves by at most 15.
		if d := len(a) - len(v1); d < -15 || d > 15 {
			t.Fatalf("%d bytes: the length changed by %d", n, d)
		}
		if n >= 10 && bytes.Equal(a, v1) {
			t.Fatalf("%d bytes: Edit changed nothing", n)
		}
		if !bytes.Equal(v1, Random(8, n)) {
			t.Fatalf("%d bytes: Edit modified its input", n)
		}
	}
}
