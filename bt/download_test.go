package bt

import (
	"testing"

	"github.com/pkgsync/pkgsync/originplan"
)

// busyPieces may serve a walk of the library's piece states for busyFresh only because the
// origin plan leaves a piece a peer wrote to within PeerWriteGrace alone anyway: a piece the
// library queued for hashing since the walk got its last chunk after the walk.
func TestBusyFreshUnderWriteGrace(t *testing.T) {
	if busyFresh >= originplan.Defaults.PeerWriteGrace {
		t.Errorf("busyFresh %v is not shorter than originplan's PeerWriteGrace %v: the origin could be asked for a piece the library is hashing",
			busyFresh, originplan.Defaults.PeerWriteGrace)
	}
}

// electKey is the same for the same entries in any order, and differs when any entry does:
// another peer, another kind, another count of lists.
func TestElectKey(t *testing.T) {
	a, b, c := [20]byte{1}, [20]byte{2}, [20]byte{3}
	key := func(add func(k *electKey)) electKey {
		var k electKey
		add(&k)
		return k
	}
	base := key(func(k *electKey) {
		k.add(a, electMember, 0)
		k.add(b, electHeard, 4)
		k.add(c, electOut, 0)
	})
	if got := key(func(k *electKey) {
		k.add(c, electOut, 0)
		k.add(a, electMember, 0)
		k.add(b, electHeard, 4)
	}); got != base {
		t.Errorf("the same entries in another order give another key")
	}
	tests := []struct {
		name string
		add  func(k *electKey)
	}{
		{"another peer's list", func(k *electKey) { k.add(a, electMember, 0); k.add(b, electHeard, 5); k.add(c, electOut, 0) }},
		{"a member turned out", func(k *electKey) { k.add(a, electOut, 0); k.add(b, electHeard, 4); k.add(c, electOut, 0) }},
		{"a peer gone", func(k *electKey) { k.add(a, electMember, 0); k.add(b, electHeard, 4) }},
		{"another peer", func(k *electKey) { k.add(a, electMember, 0); k.add(b, electHeard, 4); k.add([20]byte{4}, electOut, 0) }},
		{"swapped kinds", func(k *electKey) { k.add(a, electOut, 0); k.add(b, electHeard, 4); k.add(c, electMember, 0) }},
	}
	for _, tc := range tests {
		if key(tc.add) == base {
			t.Errorf("%s: same key", tc.name)
		}
	}
}
