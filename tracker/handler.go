package tracker

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/generics"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/tracker/shared"
	"github.com/anacrolix/torrent/tracker/udp"

	"github.com/pkgsync/pkgsync/metrics"
)

// announceRequest is a parsed /announce query.
type announceRequest struct {
	req      udp.AnnounceRequest
	event    string         // as sent, for the log
	addr     netip.AddrPort // the address other peers are given
	compact  bool
	noPeerID bool
	noFetch  bool                      // NoFetchParam=1: the asker will not fetch from the origin
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

// SecretParam is the query parameter that carries Options.Secret.
const SecretParam = "secret"

// NoFetchParam=1 in an announce says the announcer will not fetch from the origin (a pkgsync
// node of a site without the origin, which takes its pieces from its site's gateway): it gets
// no origin fetcher slot, and gives back one it holds, so that the slots' blocks go to nodes
// that fetch. Stock trackers ignore it.
const NoFetchParam = "pkgsync_nofetch"

// allow refuses a request from remote (http.Request.RemoteAddr) outside Options.Allow. The
// address checked is the connection's, never ip=.
func (t *Tracker) allow(remote string) error {
	if len(t.opts.Allow) == 0 {
		return nil
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return refuse("remote address %q is not an IP address and port", remote)
	}
	ip := ap.Addr().Unmap().WithZone("")
	if !slices.ContainsFunc(t.opts.Allow, func(p netip.Prefix) bool { return p.Contains(ip) }) {
		return refuse("%v is not allowed to use this tracker", ip)
	}
	return nil
}

// checkSecret refuses a request whose first secret= value, given when present, is not
// Options.Secret.
func (t *Tracker) checkSecret(got string, present bool) error {
	switch {
	case t.opts.Secret == "":
		return nil
	case !present:
		return refuse("missing %s: this tracker takes only announce URLs that carry %s=TOKEN", SecretParam, SecretParam)
	case subtle.ConstantTimeCompare([]byte(got), []byte(t.opts.Secret)) != 1:
		return refuse("wrong %s", SecretParam)
	}
	return nil
}

// admitAnnounce reads the raw query of an announce and refuses it when it comes from outside
// Options.Allow or does not carry Options.Secret.
func (t *Tracker) admitAnnounce(remote, rawQuery string) (q announceParams, err error) {
	if err := t.allow(remote); err != nil {
		return q, err
	}
	if q, err = parseAnnounceQuery(rawQuery); err != nil {
		return q, refuse("bad query: %v", err)
	}
	return q, t.checkSecret(q.lookup(qSecret))
}

// parseAnnounce reads the announce query q of a request from remote (BEP 3 keys, plus numwant,
// compact and no_peer_id). It is strict about what it uses: info_hash, peer_id and port are
// required, and a number that is present must parse; keys it does not know are ignored.
func parseAnnounce(remote string, q *announceParams) (a announceRequest, err error) {
	if a.req.InfoHash, err = param20(q, qInfoHash); err != nil {
		return a, err
	}
	a.infoHash = generics.Some(a.req.InfoHash)
	if a.req.PeerId, err = param20(q, qPeerID); err != nil {
		return a, err
	}
	port, err := strconv.ParseUint(q.get(qPort), 10, 16)
	if err != nil || port == 0 {
		return a, refuse("bad port %q", q.get(qPort))
	}
	a.req.Port = uint16(port)
	ev, ok := events[q.get(qEvent)]
	if !ok {
		return a, refuse("unknown event %q", q.get(qEvent))
	}
	a.req.Event, a.event = ev, q.get(qEvent)
	for _, n := range [...]struct {
		key int
		dst *int64
		def int64
	}{{qUploaded, &a.req.Uploaded, 0}, {qDownloaded, &a.req.Downloaded, 0}, {qLeft, &a.req.Left, -1}} {
		*n.dst = n.def
		if s, ok := q.lookup(n.key); ok {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return a, refuse("bad %s %q", queryKeys[n.key], s)
			}
			*n.dst = v
		}
	}
	a.req.NumWant = -1
	if s, ok := q.lookup(qNumWant); ok {
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return a, refuse("bad numwant %q", s)
		}
		if v >= 0 {
			a.req.NumWant = int32(v)
		}
	}
	if a.req.Event == shared.Stopped {
		a.req.NumWant = 0 // a leaving peer needs no peers
	}
	a.compact = q.get(qCompact) != "0"
	a.noPeerID = q.get(qNoPeerID) == "1"
	a.noFetch = q.get(qNoFetch) == "1"

	// The data center is trusted (see the package doc): ip= names the address to hand out.
	var ip netip.Addr
	if s, ok := q.lookup(qIP); ok {
		if ip, err = netip.ParseAddr(s); err != nil {
			return a, refuse("bad ip %q: want an IP address", s)
		}
	} else {
		ap, err := netip.ParseAddrPort(remote)
		if err != nil {
			return a, fmt.Errorf("remote address %q: %w", remote, err)
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

func param20(q *announceParams, key int) (v [20]byte, err error) {
	s, ok := q.lookup(key)
	if !ok {
		return v, refuse("missing %s", queryKeys[key])
	}
	if len(s) != len(v) {
		return v, refuse("%s is %d bytes, want %d", queryKeys[key], len(s), len(v))
	}
	copy(v[:], s)
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
	// Pkgsync is the asker's origin role when the tracker hands them out (see the package doc).
	Pkgsync *roleReply `bencode:"pkgsync,omitempty"`
}

// roleReply is the "pkgsync" key of an announce answer: the asker's origin role.
type roleReply struct {
	Fetchers []byte `bencode:"fetchers"` // each slot's holder's peer_id, zeros for a free slot
	Slot     int    `bencode:"slot"`     // the asker's slot in Fetchers, -1 for none
}

// newRoleReply is the "pkgsync" key for res, nil when the tracker hands out no roles.
func newRoleReply(res *announced) *roleReply {
	if !res.coordinated {
		return nil
	}
	r := &roleReply{Slot: res.role.Slot, Fetchers: make([]byte, 0, 20*len(res.role.Fetchers))}
	for _, id := range res.role.Fetchers {
		r.Fetchers = append(r.Fetchers, id[:]...)
	}
	return r
}

type peerDict struct {
	IP     string `bencode:"ip"`
	PeerID []byte `bencode:"peer id,omitempty"`
	Port   uint16 `bencode:"port"`
}

type failureResponse struct {
	FailureReason string `bencode:"failure reason"`
}

var (
	rankBufs   = sync.Pool{New: func() any { return new(rankBuf) }}
	answerBufs = sync.Pool{New: func() any { return new([]byte) }}
)

func (t *Tracker) serveAnnounce(w http.ResponseWriter, r *http.Request) {
	bp := answerBufs.Get().(*[]byte)
	defer answerBufs.Put(bp)
	*bp = t.AnswerAnnounce((*bp)[:0], r.RemoteAddr, r.URL.RawQuery)
	writeAnswer(w, *bp)
}

// AnswerAnnounce appends to dst the bencoded answer to an announce with the raw query rawQuery
// (after the '?' of /announce) over a connection from remoteAddr ("IP:port", as
// http.Request.RemoteAddr), and records and logs the announce: all that Handler does for an
// announce, for a server that reads its requests without net/http (origin.LeanRoute). The answer
// goes out with status 200 and Content-Type text/plain, also when it is a failure reason.
func (t *Tracker) AnswerAnnounce(dst []byte, remoteAddr, rawQuery string) []byte {
	var a announceRequest
	q, err := t.admitAnnounce(remoteAddr, rawQuery)
	if err == nil {
		a, err = parseAnnounce(remoteAddr, &q)
	}
	if err == nil && t.opts.AllowInfoHash != nil && !t.opts.AllowInfoHash(a.req.InfoHash) {
		err = refuse("info hash %x is not served by this tracker", a.req.InfoHash)
	}
	if err != nil {
		t.metrics.Announce(refusedEvent(&q), false)
		return t.failure(dst, remoteAddr, "/announce", a.infoHash, err)
	}
	t.metrics.Announce(a.event, true)
	limit := t.opts.MaxPeers
	if a.req.NumWant >= 0 {
		limit = min(limit, int(a.req.NumWant))
	}
	rb := rankBufs.Get().(*rankBuf)
	defer rankBufs.Put(rb)
	res := t.store.announce(&a.req, a.addr, limit, rb, a.noFetch)
	t.logAnnounce(&a, remoteAddr, len(res.peers))
	if a.compact {
		return appendAnnounce(dst, t.store.interval, res)
	}
	list := make([]peerDict, 0, len(res.peers))
	for _, p := range res.peers {
		d := peerDict{IP: p.addr().Addr().String(), Port: p.port}
		if !a.noPeerID {
			d.PeerID = slices.Clone(p.id[:])
		}
		list = append(list, d)
	}
	return appendBencode(dst, announceResponse{
		Interval:   t.store.interval,
		Complete:   res.seeders,
		Incomplete: res.leechers,
		Peers:      list,
		Pkgsync:    newRoleReply(&res),
	})
}

// appendAnnounce appends the bencoded compact answer (as announceResponse encodes, without going
// through reflection): IPv4 peers in "peers", IPv6 ones in "peers6" when there are any, and the
// asker's origin role in "pkgsync" when the tracker hands them out.
func appendAnnounce(b []byte, interval int32, res announced) []byte {
	n4 := 0
	for _, p := range res.peers {
		if p.is4 {
			n4++
		}
	}
	n6 := len(res.peers) - n4
	b = append(b, "d8:completei"...)
	b = strconv.AppendInt(b, int64(res.seeders), 10)
	b = append(b, "e10:incompletei"...)
	b = strconv.AppendInt(b, int64(res.leechers), 10)
	b = append(b, "e8:intervali"...)
	b = strconv.AppendInt(b, int64(interval), 10)
	b = append(b, "e5:peers"...)
	b = strconv.AppendInt(b, int64(6*n4), 10)
	b = append(b, ':')
	for i := range res.peers {
		if p := &res.peers[i]; p.is4 {
			b = append(b, p.ip[12:]...)
			b = binary.BigEndian.AppendUint16(b, p.port)
		}
	}
	if n6 > 0 {
		b = append(b, "6:peers6"...)
		b = strconv.AppendInt(b, int64(18*n6), 10)
		b = append(b, ':')
		for i := range res.peers {
			if p := &res.peers[i]; !p.is4 {
				b = append(b, p.ip[:]...)
				b = binary.BigEndian.AppendUint16(b, p.port)
			}
		}
	}
	if res.coordinated {
		b = append(b, "7:pkgsyncd8:fetchers"...)
		b = strconv.AppendInt(b, int64(20*len(res.role.Fetchers)), 10)
		b = append(b, ':')
		for _, id := range res.role.Fetchers {
			b = append(b, id[:]...)
		}
		b = append(b, "4:sloti"...)
		b = strconv.AppendInt(b, int64(res.role.Slot), 10)
		b = append(b, "ee"...)
	}
	return append(b, 'e')
}

// scrapeResponse is a BEP 48 answer: "files" maps each raw 20-byte info hash to its counts
// ("complete", "downloaded", "incomplete").
type scrapeResponse struct {
	Files map[string]udp.ScrapeInfohashResult `bencode:"files"`
}

// serveScrape answers /scrape for the info_hash values given, or for every torrent the tracker
// knows when none is given.
func (t *Tracker) serveScrape(w http.ResponseWriter, r *http.Request) {
	err := t.allow(r.RemoteAddr)
	var q url.Values
	if err == nil {
		if q, err = url.ParseQuery(r.URL.RawQuery); err != nil {
			err = refuse("bad query: %v", err)
		}
	}
	if err == nil {
		secret, ok := q[SecretParam]
		err = t.checkSecret(strings.Join(secret[:min(len(secret), 1)], ""), ok)
	}
	if err != nil {
		t.metrics.Scrape(false)
		t.fail(w, r, generics.None[[20]byte](), err)
		return
	}
	var ihs [][20]byte
	for _, s := range q["info_hash"] {
		if len(s) != 20 {
			t.metrics.Scrape(false)
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
	counts := t.store.Scrape(allowed)
	resp := scrapeResponse{Files: make(map[string]udp.ScrapeInfohashResult, len(allowed))}
	for i, ih := range allowed {
		resp.Files[string(ih[:])] = counts[i]
	}
	t.metrics.Scrape(true)
	writeBencode(w, resp)
}

// refusedEvent is the event label of a refused announce: the event it names when its query was
// read (an announce always names its info_hash), else unknown.
func refusedEvent(q *announceParams) string {
	if _, read := q.lookup(qInfoHash); !read {
		return metrics.EventUnknown
	}
	return q.get(qEvent)
}

// fail answers with a bencoded failure reason.
func (t *Tracker) fail(w http.ResponseWriter, r *http.Request, infoHash generics.Option[[20]byte], err error) {
	writeAnswer(w, t.failure(nil, r.RemoteAddr, r.URL.Path, infoHash, err))
}

// failure logs a refused request to path from remote and appends the bencoded failure reason to
// dst. BitTorrent clients read the reason only from a 200 answer, so that is the status it goes
// out with, as every tracker does.
func (t *Tracker) failure(dst []byte, remote, path string, infoHash generics.Option[[20]byte], err error) []byte {
	reason := err.Error()
	var re *requestError
	if !errors.As(err, &re) {
		reason = "internal error: " + reason
	}
	rec := failureLog{Time: t.timestamp(), Remote: remote, Path: path, Failure: reason}
	if infoHash.Ok {
		rec.InfoHash = hex.EncodeToString(infoHash.Value[:])
	}
	t.log(rec)
	return appendBencode(dst, failureResponse{FailureReason: reason})
}

func writeBencode(w http.ResponseWriter, v any) { writeAnswer(w, appendBencode(nil, v)) }

// appendBencode appends the bencoding of v, one of this package's answer types, to dst.
func appendBencode(dst []byte, v any) []byte {
	b, err := bencode.Marshal(v)
	if err != nil {
		// Only our own fixed types are encoded, so this is a bug; say so in bencode.
		b, _ = bencode.Marshal(failureResponse{FailureReason: "internal error: encoding answer: " + err.Error()})
	}
	return append(dst, b...)
}

// Header values of the answers, each allocated once: textPlain, and the Content-Length value
// of each length below 8 KiB once it has been answered. (The slices are shared between answers;
// net/http only reads them.)
var (
	textPlain = []string{"text/plain"}
	lengths   [8 << 10]atomic.Pointer[[]string]
)

func contentLength(n int) []string {
	if n >= len(lengths) {
		return []string{strconv.Itoa(n)}
	}
	if v := lengths[n].Load(); v != nil {
		return *v
	}
	v := []string{strconv.Itoa(n)}
	lengths[n].Store(&v)
	return v
}

func writeAnswer(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = textPlain
	h["Content-Length"] = contentLength(len(b))
	w.Write(b)
}

type failureLog struct {
	Time     string `json:"time"`
	Remote   string `json:"remote"`
	Path     string `json:"path"`
	InfoHash string `json:"info_hash,omitempty"`
	Failure  string `json:"failure"`
}

func (t *Tracker) timestamp() string { return t.opts.Now().UTC().Format(time.RFC3339Nano) }

// logAnnounce writes the log line of an announce (see Options.Log). It is the line encoding/json
// would write, encoded by hand: it is written for every announce, and reflection cost more than
// all the rest of the log's work.
func (t *Tracker) logAnnounce(a *announceRequest, remote string, peers int) {
	if t.opts.Log == nil {
		return
	}
	bp := logBufs.Get().(*[]byte)
	defer logBufs.Put(bp)
	b := append((*bp)[:0], `{"time":"`...)
	b = t.opts.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","info_hash":"`...)
	b = hex.AppendEncode(b, a.req.InfoHash[:])
	b = append(b, `","peer_id":"`...)
	b = hex.AppendEncode(b, a.req.PeerId[:])
	b = append(b, `","peer":"`...)
	b = a.addr.AppendTo(b) // digits, hex, '.', ':', '[' and ']' only: no zone
	b = append(b, `","remote":`...)
	b = appendJSONString(b, remote)
	b = append(b, `,"event":`...)
	b = appendJSONString(b, a.event)
	for _, f := range [...]struct {
		key string
		v   int64
	}{
		{`,"uploaded":`, a.req.Uploaded}, {`,"downloaded":`, a.req.Downloaded}, {`,"left":`, a.req.Left},
		{`,"numwant":`, int64(a.req.NumWant)}, {`,"peers":`, int64(peers)},
	} {
		b = append(b, f.key...)
		b = strconv.AppendInt(b, f.v, 10)
	}
	b = append(b, "}\n"...)
	*bp = b
	t.logw.write(b)
}

var logBufs = sync.Pool{New: func() any { return new([]byte) }}

// appendJSONString appends s as encoding/json encodes a string: plain printable ASCII as is,
// anything else (quotes, HTML characters, control bytes, non-ASCII) through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// log writes one JSON line to Options.Log.
func (t *Tracker) log(rec any) {
	if t.opts.Log == nil {
		return
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(rec); err != nil {
		return
	}
	t.logw.write(buf.Bytes())
}
