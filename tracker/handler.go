package tracker

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/bencode"
	trackerServer "github.com/anacrolix/torrent/tracker/server"
	"github.com/anacrolix/torrent/tracker/shared"
	"github.com/anacrolix/torrent/tracker/udp"
)

// announceRequest is a parsed /announce query.
type announceRequest struct {
	req      udp.AnnounceRequest
	event    string         // as sent, for the log
	addr     netip.AddrPort // the address other peers are given
	compact  bool
	noPeerID bool
	infoHash generics.Option[[20]byte] // set as soon as info_hash parsed, for the failure log
}

// requestError is a refused request; its message becomes the bencoded "failure reason".
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func refuse(format string, args ...any) error {
	return &requestError{fmt.Sprintf(format, args...)}
}

var events = map[string]udp.AnnounceEvent{
	"":          shared.None,
	"started":   shared.Started,
	"completed": shared.Completed,
	"stopped":   shared.Stopped,
	"paused":    shared.None, // BEP 21: a partial seed pausing; it stays listed like any re-announce
}

// parseAnnounce reads an announce query (BEP 3 keys, plus numwant, compact and no_peer_id). It
// is strict about what it uses: info_hash, peer_id and port are required, and a number that is
// present must parse; keys it does not know are ignored.
func parseAnnounce(r *http.Request) (a announceRequest, err error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return a, refuse("bad query: %v", err)
	}
	if a.req.InfoHash, err = param20(q, "info_hash"); err != nil {
		return a, err
	}
	a.infoHash = generics.Some(a.req.InfoHash)
	if a.req.PeerId, err = param20(q, "peer_id"); err != nil {
		return a, err
	}
	port, err := strconv.ParseUint(q.Get("port"), 10, 16)
	if err != nil || port == 0 {
		return a, refuse("bad port %q", q.Get("port"))
	}
	a.req.Port = uint16(port)
	ev, ok := events[q.Get("event")]
	if !ok {
		return a, refuse("unknown event %q", q.Get("event"))
	}
	a.req.Event, a.event = ev, q.Get("event")
	for _, n := range []struct {
		key string
		dst *int64
		def int64
	}{{"uploaded", &a.req.Uploaded, 0}, {"downloaded", &a.req.Downloaded, 0}, {"left", &a.req.Left, -1}} {
		*n.dst = n.def
		if s, ok := q[n.key]; ok {
			v, err := strconv.ParseInt(s[0], 10, 64)
			if err != nil || v < 0 {
				return a, refuse("bad %s %q", n.key, s[0])
			}
			*n.dst = v
		}
	}
	a.req.NumWant = -1
	if s, ok := q["numwant"]; ok {
		v, err := strconv.ParseInt(s[0], 10, 32)
		if err != nil {
			return a, refuse("bad numwant %q", s[0])
		}
		if v >= 0 {
			a.req.NumWant = int32(v)
		}
	}
	if a.req.Event == shared.Stopped {
		a.req.NumWant = 0 // a leaving peer needs no peers
	}
	a.compact = q.Get("compact") != "0"
	a.noPeerID = q.Get("no_peer_id") == "1"

	// The data center is trusted (see the package doc): ip= names the address to hand out.
	var ip netip.Addr
	if s, ok := q["ip"]; ok {
		if ip, err = netip.ParseAddr(s[0]); err != nil {
			return a, refuse("bad ip %q: want an IP address", s[0])
		}
	} else {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			return a, fmt.Errorf("remote address %q: %w", r.RemoteAddr, err)
		}
		ip = ap.Addr()
	}
	// Unmapped, so that an IPv4 peer reaching a dual-stack listener goes into "peers"; without a
	// zone, which a compact entry cannot carry.
	ip = ip.Unmap().WithZone("")
	if ip.IsUnspecified() || ip.IsMulticast() {
		return a, refuse("bad ip %v: not a peer address", ip)
	}
	a.addr = netip.AddrPortFrom(ip, a.req.Port)
	return a, nil
}

func param20(q url.Values, key string) (v [20]byte, err error) {
	s, ok := q[key]
	if !ok {
		return v, refuse("missing %s", key)
	}
	if len(s[0]) != len(v) {
		return v, refuse("%s is %d bytes, want %d", key, len(s[0]), len(v))
	}
	copy(v[:], s[0])
	return v, nil
}

// announceResponse is a successful announce answer. Keys that carry nothing are left out: a
// "failure reason" key, even empty, makes clients such as aria2c reject the answer.
type announceResponse struct {
	Interval   int32 `bencode:"interval"`
	Complete   int32 `bencode:"complete"`
	Incomplete int32 `bencode:"incomplete"`
	// Peers is the compact string of 6-byte IPv4 entries (BEP 23), or a list of peerDict for
	// compact=0 (BEP 3).
	Peers  any    `bencode:"peers"`
	Peers6 []byte `bencode:"peers6,omitempty"` // 18-byte IPv6 entries (BEP 7), compact only
}

type peerDict struct {
	IP     string `bencode:"ip"`
	PeerID []byte `bencode:"peer id,omitempty"`
	Port   uint16 `bencode:"port"`
}

type failureResponse struct {
	FailureReason string `bencode:"failure reason"`
}

