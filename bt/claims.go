package bt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	pp "github.com/anacrolix/torrent/peer_protocol"

	"github.com/pkgsync/pkgsync/originplan"
)

// claimExtension is the BEP 10 extension by which pkgsync nodes tell each other which
// pieces they are fetching from the origin, so that no other node asks the origin for the
// same piece. Clients without it are simply never told.
//
// A message is one kind byte followed by piece indexes as 4-byte big-endian integers:
// 'c' claims the pieces (the sender has started fetching them), 'r' releases them (the
// fetch failed). 'o' and 'n' carry no pieces: the sender is (or is no longer) downloading
// with an origin, and so shares the origin work. 's' carries one integer where the others
// carry pieces: the origin fetcher slot a coordinating tracker gave the sender
// (originplan.Role), or 0xFFFFFFFF for none; its receivers write it into their own copy of
// the tracker's list, which is as old as their last announce (originplan.Role.WithHolders).
// 'e' carries the sender's estimate of the swarm's size (4 bytes) and entries of 21 bytes, a
// peer ID and a hop count each: its list of elected origin fetchers (originplan.Election),
// which nodes that got no Role from a tracker exchange to elect the same fetchers
// (decodeElect).
// A claim lapses after claimTTL unless repeated, and counts only while its sender is
// connected. Older pkgsync nodes ignore a kind they do not know.
const claimExtension pp.ExtensionName = "pkgsync_origin"

// seederExtension, named in a node's extended handshake, says the node only seeds
// (Config.Seeder). It carries no messages.
const seederExtension pp.ExtensionName = "pkgsync_seeder"

const (
	msgClaim     byte = 'c'
	msgRelease   byte = 'r'
	msgOriginOn  byte = 'o'
	msgOriginOff byte = 'n'
	msgSlot      byte = 's'
	msgElect     byte = 'e'

	claimTTL     = 30 * time.Second
	claimRefresh = 10 * time.Second
	// maxClaimPieces bounds one message (well under the 16 KiB a message may carry).
	maxClaimPieces = 1024
	// maxSlot bounds the slot an 's' message may name: far more fetchers than a swarm has.
	maxSlot = 1 << 16
	// noSlot is the slot of a node that holds none, as 's' carries it (-1 decoded).
	noSlot = 1<<32 - 1
	// maxElectEntries bounds an 'e' message: a list holds originplan.ElectedFetchers.
	maxElectEntries = 64
	electEntry      = 21
	// maxElectSwarm bounds the swarm size an 'e' message may name.
	maxElectSwarm = 1 << 24
)

var errBadClaim = errors.New("malformed pkgsync_origin message")

// encodeClaim builds a message of the given kind for pieces (at most maxClaimPieces).
func encodeClaim(kind byte, pieces []int) []byte {
	b := make([]byte, 1, 1+4*len(pieces))
	b[0] = kind
	for _, p := range pieces {
		b = binary.BigEndian.AppendUint32(b, uint32(p))
	}
	return b
}

// decodeClaim parses a message; every piece index must be below numPieces.
func decodeClaim(b []byte, numPieces int) (kind byte, pieces []int, err error) {
	if len(b) < 1 || (len(b)-1)%4 != 0 || (len(b)-1)/4 > maxClaimPieces {
		return 0, nil, fmt.Errorf("%w: length %d", errBadClaim, len(b))
	}
	kind = b[0]
	switch kind {
	case msgClaim, msgRelease:
	case msgOriginOn, msgOriginOff:
		if len(b) != 1 {
			return 0, nil, fmt.Errorf("%w: %q with pieces", errBadClaim, kind)
		}
	case msgSlot:
		if len(b) != 5 {
			return 0, nil, fmt.Errorf("%w: %q of length %d", errBadClaim, kind, len(b))
		}
		switch v := binary.BigEndian.Uint32(b[1:]); {
		case v == noSlot:
			return kind, []int{-1}, nil
		case v >= maxSlot:
			return 0, nil, fmt.Errorf("%w: slot %d", errBadClaim, v)
		default:
			return kind, []int{int(v)}, nil
		}
	default:
		return 0, nil, fmt.Errorf("%w: kind %q", errBadClaim, kind)
	}
	pieces = make([]int, 0, (len(b)-1)/4)
	for i := 1; i < len(b); i += 4 {
		p := binary.BigEndian.Uint32(b[i:])
		if uint64(p) >= uint64(numPieces) {
			return 0, nil, fmt.Errorf("%w: piece %d of %d", errBadClaim, p, numPieces)
		}
		pieces = append(pieces, int(p))
	}
	return kind, pieces, nil
}

// encodeElect builds an 'e' message of h (at most maxElectEntries entries).
func encodeElect(h originplan.Heard) []byte {
	b := make([]byte, 5, 5+electEntry*len(h.List))
	b[0] = msgElect
	binary.BigEndian.PutUint32(b[1:], uint32(min(max(h.Swarm, 0), maxElectSwarm)))
	for _, c := range h.List {
		b = append(b, c.ID[:]...)
		b = append(b, byte(c.Hops))
	}
	return b
}

// decodeElect parses an 'e' message. Entries farther than originplan.MaxElectHops are refused
// with the message: an honest sender drops them.
func decodeElect(b []byte) (originplan.Heard, error) {
	if len(b) < 5 || b[0] != msgElect || (len(b)-5)%electEntry != 0 || (len(b)-5)/electEntry > maxElectEntries {
		return originplan.Heard{}, fmt.Errorf("%w: 'e' of length %d", errBadClaim, len(b))
	}
	h := originplan.Heard{Swarm: int(binary.BigEndian.Uint32(b[1:]))}
	if h.Swarm > maxElectSwarm {
		return originplan.Heard{}, fmt.Errorf("%w: 'e' for a swarm of %d", errBadClaim, h.Swarm)
	}
	h.List = make([]originplan.Candidate, 0, (len(b)-5)/electEntry)
	for i := 5; i < len(b); i += electEntry {
		var c originplan.Candidate
		copy(c.ID[:], b[i:i+20])
		c.Hops = int(b[i+20])
		if c.Hops > originplan.MaxElectHops {
			return originplan.Heard{}, fmt.Errorf("%w: 'e' entry of %d hops", errBadClaim, c.Hops)
		}
		h.List = append(h.List, c)
	}
	return h, nil
}

// chunkPieces splits pieces into slices of at most maxClaimPieces.
func chunkPieces(pieces []int) [][]int {
	var out [][]int
	for len(pieces) > maxClaimPieces {
		out = append(out, pieces[:maxClaimPieces])
		pieces = pieces[maxClaimPieces:]
	}
	if len(pieces) > 0 {
		out = append(out, pieces)
	}
	return out
}
