package delta

import (
	"context"
	"fmt"
	"math"
	"testing"
)

// handPlan is a Plan of 95 bytes in blocks of 10, blocks 2, 3, 5 and 9 (the short last one)
// missing.
func handPlan() *Plan {
	p := &Plan{Blocksize: 10, Length: 95, NumBlocks: 10}
	for i := range 10 {
		l := Loc{Src: 0, Off: int64(i * 10)}
		if i == 2 || i == 3 || i == 5 || i == 9 {
			l = Loc{Src: -1}
		}
		p.Blocks = append(p.Blocks, l)
	}
	return p
}

func TestPlanRanges(t *testing.T) {
	p := handPlan()
	if got, want := fmt.Sprint(p.Missing()), "[bytes 20-39 bytes 50-59 bytes 90-94]"; got != want {
		t.Fatalf("Missing() = %s, want %s", got, want)
	}
	if p.ReusedBytes() != 60 || p.MissingBytes() != 35 || p.ReusedFrom(0) != 60 || p.ReusedFrom(1) != 0 {
		t.Fatalf("ReusedBytes %d, MissingBytes %d, ReusedFrom(0) %d", p.ReusedBytes(), p.MissingBytes(), p.ReusedFrom(0))
	}
	tests := []struct {
		off, n  int64
		missing string
		have    bool
	}{
		{0, 95, "[bytes 20-39 bytes 50-59 bytes 90-94]", false},
		{0, 20, "[]", true},
		{15, 10, "[bytes 20-24]", false},
		{-5, 30, "[bytes 20-24]", false},
		{-5, 10, "[]", true},
		{-50, 10, "[]", true},
		{25, 30, "[bytes 25-39 bytes 50-54]", false},
		{60, 30, "[]", true},
		{89, 1, "[]", true},
		{90, 1, "[bytes 90-90]", false},
		{92, 100, "[bytes 92-94]", false},
		{95, 10, "[]", true},
		{200, 5, "[]", true},
		{30, 0, "[]", true},
		{30, -5, "[]", true},
		{0, math.MaxInt64, "[bytes 20-39 bytes 50-59 bytes 90-94]", false},
		{math.MinInt64, math.MaxInt64, "[]", true},
		{math.MaxInt64, math.MaxInt64, "[]", true},
	}
	for _, tc := range tests {
		if got := fmt.Sprint(p.MissingIn(tc.off, tc.n)); got != tc.missing {
			t.Errorf("MissingIn(%d, %d) = %s, want %s", tc.off, tc.n, got, tc.missing)
		}
		if got := p.Have(tc.off, tc.n); got != tc.have {
			t.Errorf("Have(%d, %d) = %v, want %v", tc.off, tc.n, got, tc.have)
		}
	}
}

// TestPlanInconsistent checks that a hand-made Plan whose Blocks are fewer than its Length needs
// does not make the methods panic: the blocks it lacks count as missing.
func TestPlanInconsistent(t *testing.T) {
	p := handPlan()
	p.Blocks = p.Blocks[:2]
	if got, want := fmt.Sprint(p.Missing()), "[bytes 20-94]"; got != want {
		t.Fatalf("Missing() = %s, want %s", got, want)
	}
	if p.Have(15, 10) || !p.Have(0, 20) || p.ReusedBytes() != 20 || p.Found(5) || !p.Found(1) || p.Found(-1) {
		t.Fatal("Have, Found or ReusedBytes disagree with the two blocks given")
	}
	src := make([]byte, 95)
	for i := range src {
		src[i] = byte(i)
	}
	out := &memFile{}
	if err := p.Apply(t.Context(), out, []Source{srcOf("src", src)}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out.writes) != "[bytes 0-19]" {
		t.Fatalf("Apply wrote %v, want one run of the two blocks", out.writes)
	}
}

func TestEmptyPlan(t *testing.T) {
	p := Empty(1000)
	if got := p.Missing(); len(got) != 1 || got[0] != (Range{Off: 0, Len: 1000}) {
		t.Fatalf("Missing = %v", got)
	}
	if got := p.MissingIn(100, 50); len(got) != 1 || got[0] != (Range{Off: 100, Len: 50}) {
		t.Fatalf("MissingIn = %v", got)
	}
	if p.Have(0, 10) || p.ReusedBytes() != 0 || p.MissingBytes() != 1000 {
		t.Fatal("an empty plan claims data")
	}
	if err := p.Apply(context.Background(), nil, nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}