func (t *Tracker) serveAnnounce(w http.ResponseWriter, r *http.Request) {
	a, err := parseAnnounce(r)
	if err == nil && t.opts.AllowInfoHash != nil && !t.opts.AllowInfoHash(a.req.InfoHash) {
		err = refuse("info hash %x is not served by this tracker", a.req.InfoHash)
	}
	if err != nil {
		t.fail(w, r, a.infoHash, err)
		return
	}
	res := t.announce.Serve(r.Context(), a.req, a.addr, trackerServer.GetPeersOpts{
		MaxCount: generics.Some(uint(t.opts.MaxPeers)),
	})
	if res.Err != nil {
		t.fail(w, r, a.infoHash, fmt.Errorf("announce of %x from %v: %w", a.req.InfoHash, a.addr, res.Err))
		return
	}
	resp := announceResponse{
		Interval:   res.Interval.UnwrapOr(t.store.interval),
		Complete:   res.Seeders.Value,
		Incomplete: res.Leechers.Value,
	}
	if a.compact {
		var v4 []byte
		for _, p := range res.Peers {
			if p.Addr().Is4() {
				v4 = appendCompact(v4, p.AnnounceAddr)
			} else {
				resp.Peers6 = appendCompact(resp.Peers6, p.AnnounceAddr)
			}
		}
		resp.Peers = v4
	} else {
		list := make([]peerDict, 0, len(res.Peers))
		for _, p := range res.Peers {
			d := peerDict{IP: p.Addr().String(), Port: p.Port()}
			if info, ok := t.store.peer(a.req.InfoHash, p.AnnounceAddr); ok && !a.noPeerID {
				d.PeerID = info.ID[:]
			}
			list = append(list, d)
		}
		resp.Peers = list
	}
	t.log(announceLog{
		Time:       t.timestamp(),
		InfoHash:   hex.EncodeToString(a.req.InfoHash[:]),
		PeerID:     hex.EncodeToString(a.req.PeerId[:]),
		Peer:       a.addr.String(),
		Remote:     r.RemoteAddr,
		Event:      a.event,
		Uploaded:   a.req.Uploaded,
		Downloaded: a.req.Downloaded,
		Left:       a.req.Left,
		NumWant:    a.req.NumWant,
		Peers:      len(res.Peers),
	})
	writeBencode(w, resp)
}

// appendCompact appends the compact form of ap: the address's 4 or 16 bytes, then the port,
// big-endian.
func appendCompact(b []byte, ap netip.AddrPort) []byte {
	b = append(b, ap.Addr().AsSlice()...)
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// scrapeResponse is a BEP 48 answer: "files" maps each raw 20-byte info hash to its counts
// ("complete", "downloaded", "incomplete").
type scrapeResponse struct {
	Files map[string]udp.ScrapeInfohashResult `bencode:"files"`
}

// serveScrape answers /scrape for the info_hash values given, or for every torrent the tracker
// knows when none is given.
func (t *Tracker) serveScrape(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		t.fail(w, r, generics.None[[20]byte](), refuse("bad query: %v", err))
		return
	}
	var ihs [][20]byte
	for _, s := range q["info_hash"] {
		if len(s) != 20 {
			t.fail(w, r, generics.None[[20]byte](), refuse("info_hash is %d bytes, want 20", len(s)))
			return
		}
		ihs = append(ihs, [20]byte([]byte(s)))
	}
	if _, given := q["info_hash"]; !given {
		ihs = t.store.all()
	}
	allowed := ihs[:0:0]
	for _, ih := range ihs {
		if t.opts.AllowInfoHash == nil || t.opts.AllowInfoHash(ih) {
			allowed = append(allowed, ih)
		}
	}
	counts, err := t.store.Scrape(r.Context(), allowed)
	if err != nil {
		t.fail(w, r, generics.None[[20]byte](), fmt.Errorf("scrape: %w", err))
		return
	}
	resp := scrapeResponse{Files: make(map[string]udp.ScrapeInfohashResult, len(allowed))}
	for i, ih := range allowed {
		resp.Files[string(ih[:])] = counts[i]
	}
	writeBencode(w, resp)
}

// fail answers with a bencoded failure reason. BitTorrent clients read the reason only from a
// 200 answer, so that is the status, as every tracker does.
func (t *Tracker) fail(w http.ResponseWriter, r *http.Request, infoHash generics.Option[[20]byte], err error) {
	reason := err.Error()
	var re *requestError
	if !errors.As(err, &re) {
		reason = "internal error: " + reason
	}
	rec := failureLog{Time: t.timestamp(), Remote: r.RemoteAddr, Path: r.URL.Path, Failure: reason}
	if infoHash.Ok {
		rec.InfoHash = hex.EncodeToString(infoHash.Value[:])
	}
	t.log(rec)
	writeBencode(w, failureResponse{FailureReason: reason})
}

func writeBencode(w http.ResponseWriter, v any) {
	b, err := bencode.Marshal(v)
	if err != nil {
		// Only our own fixed types are encoded, so this is a bug; say so in bencode.
		b, _ = bencode.Marshal(failureResponse{FailureReason: "internal error: encoding answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

type announceLog struct {
	Time       string `json:"time"`
	InfoHash   string `json:"info_hash"`
	PeerID     string `json:"peer_id"`
	Peer       string `json:"peer"`
	Remote     string `json:"remote"`
	Event      string `json:"event"`
	Uploaded   int64  `json:"uploaded"`
	Downloaded int64  `json:"downloaded"`
	Left       int64  `json:"left"`
	NumWant    int32  `json:"numwant"`
	Peers      int    `json:"peers"`
}

type failureLog struct {
	Time     string `json:"time"`
	Remote   string `json:"remote"`
	Path     string `json:"path"`
	InfoHash string `json:"info_hash,omitempty"`
	Failure  string `json:"failure"`
}

func (t *Tracker) timestamp() string { return t.opts.Now().UTC().Format(time.RFC3339Nano) }

// log writes one JSON line to Options.Log, in one Write so that lines never interleave.
func (t *Tracker) log(rec any) {
	if t.opts.Log == nil {
		return
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(rec); err != nil {
		return
	}
	t.logMu.Lock()
	defer t.logMu.Unlock()
	t.opts.Log.Write(buf.Bytes())
}
