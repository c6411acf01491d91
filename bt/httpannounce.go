package bt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/tracker"

	pkgtracker "github.com/pkgsync/pkgsync/tracker"

	"github.com/pkgsync/pkgsync/originplan"
)

// Announces to http(s) trackers are made here rather than by anacrolix/torrent's tracker
// client, which decodes the reply into a fixed struct and drops every key it does not know:
// pkgsync's tracker answers with the announcer's origin role in a "pkgsync" key (see the
// tracker package doc), which stock clients ignore and this node passes to its origin planner.
// The request is the library's, parameter for parameter (tracker/http setAnnounceParams at
// v1.59.1: no numwant, compact=1, supportcrypto=1, ip and ipv4/ipv6), so a stock tracker such
// as opentracker sees no difference; the connection is the same too: the announce's dial
// function (limitReads, and TLS for https by withTLS), one connection per announce, no proxy.
// Announces to udp trackers still go through the library, and carry no role.

// announceReply is what an announce told this node.
type announceReply struct {
	interval int32
	peers    []netip.AddrPort
	seeders  int32 // "complete": the peers the tracker knows to have every piece
	// role is the origin role the tracker gave, nil when it gives none (a stock tracker).
	role *originplan.Role
	// roleErr says why a "pkgsync" key the tracker sent was not taken; the peers still are.
	roleErr error
}

// maxFetchers bounds the slots of a role read from a tracker: a tracker names a few fetchers
// per swarm, and a node compares its peers against each.
const maxFetchers = 1024

var errBadRole = errors.New(`bad "pkgsync" key`)

// httpAnnounce makes the announce a describes to an http or https tracker (after withTLS). With
// noFetch the query ends with tracker.NoFetchParam=1: this node will not fetch from the origin,
// and a pkgsync tracker gives it no origin fetcher slot (stock trackers ignore the key).
func httpAnnounce(a tracker.Announce, noFetch bool) (announceReply, error) {
	u, err := url.Parse(a.TrackerUrl)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a secret
		}
		return announceReply{}, fmt.Errorf("bt: tracker URL: %w", err)
	}
	name := trackerName(a.TrackerUrl)
	u.RawQuery = appendAnnounceQuery(u.RawQuery, &a)
	if noFetch {
		u.RawQuery += "&" + pkgtracker.NoFetchParam + "=1"
	}
	req, err := http.NewRequestWithContext(a.Context, http.MethodGet, u.String(), nil)
	if err != nil {
		return announceReply{}, fmt.Errorf("bt: announce to %s: %w", name, redactURLError(err))
	}
	req.Header.Set("User-Agent", a.UserAgent)
	if a.HttpRequestDirector != nil {
		if err := a.HttpRequestDirector(req); err != nil {
			return announceReply{}, fmt.Errorf("bt: announce to %s: %w", name, err)
		}
	}
	if a.HostHeader != "" {
		req.Host = a.HostHeader
	}
	tr := &http.Transport{DialContext: a.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return announceReply{}, fmt.Errorf("bt: announce to %s: %w", name, redactURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTrackerReply+1))
	switch {
	case err != nil:
		return announceReply{}, fmt.Errorf("bt: announce to %s: reading the reply: %w", name, err)
	case len(body) > maxTrackerReply:
		return announceReply{}, fmt.Errorf("bt: announce to %s: reply over %d bytes", name, maxTrackerReply)
	case resp.StatusCode != http.StatusOK:
		return announceReply{}, fmt.Errorf("bt: announce to %s: %s: %q", name, resp.Status, body[:min(len(body), 200)])
	}
	r, err := decodeAnnounceReply(body, a.Request.PeerId)
	if err != nil {
		return announceReply{}, fmt.Errorf("bt: announce to %s: %w", name, err)
	}
	return r, nil
}

// trackerName is the tracker's URL for logs and errors: without its query, where its secret
// may be, and without a password.
func trackerName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a tracker URL that does not parse)"
	}
	u.RawQuery, u.ForceQuery = "", false
	return u.Redacted()
}

