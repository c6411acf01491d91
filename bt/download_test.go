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
