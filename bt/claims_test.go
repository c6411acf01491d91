package bt

import (
	"testing"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
)

// peerName is a peer address that is no IP address: the peer state made for it needs no node.
type peerName string

func (p peerName) String() string { return string(p) }

// TestClaimWake: every message of claimExtension wakes the scheduler at once, except a plain
// claim, which does only while one of this node's origin runs claims a window at a time (a
// claim may cut it). All are recorded either way.
func TestClaimWake(t *testing.T) {
	tests := []struct {
		name      string
		msg       []byte
		claimWake bool
		woken     bool
	}{
		{"claim", encodeClaim(msgClaim, []int{1, 2}), false, false},
		{"claim, a run may be cut", encodeClaim(msgClaim, []int{1, 2}), true, true},
		{"release", encodeClaim(msgRelease, []int{1}), false, true},
		{"origin on", encodeClaim(msgOriginOn, nil), false, true},
		{"origin off", encodeClaim(msgOriginOff, nil), false, true},
		{"slot", encodeClaim(msgSlot, []int{3}), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := &metainfo.Info{PieceLength: 4, Length: 40, Pieces: make([]byte, 10*20)}
			tor := &Torrent{info: info, wake: make(chan struct{}, 1),
				peers: make(map[*torrent.PeerConn]*peerState), remotes: make(map[[20]byte]*remoteNode)}
			tor.claimWake.Store(tc.claimWake)
			pc := &torrent.PeerConn{}
			pc.RemoteAddr = peerName("peer")
			tor.onClaimMessage(pc, tc.msg)
			woken := false
			select {
			case <-tor.wake:
				woken = true
			default:
			}
			if woken != tc.woken {
				t.Errorf("woken %v, want %v", woken, tc.woken)
			}
			if rn := tor.remotes[pc.PeerID]; rn == nil || (tc.msg[0] == msgClaim && len(rn.claims) != 2) {
				t.Errorf("the message was not recorded: %+v", rn)
			}
		})
	}
}
