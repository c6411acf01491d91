package bt

import (
	"bytes"
	"testing"

	"github.com/pkgsync/pkgsync/originplan"
)

// The decoders of pkgsync's own BEP 10 extensions read bytes from any peer that completes a
// handshake. FuzzDecodeClaim and FuzzDecodeRange check that no message makes them panic or
// accept what the rest of the package trusts them to have ruled out, and that what they accept
// is exactly what the encoder would have sent.

// FuzzDecodeClaim feeds decodeClaim arbitrary pkgsync_origin payloads for a torrent of numPieces
// pieces: an accepted message has a known kind, pieces only for 'c' and 'r', every piece below
// numPieces, at most maxClaimPieces of them, and encodes back to the same bytes.
func FuzzDecodeClaim(f *testing.F) {
	f.Add(encodeClaim(msgClaim, []int{0, 1, 7}), uint32(8))
	f.Add(encodeClaim(msgRelease, []int{3}), uint32(4))
	f.Add(encodeClaim(msgOriginOn, nil), uint32(1))
	f.Add(encodeClaim(msgOriginOff, nil), uint32(0))
	f.Add(encodeClaim(msgClaim, []int{10}), uint32(10))
	f.Add(append(encodeClaim(msgOriginOn, nil), 0, 0, 0, 0), uint32(5))
	f.Add([]byte{'c', 0, 0}, uint32(5))
	f.Add(encodeClaim(msgClaim, []int{1<<32 - 1}), uint32(1<<32-1))
	f.Add(encodeClaim(msgSlot, []int{3}), uint32(2))
	f.Add(encodeClaim(msgSlot, []int{-1}), uint32(2))
	f.Add(encodeClaim(msgSlot, []int{maxSlot}), uint32(2))
	f.Add(encodeClaim(msgSlot, []int{1, 2}), uint32(8))
	f.Fuzz(func(t *testing.T, b []byte, numPieces uint32) {
		kind, pieces, err := decodeClaim(b, int(numPieces))
		if err != nil {
			if kind != 0 || pieces != nil {
				t.Fatalf("error %v came with kind %q and %d pieces", err, kind, len(pieces))
			}
			return
		}
		switch kind {
		case msgClaim, msgRelease:
		case msgOriginOn, msgOriginOff:
			if len(pieces) != 0 {
				t.Fatalf("kind %q accepted with %d pieces", kind, len(pieces))
			}
		case msgSlot:
			if len(pieces) != 1 || pieces[0] < -1 || pieces[0] >= maxSlot {
				t.Fatalf("slot message accepted as %v", pieces)
			}
			if again := encodeClaim(kind, pieces); !bytes.Equal(again, b) {
				t.Fatalf("decoded %x as slot %d, which encodes as %x", b, pieces[0], again)
			}
			return // a slot is no piece: numPieces does not bound it
		default:
			t.Fatalf("unknown kind %q accepted", kind)
		}
		if len(pieces) > maxClaimPieces {
			t.Fatalf("%d pieces accepted, at most %d allowed", len(pieces), maxClaimPieces)
		}
		for _, p := range pieces {
			if p < 0 || p >= int(numPieces) {
				t.Fatalf("piece %d accepted for a torrent of %d pieces", p, numPieces)
			}
		}
		if again := encodeClaim(kind, pieces); !bytes.Equal(again, b) {
			t.Fatalf("decoded %x as %q %v, which encodes as %x", b, kind, pieces, again)
		}
	})
}