// redactURLError leaves the query (which may hold the tracker's secret) out of a *url.Error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			return &url.Error{Op: ue.Op, URL: u.Redacted(), Err: ue.Err}
		}
	}
	return err
}

// appendAnnounceQuery appends the announce's parameters to the tracker URL's own query, which
// comes first (some private trackers want their own parameter in the first place), as the
// library does.
func appendAnnounceQuery(raw string, a *tracker.Announce) string {
	r := &a.Request
	q := url.Values{}
	q.Set("key", strconv.FormatInt(int64(r.Key), 10))
	q.Set("info_hash", string(r.InfoHash[:]))
	q.Set("peer_id", string(r.PeerId[:]))
	q.Set("port", strconv.Itoa(int(r.Port)))
	q.Set("uploaded", strconv.FormatInt(r.Uploaded, 10))
	q.Set("downloaded", strconv.FormatInt(r.Downloaded, 10))
	left := r.Left
	if left < 0 {
		left = math.MaxInt64 // some trackers refuse a negative left, and others an absent one
	}
	q.Set("left", strconv.FormatInt(left, 10))
	if r.Event != tracker.None {
		q.Set("event", r.Event.String())
	}
	q.Set("compact", "1")
	q.Set("supportcrypto", "1")
	for _, ip := range []struct {
		key  string
		addr []byte
	}{{"ipv4", a.ClientIp4.IP}, {"ipv6", a.ClientIp6.IP}} {
		if a, ok := netip.AddrFromSlice(ip.addr); ok {
			q.Set(ip.key, a.String())
			q.Add("ip", a.String())
		}
	}
	// Query-escaped already, a + stands for itself only as %2B; spaces go as %20.
	s := strings.ReplaceAll(q.Encode(), "+", "%20")
	if raw != "" {
		return raw + "&" + s
	}
	return s
}

// httpReply is the part of a tracker's bencoded reply this node reads. Peers is a compact
// string (BEP 23) or a list of dictionaries (BEP 3), read by peersOf.
type httpReply struct {
	FailureReason string        `bencode:"failure reason"`
	Interval      int32         `bencode:"interval"`
	Complete      int32         `bencode:"complete"`
	Peers         bencode.Bytes `bencode:"peers"`
	Peers6        []byte        `bencode:"peers6"` // BEP 7, 18-byte entries
	Pkgsync       bencode.Bytes `bencode:"pkgsync"`
}

type dictPeer struct {
	IP   string `bencode:"ip"`
	Port int64  `bencode:"port"`
}

// wireRole is the "pkgsync" key: each fetcher slot's holder as 20 bytes (zeros for a free
// slot), and the announcer's slot (-1 for none).
type wireRole struct {
	Fetchers []byte `bencode:"fetchers"`
	Slot     *int64 `bencode:"slot"`
}

// decodeAnnounceReply reads a tracker's reply to the announce of the node self: its failure
// reason as an error, else its interval, its peers (compact IPv4 and IPv6, or dictionaries;
// entries with a port of 0 or an address that is none are left out) and its "pkgsync" key, if
// any. A malformed "pkgsync" key leaves the role out and says why in roleErr; it does not cost
// the peers. Trailing bytes after the dictionary are ignored, as the library ignores them.
func decodeAnnounceReply(body []byte, self originplan.PeerID) (announceReply, error) {
	var hr httpReply
	d := bencode.NewDecoder(bytes.NewReader(body))
	d.MaxStrLen = int64(len(body)) // no string is longer than the reply: allocate no more
	if err := d.Decode(&hr); err != nil {
		return announceReply{}, fmt.Errorf("decoding the tracker's reply %q: %w", body[:min(len(body), 200)], err)
	}
	if hr.FailureReason != "" {
		return announceReply{}, fmt.Errorf("the tracker says: %q", hr.FailureReason)
	}
	r := announceReply{interval: hr.Interval, seeders: max(hr.Complete, 0)}
	var err error
	if r.peers, err = peersOf(hr.Peers, len(body)); err != nil {
		return announceReply{}, err
	}
	if len(hr.Peers6)%18 != 0 {
		return announceReply{}, fmt.Errorf("tracker's peers6 is %d bytes, not a multiple of 18", len(hr.Peers6))
	}
	for b := hr.Peers6; len(b) > 0; b = b[18:] {
		r.peers = appendPeer(r.peers, netip.AddrFrom16([16]byte(b[:16])), int64(binary.BigEndian.Uint16(b[16:])))
	}
	if hr.Pkgsync != nil {
		r.role, r.roleErr = roleOf(hr.Pkgsync, self, len(body))
	}
	return r, nil
}

