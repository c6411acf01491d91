package fuzz

import (
	"bytes"
	"net/netip"
	"runtime/debug"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	httpTracker "github.com/anacrolix/torrent/tracker/http"
)

// FuzzTrackerReply feeds arbitrary bytes to the decoder of HTTP tracker replies that bt's
// announce loop runs (anacrolix/torrent's tracker client decodes the body into
// httpTracker.HttpResponse, in the announcing goroutine): it must not panic, and every peer of a
// reply it accepts must turn into an address the way bt's announce loop turns it (a 4- or
// 16-byte IP, or one bt drops).
//
// Known finding of the library: a non-compact peer list whose entries are not dictionaries, or
// lack "ip" or "port" ("d5:peersli0eee"), panics in Peer.FromDictInterface, and bencode
// re-raises runtime errors. bt's announce recovers it as an error of that tracker (bt test
// TestTrackerFaults/panic); here that one panic, recognised by its stack, counts as a rejected
// reply, and any other panic fails.
func FuzzTrackerReply(f *testing.F) {
	compact, _ := bencode.Marshal(map[string]any{"interval": 30, "peers": string([]byte{10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2})})
	f.Add(compact)
	dicts, _ := bencode.Marshal(map[string]any{"interval": 1800, "complete": 1, "incomplete": 2, "peers": []any{
		map[string]any{"ip": "10.0.0.1", "port": 6881, "peer id": "-PS0001-aaaaaaaaaaaa"},
		map[string]any{"ip": "fd00::1", "port": 6882},
	}})
	f.Add(dicts)
	six, _ := bencode.Marshal(map[string]any{"interval": 5, "peers": "", "peers6": string(make([]byte, 18))})
	f.Add(six)
	f.Add([]byte("d14:failure reason6:refusede"))
	f.Add([]byte("d8:intervali-1e5:peers5:abcdee"))
	f.Add([]byte("d5:peersi1ee"))
	f.Add([]byte("d8:intervali30e5:peers0:e trailing"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeTrackerReply(data)
		if err != nil {
			return
		}
		for _, p := range r.Peers.List {
			a, ok := netip.AddrFromSlice(p.IP)
			if ok != (len(p.IP) == 4 || len(p.IP) == 16) {
				t.Fatalf("peer IP of %d bytes gave %v, %v", len(p.IP), a, ok)
			}
		}
		for _, p := range r.Peers6 {
			if len(p.IP) != 16 {
				t.Fatalf("peers6 entry with a %d-byte IP", len(p.IP))
			}
		}
	})
}

// decodeTrackerReply decodes a tracker reply as anacrolix/torrent's HTTP tracker client does,
// turning the one known panic (see FuzzTrackerReply) into an error.
func decodeTrackerReply(data []byte) (r httpTracker.HttpResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			stack := debug.Stack()
			if !bytes.Contains(stack, []byte("tracker/http.(*Peer).FromDictInterface")) &&
				!bytes.Contains(stack, []byte("tracker/http.(*Peers).UnmarshalBencode")) {
				panic(p)
			}
			err = errKnownPanic
		}
	}()
	// As bencode.Unmarshal decodes, but with strings no longer than the input: a length prefix
	// beyond it fails the same way (the string cannot be read), without the library's
	// allocation of up to 128 MiB for it first, which made the fuzzer take a 10-byte input
	// ("100000007:") for a hang. Trailing bytes, which Unmarshal reports, the library accepts.
	d := bencode.NewDecoder(bytes.NewReader(data))
	d.MaxStrLen = int64(len(data))
	err = d.Decode(&r)
	return r, err
}

type knownPanic struct{}

func (knownPanic) Error() string {
	return "anacrolix/torrent's tracker client panics on a non-compact peer list entry that is not a dictionary of ip and port"
}

var errKnownPanic error = knownPanic{}