// FuzzDecodeRange feeds decodeRange arbitrary pkgsync_range payloads for a torrent of numPieces
// pieces of pieceLen bytes, the last lastLen bytes: a request or data message that is accepted
// names 1..rangeChunk bytes inside an existing piece, data carries exactly the bytes after the
// header, and every accepted message encodes back to the same bytes.
func FuzzDecodeRange(f *testing.F) {
	data := bytes.Repeat([]byte{0xa5}, 100)
	f.Add(encodeRange(rangeMsg{kind: msgRangeRequest, id: 7, piece: 2, off: 4096, length: rangeChunk}), uint32(4), uint32(1<<18), uint32(1000))
	f.Add(encodeRange(rangeMsg{kind: msgRangeRequest, id: 1<<32 - 1, piece: 3, off: 999, length: 1}), uint32(4), uint32(1<<18), uint32(1000))
	f.Add(encodeRange(rangeMsg{kind: msgRangeData, id: 9, piece: 0, off: 1<<18 - 100, data: data}), uint32(4), uint32(1<<18), uint32(1000))
	f.Add(encodeRange(rangeMsg{kind: msgRangeReject, piece: 1, off: 5}), uint32(4), uint32(1<<18), uint32(1000))
	f.Add(encodeRange(rangeMsg{kind: msgRangeRequest, piece: 3, off: 990, length: 11}), uint32(4), uint32(1<<18), uint32(1000))
	f.Add(encodeRange(rangeMsg{kind: msgRangeRequest, piece: 0, off: 1<<32 - 1, length: rangeChunk}), uint32(1), uint32(1<<31), uint32(1<<31))
	f.Add([]byte{'q', 0, 0, 0, 1}, uint32(4), uint32(16384), uint32(16384))
	f.Fuzz(func(t *testing.T, b []byte, numPieces, pieceLen, lastLen uint32) {
		pieceLength := func(p int) int64 {
			if p < 0 || p >= int(numPieces) {
				t.Fatalf("decodeRange asked the length of piece %d of %d", p, numPieces)
			}
			if p == int(numPieces)-1 {
				return int64(lastLen)
			}
			return int64(pieceLen)
		}
		m, err := decodeRange(b, int(numPieces), pieceLength)
		if err != nil {
			return
		}
		if m.piece < 0 || m.piece >= int(numPieces) {
			t.Fatalf("piece %d accepted for a torrent of %d pieces", m.piece, numPieces)
		}
		switch m.kind {
		case msgRangeRequest, msgRangeData:
			if m.length < 1 || m.length > rangeChunk {
				t.Fatalf("%q of %d bytes accepted (1..%d allowed)", m.kind, m.length, rangeChunk)
			}
			if m.off < 0 || m.off+m.length > pieceLength(m.piece) {
				t.Fatalf("%q of %d bytes at %d accepted in piece %d of %d bytes", m.kind, m.length, m.off, m.piece, pieceLength(m.piece))
			}
			if m.kind == msgRangeData && (int64(len(m.data)) != m.length || !bytes.Equal(m.data, b[rangeHeader:])) {
				t.Fatalf("data message of %d bytes decoded with %d data bytes, length %d", len(b)-rangeHeader, len(m.data), m.length)
			}
		case msgRangeReject:
		default:
			t.Fatalf("unknown kind %q accepted", m.kind)
		}
		if again := encodeRange(m); !bytes.Equal(again, b) {
			t.Fatalf("decoded %x as %+v, which encodes as %x", b, m, again)
		}
	})
}

// FuzzDecodeElect feeds decodeElect arbitrary 'e' payloads: an accepted list has at most
// maxElectEntries entries, none farther than originplan.MaxElectHops, a swarm size of at most
// maxElectSwarm, and encodes back to the same bytes.
func FuzzDecodeElect(f *testing.F) {
	f.Add(encodeElect(originplan.Heard{Swarm: 1}))
	f.Add(encodeElect(originplan.Heard{Swarm: 48, List: []originplan.Candidate{{ID: originplan.PeerID{1}}, {ID: originplan.PeerID{2}, Hops: 3}}}))
	f.Add([]byte{msgElect, 1, 2, 3})
	f.Add(append(encodeElect(originplan.Heard{List: []originplan.Candidate{{ID: originplan.PeerID{1}}}})[:25], 200))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeElect(b)
		if err != nil {
			if h.List != nil || h.Swarm != 0 {
				t.Fatalf("error %v came with %v", err, h)
			}
			return
		}
		if len(h.List) > maxElectEntries || h.Swarm < 0 || h.Swarm > maxElectSwarm {
			t.Fatalf("%d entries for a swarm of %d accepted", len(h.List), h.Swarm)
		}
		for _, c := range h.List {
			if c.Hops < 0 || c.Hops > originplan.MaxElectHops {
				t.Fatalf("entry of %d hops accepted", c.Hops)
			}
		}
		if again := encodeElect(h); !bytes.Equal(again, b) {
			t.Fatalf("decoded %x as %v, which encodes as %x", b, h, again)
		}
	})
}