// peersOf reads the "peers" value of a reply of n bytes: a compact string of 6-byte IPv4
// entries, or a list of dictionaries with "ip" and "port".
func peersOf(raw bencode.Bytes, n int) ([]netip.AddrPort, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var out []netip.AddrPort
	if raw[0] == 'l' {
		var list []dictPeer
		if err := unmarshalBounded(raw, &list, n); err != nil {
			return nil, fmt.Errorf("tracker's peer list: %w", err)
		}
		for _, p := range list {
			a, err := netip.ParseAddr(p.IP)
			if err != nil {
				continue // a host name or garbage: nothing this node can dial
			}
			out = appendPeer(out, a, p.Port)
		}
		return out, nil
	}
	var compact []byte
	if err := unmarshalBounded(raw, &compact, n); err != nil {
		return nil, fmt.Errorf("tracker's peers: %w", err)
	}
	if len(compact)%6 != 0 {
		return nil, fmt.Errorf("tracker's compact peers are %d bytes, not a multiple of 6", len(compact))
	}
	for b := compact; len(b) > 0; b = b[6:] {
		out = appendPeer(out, netip.AddrFrom4([4]byte(b[:4])), int64(binary.BigEndian.Uint16(b[4:])))
	}
	return out, nil
}

// appendPeer appends a peer at a and port, unless it is no address to dial.
func appendPeer(out []netip.AddrPort, a netip.Addr, port int64) []netip.AddrPort {
	a = a.Unmap().WithZone("")
	if port <= 0 || port >= 1<<16 || a.IsUnspecified() {
		return out
	}
	return append(out, netip.AddrPortFrom(a, uint16(port)))
}

// roleOf reads a "pkgsync" key: fetchers must be whole 20-byte IDs, at least one and at most
// maxFetchers, and slot -1 or the place of self among them.
func roleOf(raw bencode.Bytes, self originplan.PeerID, n int) (*originplan.Role, error) {
	var w wireRole
	if err := unmarshalBounded(raw, &w, n); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadRole, err)
	}
	nf := len(w.Fetchers) / 20
	switch {
	case w.Slot == nil:
		return nil, fmt.Errorf("%w: no slot", errBadRole)
	case len(w.Fetchers)%20 != 0 || nf == 0 || nf > maxFetchers:
		return nil, fmt.Errorf("%w: fetchers of %d bytes, want 20 for each of 1 to %d slots", errBadRole, len(w.Fetchers), maxFetchers)
	case *w.Slot < -1 || *w.Slot >= int64(nf):
		return nil, fmt.Errorf("%w: slot %d of %d", errBadRole, *w.Slot, nf)
	case *w.Slot >= 0 && !bytes.Equal(w.Fetchers[20**w.Slot:][:20], self[:]):
		return nil, fmt.Errorf("%w: slot %d is held by %x, not by this node", errBadRole, *w.Slot, w.Fetchers[20**w.Slot:][:20])
	}
	role := &originplan.Role{Slot: int(*w.Slot), Fetchers: make([]originplan.PeerID, nf)}
	for i := range role.Fetchers {
		role.Fetchers[i] = originplan.PeerID(w.Fetchers[20*i:][:20])
	}
	return role, nil
}

// unmarshalBounded decodes one bencoded value of a reply of n bytes into v, trailing bytes
// ignored.
func unmarshalBounded(raw []byte, v any, n int) error {
	d := bencode.NewDecoder(bytes.NewReader(raw))
	d.MaxStrLen = int64(n)
	return d.Decode(v)
}
