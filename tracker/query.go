package tracker

import (
	"net/url"
	"strings"
)

// An announce query is read without url.ParseQuery, which builds a map of slices of every key
// and value for each announce: announceParams keeps the first value of the keys the tracker reads
// (url.Values.Get's choice), unescaping only those, and checks the rest the way ParseQuery does,
// failing with the same error. FuzzAnnounceQueryParse holds the two to that.

// The keys an announce is read for.
const (
	qInfoHash = iota
	qPeerID
	qPort
	qEvent
	qUploaded
	qDownloaded
	qLeft
	qNumWant
	qCompact
	qNoPeerID
	qIP
	qSecret
	qNoFetch
	nQueryKeys
)

var queryKeys = [nQueryKeys]string{
	qInfoHash: "info_hash", qPeerID: "peer_id", qPort: "port", qEvent: "event", qUploaded: "uploaded",
	qDownloaded: "downloaded", qLeft: "left", qNumWant: "numwant", qCompact: "compact",
	qNoPeerID: "no_peer_id", qIP: "ip", qSecret: SecretParam, qNoFetch: NoFetchParam,
}

type announceParams struct {
	vals [nQueryKeys]string
	has  [nQueryKeys]bool
}

// lookup returns the first value of key k and whether it is present.
func (q *announceParams) lookup(k int) (string, bool) { return q.vals[k], q.has[k] }

// get returns the first value of key k, or "".
func (q *announceParams) get(k int) string { return q.vals[k] }

// parseAnnounceQuery reads raw as url.ParseQuery does, failing where it fails with its error.
// A query of more than 64 keys (an announce has about 12) is left to url.ParseQuery, which also
// enforces its own limit on their number.
func parseAnnounceQuery(raw string) (q announceParams, err error) {
	if strings.Count(raw, "&") >= 64 {
		vs, err := url.ParseQuery(raw)
		if err != nil {
			return q, err
		}
		for i, k := range queryKeys {
			if v, ok := vs[k]; ok {
				q.vals[i], q.has[i] = v[0], true
			}
		}
		return q, nil
	}
	for rest := raw; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.Contains(pair, ";") || !validEscapes(k) || !validEscapes(v) {
			// ParseQuery's error, which is not always the first one met: a semicolon anywhere
			// outweighs a bad escape.
			_, err = url.ParseQuery(raw)
			return q, err
		}
		k, _ = unescape(k)
		if i := keyIndex(k); i >= 0 && !q.has[i] {
			q.vals[i], _ = unescape(v)
			q.has[i] = true
		}
	}
	return q, nil
}

func keyIndex(k string) int {
	for i, name := range queryKeys {
		if k == name {
			return i
		}
	}
	return -1
}

// unescape is url.QueryUnescape, without a copy when s has nothing to unescape.
func unescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// validEscapes reports whether every % in s starts a %XX escape, all url.QueryUnescape checks.
func validEscapes(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0; i = strings.IndexByte(s, '%') {
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		s = s[i+3:]
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
