package bt

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
)

// fastExtension is the BEP 10 extension by which pkgsync nodes offer each other the fast path
// (fast.go): a plain TCP service of their own, beside the library's connection, that sends whole
// pieces with sendfile. A node that lists it in its extended handshake sends one message over
// it, its service's port:
//
//	'p' port   the fast path listens on the connection's remote address at this 2-byte port
//
// The fast path itself is not BitTorrent. A connection starts with the client's 4-byte magic
// (fastMagic or fastMagicBusy), then the client sends requests and the server answers each in
// order:
//
//	request  'g' infohash[20] piece[4]          send me this whole piece
//	reply    'd' piece[4] length[4] data...    the piece's bytes, length being its length
//	reply    'x' piece[4] 0[4]                 refused: the server does not have it complete
//	reply    'b' piece[4] 0[4]                 busy: the server sends pieces on as many
//	                                           connections as it will (fastServeSlots); ask
//	                                           another peer, or this one again a little later
//
// Only a client that opened with fastMagicBusy is sent 'b'; one that opened with fastMagic
// (pkgsync before the busy reply) is answered as before, whatever the server's load.
// Integers are big-endian. Clients without the extension never see any of it.
const fastExtension pp.ExtensionName = "pkgsync_fast"

const (
	msgFastPort    byte = 'p'
	msgFastGet     byte = 'g'
	msgFastData    byte = 'd'
	msgFastRefused byte = 'x'
	msgFastBusy    byte = 'b'

	fastPortLen    = 3
	fastRequestLen = 25
	fastReplyLen   = 9
)

// fastMagic and fastMagicBusy open a fast-path connection: the protocol and its version. A
// client that opens with fastMagicBusy takes busy replies.
var (
	fastMagic     = [4]byte{'P', 'K', 'F', '1'}
	fastMagicBusy = [4]byte{'P', 'K', 'F', '2'}
)

var errBadFast = errors.New("malformed pkgsync_fast message")

func encodeFastPort(port uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte{msgFastPort}, port)
}

// decodeFastPort parses the port message of fastExtension.
func decodeFastPort(b []byte) (uint16, error) {
	if len(b) != fastPortLen || b[0] != msgFastPort {
		return 0, fmt.Errorf("%w: port message of %d bytes", errBadFast, len(b))
	}
	port := binary.BigEndian.Uint16(b[1:])
	if port == 0 {
		return 0, fmt.Errorf("%w: port 0", errBadFast)
	}
	return port, nil
}

func encodeFastRequest(ih metainfo.Hash, piece int) []byte {
	b := make([]byte, 0, fastRequestLen)
	b = append(b, msgFastGet)
	b = append(b, ih[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(piece))
}

// decodeFastRequest parses a request. The piece is checked against the torrent by the server,
// once it knows which torrent the info hash names.
func decodeFastRequest(b []byte) (ih metainfo.Hash, piece uint32, err error) {
	if len(b) != fastRequestLen || b[0] != msgFastGet {
		return ih, 0, fmt.Errorf("%w: request %x", errBadFast, b[:min(len(b), 1)])
	}
	copy(ih[:], b[1:21])
	return ih, binary.BigEndian.Uint32(b[21:]), nil
}

func encodeFastReply(kind byte, piece int, length int64) []byte {
	b := make([]byte, 0, fastReplyLen)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint32(b, uint32(piece))
	return binary.BigEndian.AppendUint32(b, uint32(length))
}

// decodeFastReply parses a reply's header to a request for piece want of a torrent whose
// piece lengths pieceLength gives: data must be that piece and as long as it, a refusal or a
// busy reply carries no data. It returns the reply's kind: msgFastData, msgFastRefused or
// msgFastBusy.
func decodeFastReply(b []byte, want int, pieceLength func(int) int64) (kind byte, err error) {
	if len(b) != fastReplyLen {
		return 0, fmt.Errorf("%w: reply header of %d bytes", errBadFast, len(b))
	}
	piece := binary.BigEndian.Uint32(b[1:])
	length := int64(binary.BigEndian.Uint32(b[5:]))
	if uint64(piece) != uint64(want) {
		return 0, fmt.Errorf("%w: reply for piece %d, asked for %d", errBadFast, piece, want)
	}
	switch b[0] {
	case msgFastData:
		if length != pieceLength(want) {
			return 0, fmt.Errorf("%w: %d bytes for piece %d of %d", errBadFast, length, want, pieceLength(want))
		}
	case msgFastRefused, msgFastBusy:
		if length != 0 {
			return 0, fmt.Errorf("%w: reply %q with length %d", errBadFast, b[0], length)
		}
	default:
		return 0, fmt.Errorf("%w: reply kind %q", errBadFast, b[0])
	}
	return b[0], nil
}
