package origin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/manifest"
)

// A client that asks for a .torrent with manifest.StubType in Accept gets the .torrent's stub
// instead (see manifest.MakeStub): a few hundred bytes in place of tens of KB, since the client
// takes the info dictionaries from its peers. Every .torrent reply says Vary: Accept, so that a
// cache between the origin and the nodes keeps the two apart, and the stub has a strong ETag of
// its own (from its bytes), so that a cron run's If-None-Match gets a 304 for it as for the
// .torrent. A client that asks for anything else (stock BitTorrent clients, curl) gets the
// .torrent as always.

// maxTorrentRead bounds the .torrent read to make a stub: a .torrent of a 1 TiB package in
// 1 MiB pieces holds 20 MiB of piece hashes.
const maxTorrentRead = 64 << 20

// wantsStub reports whether the Accept header values accept asks for the stub: a media range
// that is manifest.StubType (in any case), not refused with q=0.
func wantsStub(accept []string) bool {
	for _, v := range accept {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != manifest.StubType {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

// serveStub answers a request for the .torrent name with its stub when the client asks for one
// and the .torrent has one, and reports whether it did. read returns the .torrent's bytes. A
// .torrent that cannot be read or has no stub (not a single-file torrent) is left for the
// caller to serve whole, which the client takes as well.
func (s *Server) serveStub(w *countingWriter, r *http.Request, name string, mod time.Time, read func() ([]byte, error)) (status int, served bool) {
	if !strings.HasSuffix(name, ".torrent") {
		return 0, false
	}
	w.Header().Add("Vary", "Accept")
	if !wantsStub(r.Header.Values("Accept")) {
		return 0, false
	}
	data, err := read()
	if err != nil {
		s.warn("origin: cannot read the .torrent for its stub; sending it whole", "file", name, "err", err)
		return 0, false
	}
	stub, err := manifest.MakeStub(data)
	if err != nil {
		s.warn("origin: the .torrent has no stub; sending it whole", "file", name, "err", err)
		return 0, false
	}
	sum := sha256.Sum256(stub)
	w.file = name
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`-stub"`)
	w.Header().Set("Content-Type", manifest.StubType)
	http.ServeContent(w, r, "", mod, bytes.NewReader(stub))
	return w.status(), true
}

// readAtMost reads all of r, failing beyond max bytes.
func readAtMost(r io.Reader, max int64, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: over %d bytes", name, max)
	}
	return b, nil
}
