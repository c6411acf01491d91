package updater

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/delta"
	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/internal/logging"
	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/sign"
	"github.com/pkgsync/pkgsync/store"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// Options describe one update.
type Options struct {
	Source    string   // the package's .torrent, or its .zsync for a plain zsync update (told by content); path, http(s) URL or store URL (package store)
	Zsync     string   // where the .zsync is, when the torrent does not say or says wrong
	Olds      []string // old versions to reuse blocks from
	Out       string   // the output path; "" = the package's name in the current folder
	OriginURL string   // the package's URL on the origin (http(s) or store URL); "" = the torrent's url-list, else the .zsync's URL

	HTTP   *http.Client // nil: a default keep-alive client
	Header http.Header  // extra headers on every HTTP request (e.g. Authorization)
	// Store reaches the stores that do not speak plain HTTP (s3://, webhdfs://): their TLS
	// files (--ca-file, --client-cert), which HTTP reaches through the HTTP client above.
	Store    store.Options
	Parallel int // origin requests in flight (default 4)
	// StallTimeout abandons an origin reply that sends no byte for this long (before its
	// header or in its body) and asks again for what is missing: without it a stalled
	// connection holds the update forever. 0: httprange.DefaultStallTimeout (30 s); < 0: none.
	StallTimeout time.Duration

	Swarm    bool             // fetch from BitTorrent peers first; a .zsync SOURCE updates without them
	BT       bt.Config        // swarm settings
	Peers    []netip.AddrPort // peers to contact besides the trackers'
	SeedTime time.Duration    // keep seeding this long after completing
	// InfoWait bounds the wait for peers to send the info dictionary of a package whose
	// .torrent came as a stub (see stub.go) before the .torrent is fetched; 0:
	// bt.DefaultInfoWait.
	InfoWait time.Duration
	// WholeSHA1 computes the whole file's SHA-1 for Result.SHA1 where it verifies nothing: a
	// swarm update without a .zsync checks every piece against the torrent, and the extra pass
	// of SHA-1 over the file would cost about as much CPU as that check. Without it such an
	// update leaves Result.SHA1 empty. Updates with a .zsync, and --no-swarm ones, always have it.
	WholeSHA1 bool
	// Notice tells a person what the update waits for (another update's lock, seeding) and how
	// to skip it; nil: Log.
	Notice *slog.Logger

	// Trust, when not empty, makes the update refuse a package without a valid FILE.sig (beside
	// SOURCE) by one of these keys, before it writes anything (see trust.go); empty: unsigned
	// packages are accepted and no .sig is read.
	Trust sign.Keyring
	// LockWait is how long to wait for another update of the same output to release OUT.lock
	// (see lock.go); 0: fail at once with a *LockedError.
	LockWait time.Duration

	Progress io.Writer // a terminal to draw progress on; nil or not a terminal: quiet
	// Log receives a record per step (Info), the swarm's progress once a second; nil: quiet.
	// Give BT.Logger the same logger to have the swarm's records in the same log.
	Log *slog.Logger
}

// Result is the --json summary of an update.
type Result struct {
	Package          string  `json:"package"`
	Output           string  `json:"output"`
	UpToDate         bool    `json:"up_to_date"`
	SHA1             string  `json:"sha1"`
	BytesTotal       int64   `json:"bytes_total"`
	BytesReused      int64   `json:"bytes_reused"`
	BytesFromPeers   int64   `json:"bytes_from_peers"`
	BytesFromOrigin  int64   `json:"bytes_from_origin"`
	RequestsToOrigin int64   `json:"requests_to_origin"`
	BytesUploaded    int64   `json:"bytes_uploaded"`
	Seconds          float64 `json:"seconds"`
	ScanSeconds      float64 `json:"scan_seconds"` // the delta scan of the old file(s) alone
	FetchSeconds     float64 `json:"fetch_seconds"`
	// BytesFromPeersFast is the part of BytesFromPeers that came over the fast path between
	// pkgsync nodes (bt's pkgsync_fast) rather than BitTorrent.
	BytesFromPeersFast int64 `json:"bytes_from_peers_fast"`
	// The .zsync, when it came over the swarm (see manifest.Torrent.ZsyncTorrent).
	ZsyncFromPeers  int64 `json:"zsync_bytes_from_peers"`
	ZsyncFromOrigin int64 `json:"zsync_bytes_from_origin"`
	// InfoFrom says where the info dictionary came from when the origin sent the .torrent's
	// stub: "peers", "origin" (the .torrent) or "record" (the record beside OUT); "" when the
	// origin sent the .torrent.
	InfoFrom string        `json:"info_from,omitempty"`
	Peers    []bt.PeerStat `json:"peers"`
}

// Errors a caller may want to tell apart.
var (
	ErrVerify  = errors.New("verification failed")
	ErrNoURL   = errors.New("no origin URL")
	ErrNoSwarm = errors.New("the swarm needs a .torrent")
)

type job struct {
	opt      Options
	log      *slog.Logger      // Options.Log, with the package's name once known (setPaths)
	torrent  *manifest.Torrent // nil for a plain .zsync update
	zsync    *zsyncfile.File   // nil when there is no old data to scan (see load)
	length   int64
	name     string // the package's file name
	out      string
	part     string
	origin   string
	fetcher  originFetcher
	res      Result
	start    time.Time
	dataFile *os.File
	direct   *os.File // OUT.part opened with O_DIRECT for the swarm's writes (bt.Package.Direct)
	// directBytes: of the swarm's bytes, those written with O_DIRECT (logged).
	directBytes int64
	node        *bt.Node
	swarmT      *bt.Torrent
	src         location        // where SOURCE is
	zsyncTmp    *os.File        // the .zsync fetched from the swarm, unlinked, kept open to seed it
	zsyncSwarm  *bt.Torrent     // the .zsync's torrent, when it came over the swarm
	whole       *wholeHasher    // the whole-file SHA-1 of OUT.part, following the swarm
	sig         *sign.Statement // what the trusted .sig vouches for; nil without Options.Trust
	sigLoc      location        // where the .sig is

	// stub is the .torrent's stub when the origin sent one (stub.go), until resolveStub.
	stub *manifest.Stub
	// The record beside OUT of an earlier run (current.go), the .torrent's ETag and bytes.
	record       *currentRecord
	torrentETag  string
	torrentBytes []byte
}

// Run performs the update described by opt.
func Run(ctx context.Context, opt Options) (*Result, error) {
	j := &job{opt: opt, start: time.Now(), log: logging.OrDiscard(opt.Log)}
	if j.opt.HTTP == nil {
		c, err := httprange.NewClient("", 0)
		if err != nil {
			return nil, err
		}
		j.opt.HTTP = c
	}
	if stall := j.opt.StallTimeout; stall >= 0 {
		if stall == 0 {
			stall = httprange.DefaultStallTimeout
		}
		j.opt.HTTP = httprange.WithStallTimeout(j.opt.HTTP, stall)
	}
	if err := j.load(ctx); err != nil {
		return nil, err
	}
	unlock, err := lockOutput(ctx, j.out, opt.LockWait, j.notice())
	if err != nil {
		return nil, err
	}
	defer unlock()
	var res *Result
	if err = j.resolveStub(ctx); err == nil {
		res, err = j.run(ctx)
	}
	if j.node != nil {
		j.node.Close()
	}
	if j.direct != nil {
		j.direct.Close()
	}
	if j.dataFile != nil {
		j.dataFile.Close()
	}
	if j.zsyncTmp != nil {
		j.zsyncTmp.Close()
	}
	return res, err
}

// load reads SOURCE: a .torrent (the .zsync waits for loadZsync, after the up-to-date check),
// or a .zsync for a plain zsync update. It works out the paths and the origin URL.
func (j *job) load(ctx context.Context) error {
	src := parseLocation(j.opt.Source)
	j.src = src
	if len(j.opt.Trust) > 0 {
		if err := j.loadSignature(ctx); err != nil {
			return err
		}
	}
	var data []byte
	var err error
	if src.url != nil && strings.HasSuffix(src.url.Path, ".torrent") {
		data, err = j.readTorrentIfChanged(ctx, src)
	} else {
		data, err = src.read(ctx, j.opt.HTTP, j.opt.Header, j.opt.Store, maxZsyncBytes)
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if manifest.IsStub(data) {
		return j.useStub(src, data)
	}
	if isZsync(data) {
		// A .zsync SOURCE is a plain zsync update: there is no torrent to swarm on.
		if j.opt.Swarm {
			j.log.Info("update: SOURCE is a .zsync: a plain zsync update, without the swarm", "source", src.String())
			j.opt.Swarm = false
		}
		if err := j.checkZsync(src, data); err != nil {
			return err
		}
		z, err := zsyncfile.Read(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		j.setPaths(z.Filename, src)
		j.useZsync(ctx, z, src)
		return nil
	}
	t, err := manifest.ParseTorrent(data)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if err := j.checkInfoHash(src, t.InfoHash); err != nil {
		return err
	}
	j.torrent = t
	j.torrentBytes = data
	j.length = t.Info.Length
	j.setPaths(t.Info.Name, src)
	j.setOrigin(ctx, src, nil)
	return nil
}

// loadZsync loads the .zsync of a torrent SOURCE: from the swarm when the torrent describes
// the .zsync as a torrent of its own (so that N nodes updating together do not each fetch it
// from the origin), else from where the torrent says. A node with no old data at all (no
// --old, no OUT, no OUT.part) does not load it: it has nothing to scan, the torrent's piece
// hashes verify every byte, and the control file (up to tens of MB for a large package) would
// only load the origin that every node is fetching from.
func (j *job) loadZsync(ctx context.Context) error {
	if j.torrent == nil || j.zsync != nil {
		return nil
	}
	if j.opt.Zsync == "" && !j.hasOldData() {
		j.log.Info("update: no old data: the torrent's piece hashes alone verify the download, no .zsync needed")
		return nil
	}
	t, src := j.torrent, j.src
	var zloc location
	switch {
	case j.opt.Zsync != "":
		zloc = parseLocation(j.opt.Zsync)
	case t.ZsyncURL != "":
		zloc = src.resolve(t.ZsyncURL)
	default:
		zloc = parseLocation(siblingZsync(src.raw))
	}
	var data []byte
	if j.opt.Swarm && zloc.url != nil && j.opt.Zsync == "" {
		if err := j.zsyncInfo(ctx); err != nil {
			j.log.Warn("update: no info dictionary of the .zsync's torrent; fetching the .zsync over HTTP", "source", src.String(), "err", err)
		}
		zt, err := t.ZsyncTorrent(zloc.raw)
		if err != nil {
			j.log.Warn("update: the torrent's description of the .zsync is unusable; fetching the .zsync over HTTP",
				"source", src.String(), "err", err)
		}
		if zt != nil {
			if data, err = j.zsyncFromSwarm(ctx, zt); err != nil {
				return fmt.Errorf("fetching the .zsync of %s: %w", src, err)
			}
		}
	}
	if data == nil {
		var err error
		if data, err = zloc.read(ctx, j.opt.HTTP, j.opt.Header, j.opt.Store, maxZsyncBytes); err != nil {
			return fmt.Errorf("reading the .zsync of %s: %w", src, err)
		}
	}
	if err := j.checkZsync(zloc, data); err != nil {
		return err
	}
	z, err := zsyncfile.Read(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", zloc, err)
	}
	if err := manifest.Check(t, z); err != nil {
		return fmt.Errorf("%s and %s: %w", src, zloc, err)
	}
	j.useZsync(ctx, z, zloc)
	return nil
}

// useZsync adopts z, loaded from zloc, as the target's control file.
func (j *job) useZsync(ctx context.Context, z *zsyncfile.File, zloc location) {
	j.log.Info("update: loaded the .zsync", "zsync", zloc.String(), "blocks", len(z.Blocks), "block_size", z.Blocksize,
		"after", time.Since(j.start).Round(time.Millisecond))
	j.zsync = z
	j.length = z.Length
	j.res.BytesTotal = z.Length
	j.res.SHA1 = fmt.Sprintf("%x", z.SHA1)
	if j.origin == "" {
		j.setOrigin(ctx, zloc, z)
	}
}

// setPaths works out the output and part file names from the package's name.
func (j *job) setPaths(name string, src location) {
	if name == "" {
		name = filepath.Base(src.raw)
	}
	j.name = filepath.Base(filepath.Clean("/" + name)) // never a path out of the current folder
	j.out = j.opt.Out
	if j.out == "" {
		j.out = j.name
	}
	if st, err := os.Stat(j.out); err == nil && st.IsDir() {
		j.out = filepath.Join(j.out, j.name)
	}
	j.part = j.out + ".part"
	// Every later record names the package, as the swarm's records do.
	j.log = j.log.With("torrent", j.name)
	j.res = Result{Package: j.name, Output: j.out, BytesTotal: j.length}
}

// hasOldData reports whether there is anything to rebuild from: an old version, the current
// output, or a part file left by an interrupted run.
func (j *job) hasOldData() bool {
	if len(j.opt.Olds) > 0 {
		return true
	}
	if _, err := os.Stat(j.out); err == nil {
		return true
	}
	st, err := os.Stat(j.part)
	return err == nil && st.Size() > 0
}

// setOrigin picks the package's URL on the origin: --url, the torrent's url-list resolved against
// SOURCE, or the .zsync's URL resolved against where the .zsync came from (z may be nil). A
// reference the rules of location.resolve refuse gives an origin that fails with the reason.
func (j *job) setOrigin(ctx context.Context, zloc location, z *zsyncfile.File) {
	var loc location
	switch {
	case j.opt.OriginURL != "":
		loc = parseLocation(j.opt.OriginURL)
	case j.torrent != nil && len(j.torrent.MetaInfo.UrlList) > 0:
		loc = j.src.resolve(j.torrent.MetaInfo.UrlList[0])
		if loc.url == nil && loc.bad == nil {
			loc = location{raw: j.torrent.MetaInfo.UrlList[0]} // httprange says what is wrong with it
		}
	case z != nil && len(z.URLs) > 0:
		if loc = zloc.resolve(z.URLs[0]); loc.url == nil && loc.bad == nil {
			return
		}
	default:
		return
	}
	j.origin = loc.raw
	if loc.bad != nil {
		j.fetcher = failedFetcher{loc.bad}
		return
	}
	j.fetcher = j.newFetcher(ctx, loc.raw, j.length)
}

// pieceSize is the torrent's piece length, or 0 without a torrent: only the whole-file SHA-1
// counts then.
func (j *job) pieceSize() int64 {
	if j.torrent != nil {
		return j.torrent.Info.PieceLength
	}
	return 0
}

// check hashes path (which must be length bytes long) and reports which torrent pieces are bad
// and whether the whole file matches the .zsync's SHA-1 (true when no .zsync was loaded: the
// pieces then say it all). With piecesKnown, every piece was verified already (the swarm
// hashes each piece as it completes) and only the whole-file SHA-1 is computed: half the work
// of a full check on two cores, which a swarm of busy nodes feels.
func (j *job) check(ctx context.Context, f *os.File, label string, piecesKnown bool) (bad []int, wholeOK bool, err error) {
	length := j.length
	bar := progress.New(j.opt.Progress, "verify", length)
	defer bar.Done()
	ps := j.pieceSize()
	if piecesKnown {
		ps = 0
	}
	h, err := manifest.Hash(ctx, io.NewSectionReader(f, 0, length), manifest.HashOptions{Name: label, Length: length, PieceSize: ps, Whole: true, OnProgress: bar.Set})
	if err != nil {
		return nil, false, err
	}
	if piecesKnown {
		return nil, j.wholeMatches(h.Whole), nil
	}
	return j.compare(h)
}

// wholeMatches reports whether sum, the whole file's SHA-1, is the .zsync's; without a .zsync
// the pieces said it all, and sum is what the result reports.
func (j *job) wholeMatches(sum [sha1.Size]byte) bool {
	if j.zsync == nil {
		j.res.SHA1 = fmt.Sprintf("%x", sum)
		return true
	}
	return sum == j.zsync.SHA1
}

// reportWhole fills in the result's SHA-1 once a swarm update without a .zsync has put the
// package (part, now renamed) in place: the hasher that followed the swarm hashes the pieces it
// has left, or, if it lost track (a piece lost its completion while it ran), check hashes the
// file again.
func (j *job) reportWhole(ctx context.Context, part *os.File) error {
	start := time.Now()
	sum, followed, err := j.whole.finish(ctx)
	if err != nil {
		return err
	}
	if followed {
		j.wholeMatches(sum) // without a .zsync: records sum as the result's
	} else if _, _, err := j.check(ctx, part, j.out, true); err != nil {
		return err
	}
	j.log.Info("update: whole-file SHA-1", "sha1", j.res.SHA1, "took", time.Since(start).Round(time.Millisecond),
		"pieces_hashed_in_swarm", j.whole.during, "pieces", j.torrent.NumPieces())
	return nil
}

// scan finds the .zsync's blocks in srcs (see delta.Options.Speculate for speculate) and
// records what it found in the result.
func (j *job) scan(ctx context.Context, srcs []delta.Source, speculate bool) (*delta.Plan, error) {
	start := time.Now()
	var scanned int64
	for _, s := range srcs {
		scanned += s.Size
	}
	bar := progress.New(j.opt.Progress, "scan", scanned)
	var done int64
	var mu sync.Mutex
	plan, err := delta.Scan(ctx, j.zsync, srcs, delta.Options{Speculate: speculate, OnProgress: func(n int64) {
		mu.Lock()
		done += n
		bar.Set(done)
		mu.Unlock()
	}})
	bar.Done()
	if err != nil {
		return nil, err
	}
	j.res.ScanSeconds += time.Since(start).Seconds()
	j.res.BytesReused = plan.ReusedBytes()
	j.log.Info("update: scanned the old data", "bytes_found", plan.ReusedBytes(), "bytes", j.length, "sources", len(srcs),
		"took", time.Since(start).Round(time.Millisecond))
	return plan, nil
}

func (j *job) run(ctx context.Context) (*Result, error) {
	if j.upToDate(ctx) {
		return &j.res, nil
	}
	if err := j.loadZsync(ctx); err != nil {
		return nil, err
	}
	srcs := &sources{seen: map[string]bool{}}
	defer srcs.close()
	if err := j.addOldVersions(srcs); err != nil {
		return nil, err
	}
	part, err := j.openPart(srcs)
	if err != nil {
		return nil, err
	}
	plan := delta.Empty(j.length)
	if j.zsync != nil {
		// Speculating (a block that continues a run of matches is taken on its weak sum) is
		// safe because nothing is renamed into place unverified; a failed whole-file SHA-1
		// scans again without it (buildDirect).
		if plan, err = j.scan(ctx, srcs.list, true); err != nil {
			return nil, err
		}
	}
	var b built
	if j.opt.Swarm {
		b, err = j.buildSwarm(ctx, part, plan, srcs.list)
	} else {
		b, err = j.buildDirect(ctx, part, plan, srcs.list)
	}
	if err != nil {
		return nil, err
	}
	if err := j.refetchBad(ctx, part, &b); err != nil {
		return nil, err
	}
	if err := j.install(part); err != nil {
		return nil, err
	}
	if b.reportWhole {
		if err := j.reportWhole(ctx, part); err != nil {
			return nil, err
		}
	}
	if j.opt.SeedTime <= 0 {
		j.handOver(ctx)
	}
	if j.swarmT != nil && j.opt.SeedTime > 0 {
		j.seed(ctx)
	}
	return &j.res, nil
}

// upToDate reports whether OUT already holds the new version (cron calls update often), and
// fills the result if so: known from the record of an earlier run (current.go) without reading
// OUT, else by verifying it.
func (j *job) upToDate(ctx context.Context) bool {
	f, err := os.Open(j.out)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != j.length {
		return false
	}
	known := j.torrent != nil && j.knownCurrent(st, j.torrent)
	if !known {
		bad, ok, err := j.check(ctx, f, j.out, false)
		if err != nil || !ok || len(bad) > 0 {
			return false
		}
	}
	if known {
		j.log.Info("update: up to date (verified by an earlier run, unchanged since)", "output", j.out)
	} else {
		j.log.Info("update: up to date", "output", j.out)
		j.remember()
	}
	j.res.UpToDate = true
	j.res.BytesReused = j.length
	j.res.Seconds = time.Since(j.start).Seconds()
	return true
}

// sources are the files the delta scan reads, each once however many names lead to it.
type sources struct {
	list []delta.Source
	seen map[string]bool // by device and inode (fileKey)
}

// add opens path as a source; a file already added under another name is skipped.
func (s *sources) add(path string, inPlace bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("old version: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("old version %s: not a regular file", path)
	}
	key := fileKey(st)
	if s.seen[key] {
		f.Close()
		return nil
	}
	s.seen[key] = true
	s.list = append(s.list, delta.Source{Name: path, R: f, Size: st.Size(), InPlace: inPlace})
	return nil
}

// fileKey names the file st describes by device and inode, so that two paths to one file are
// told apart from two files.
func fileKey(st os.FileInfo) string {
	if fi, ok := st.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", fi.Dev, fi.Ino)
	}
	return fmt.Sprint(st.Sys())
}

func (s *sources) close() {
	for _, src := range s.list {
		if c, ok := src.R.(io.Closer); ok {
			c.Close()
		}
	}
}

// addOldVersions adds the old versions given and the current OUT, often the previous version
// itself.
func (j *job) addOldVersions(srcs *sources) error {
	for _, o := range j.opt.Olds {
		if err := srcs.add(o, false); err != nil {
			return err
		}
	}
	if _, err := os.Stat(j.out); err == nil {
		if err := srcs.add(j.out, false); err != nil {
			j.log.Info("update: not reusing the output", "output", j.out, "err", err)
		}
	}
	return nil
}

// openPart opens OUT.part at its full length with the space reserved. An OUT.part left by an
// interrupted run becomes a source, its blocks checked where they stand (read in place, no copy).
func (j *job) openPart(srcs *sources) (*os.File, error) {
	part, err := os.OpenFile(j.part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot write the output: %w", err)
	}
	j.dataFile = part
	pst, err := part.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", j.part, err)
	}
	if pst.Size() > 0 {
		if err := srcs.add(j.part, true); err != nil {
			return nil, err
		}
	}
	if err := part.Truncate(j.length); err != nil {
		return nil, fmt.Errorf("%s: %w", j.part, err)
	}
	if err := reserve(part, j.length); err != nil {
		// Leave the part file as it was: what an earlier run left stays for the next one,
		// and a part file this run made holds nothing worth keeping.
		if pst.Size() == 0 {
			os.Remove(j.part)
		} else {
			part.Truncate(pst.Size())
		}
		return nil, fmt.Errorf("%s: reserving %s for the new version: %w%s", j.part, progress.Bytes(j.length), err, freeSpace(j.part))
	}
	return part, nil
}

// built is what building OUT.part found: pieces that failed their SHA-1, whether the whole
// file matched, and whether the whole-file SHA-1 is still to be computed for the result only.
type built struct {
	bad         []int
	ok          bool
	reportWhole bool
}

// buildSwarm builds OUT.part from the old versions and the swarm (peers first, the origin last)
// and verifies it.
func (j *job) buildSwarm(ctx context.Context, part *os.File, plan *delta.Plan, srcs []delta.Source) (built, error) {
	var b built
	if j.torrent == nil {
		return b, ErrNoSwarm
	}
	fetchStart := time.Now()
	// Peers may ask for the reused pieces at once: they must be in place, and verified,
	// before joining.
	candidate, pieceOK, err := j.prepareSwarm(ctx, part, plan, srcs)
	if err != nil {
		return b, err
	}
	j.log.Info("update: copied and verified the reused blocks", "took", time.Since(fetchStart).Round(time.Millisecond))
	// The swarm takes seconds to hours: writing its pieces out as they come leaves the fsync
	// before the rename only the last stretch to wait for.
	wb := newWriteback(part)
	wb.start()
	err = j.swarm(ctx, part, plan, candidate, pieceOK, wb.wrote)
	if werr := wb.close(); werr != nil && err == nil {
		err = fmt.Errorf("%s: %w", j.part, werr)
	}
	if err != nil {
		return b, err
	}
	j.res.FetchSeconds = time.Since(fetchStart).Seconds()
	j.log.Info("update: fetched", "bytes_from_peers", j.res.BytesFromPeers, "bytes_from_peers_fast", j.res.BytesFromPeersFast,
		"bytes_written_direct", j.directBytes, "bytes_from_origin", j.res.BytesFromOrigin,
		"took", time.Since(fetchStart).Round(time.Millisecond))
	verifyStart := time.Now()
	// Every piece was verified as it completed; the whole-file SHA-1 followed the swarm and has
	// the last pieces left to hash. Without a .zsync it verifies nothing (the pieces said it
	// all) and is only reported, when asked (Options.WholeSHA1): it is finished after the
	// rename, so the package is in place that much sooner.
	if j.zsync == nil {
		b.ok, b.reportWhole = true, j.whole != nil
		return b, nil
	}
	sum, followed, err := j.whole.finish(ctx)
	if err != nil {
		return b, err
	}
	if followed {
		b.ok = j.wholeMatches(sum)
		j.log.Info("update: verified", "took", time.Since(verifyStart).Round(time.Millisecond),
			"pieces_hashed_in_swarm", j.whole.during, "pieces", j.torrent.NumPieces())
		return b, nil
	}
	if b.bad, b.ok, err = j.check(ctx, part, j.part, true); err != nil {
		return b, err
	}
	j.log.Info("update: verified", "took", time.Since(verifyStart).Round(time.Millisecond))
	return b, nil
}

// buildDirect builds OUT.part from the old versions and the origin alone: one ordered pass
// copies the reused blocks, waits for the fetched ranges and hashes everything as it goes.
func (j *job) buildDirect(ctx context.Context, part *os.File, plan *delta.Plan, srcs []delta.Source) (built, error) {
	var (
		b   built
		err error
	)
	fetchStart := time.Now()
	if b.bad, b.ok, err = j.assemble(ctx, part, plan, srcs); err != nil {
		return b, err
	}
	if !b.ok && j.torrent == nil && plan.Speculated > 0 {
		// Without a torrent no piece hash says where the file is wrong: one of the blocks
		// taken on its weak sum may be (or the .zsync does not describe the file). Confirming
		// every block by its strong sum settles it.
		j.log.Warn("update: the whole-file SHA-1 does not match after blocks were taken on their weak sum; scanning again, every block confirmed",
			"blocks", plan.Speculated)
		// What the first pass fetched is in OUT.part at its place: the strict scan takes it
		// from there (in place), so that only the blocks taken wrongly are fetched.
		strict := srcs
		if !slices.ContainsFunc(srcs, func(s delta.Source) bool { return s.InPlace }) {
			strict = append(slices.Clip(srcs), delta.Source{Name: j.part, R: part, Size: j.length, InPlace: true})
		}
		if plan, err = j.scan(ctx, strict, false); err != nil {
			return b, err
		}
		if b.bad, b.ok, err = j.assemble(ctx, part, plan, strict); err != nil {
			return b, err
		}
	}
	j.res.FetchSeconds = time.Since(fetchStart).Seconds()
	j.log.Info("update: built and verified", "took", time.Since(fetchStart).Round(time.Millisecond),
		"bytes_from_origin", j.res.BytesFromOrigin, "requests_to_origin", j.res.RequestsToOrigin)
	return b, nil
}

// refetchBad fetches whole from the origin, once, the pieces that failed their SHA-1 although
// they reused blocks (a strong-sum collision, or a .zsync that does not match the torrent), and
// returns an error naming the cause when the result is still not the package.
func (j *job) refetchBad(ctx context.Context, part *os.File, b *built) error {
	if len(b.bad) > 0 && j.fetcher != nil {
		j.log.Warn("update: piece(s) failed their SHA-1; fetching them whole from the origin", "pieces", len(b.bad))
		var rs []httprange.Range
		for _, i := range b.bad {
			off, n := j.torrent.PieceRange(i)
			rs = append(rs, httprange.Range{Off: off, Len: n})
		}
		if err := j.fetch(ctx, part, rs, nil); err != nil {
			return err
		}
		var err error
		if b.bad, b.ok, err = j.check(ctx, part, j.part, false); err != nil {
			return err
		}
		if len(b.bad) > 0 {
			// Bytes the origin sent are wrong, not the .zsync: say so.
			return fmt.Errorf("%s: %w: %d piece(s) fetched whole from the origin %s still do not match the torrent (first: piece %d): the origin serves other bytes than the torrent describes", j.part, ErrVerify, len(b.bad), j.origin, b.bad[0])
		}
	}
	if len(b.bad) > 0 {
		return fmt.Errorf("%s: %w: %d piece(s) do not match the torrent (first: piece %d); is the .zsync from the same package?", j.part, ErrVerify, len(b.bad), b.bad[0])
	}
	if !b.ok {
		return fmt.Errorf("%s: %w: the SHA-1 of the result is not the .zsync's %s (does the .zsync belong to this torrent?)", j.part, ErrVerify, j.res.SHA1)
	}
	return nil
}

// install puts the verified OUT.part in place: synced, renamed over OUT, the rename synced in
// its folder, and the record of the run written beside it.
func (j *job) install(part *os.File) error {
	syncStart := time.Now()
	if err := part.Sync(); err != nil {
		return fmt.Errorf("%s: sync: %w", j.part, err)
	}
	if err := os.Rename(j.part, j.out); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", j.part, j.out, err)
	}
	if d, err := os.Open(filepath.Dir(j.out)); err == nil {
		d.Sync()
		d.Close()
	}
	j.res.Seconds = time.Since(j.start).Seconds()
	j.log.Info("update: synced and renamed into place", "output", j.out, "took", time.Since(syncStart).Round(time.Millisecond),
		"total", time.Since(j.start).Round(time.Millisecond))
	j.remember()
	return nil
}

// seed keeps the node in its swarms for SeedTime after the update, so that the nodes still
// updating fetch from it rather than from the origin, and says so on Notice: without a word,
// minutes of seeding look like a hang. A node that no other node can find (no tracker answered
// it, no peer was given, none ever connected) has nobody to seed to and leaves at once.
func (j *job) seed(ctx context.Context) {
	notice := j.notice()
	findable := len(j.opt.Peers) > 0
	for _, tt := range []*bt.Torrent{j.swarmT, j.zsyncSwarm} {
		if tt != nil && (tt.TrackerAnswered() || tt.NumConns() > 0 || len(tt.Stats().Peers) > 0) {
			findable = true
		}
	}
	if !findable {
		notice.Info("update: in place; not seeding it: no tracker answered, no --peer was given and no peer connected, so no other node can find this one",
			"output", j.out)
		return
	}
	notice.Info("update: in place; seeding it to peers (--seed-time 0 skips this; Ctrl-C stops it, the update is done)",
		"output", j.out, "seed_time", j.opt.SeedTime, "until", time.Now().Add(j.opt.SeedTime).Round(time.Second))
	t := time.NewTimer(j.opt.SeedTime)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	j.collectSwarmStats()
}

// notice returns the logger of what the update waits for: Options.Notice, else Options.Log.
func (j *job) notice() *slog.Logger {
	if j.opt.Notice == nil {
		return j.log
	}
	return j.opt.Notice.With("torrent", j.name)
}

// handOverMax bounds how long a node that leaves at once stays for its peers (handOver).
const handOverMax = 2 * time.Second

// handOver keeps a node that leaves at once (--seed-time 0) in its swarms, the package's and the
// .zsync's, until every connected peer holds the pieces it fetched from the origin, for at most handOverMax
// each: otherwise a node that finishes first takes the only copy of those pieces away, and its
// peers fetch them from the origin again.
func (j *job) handOver(ctx context.Context) {
	for _, tt := range []*bt.Torrent{j.swarmT, j.zsyncSwarm} {
		if tt == nil {
			continue
		}
		start := time.Now()
		if n, left := tt.HandOver(ctx, handOverMax); n > 0 {
			j.log.Info("update: stayed until peers held the pieces this node got from the origin", "swarm", tt.Name(),
				"took", time.Since(start).Round(time.Millisecond), "pieces", n, "pieces_peers_lack", left)
		}
	}
}

// fetch gets ranges from the origin into part; onWrite, when not nil, hears of every range written.
func (j *job) fetch(ctx context.Context, part *os.File, rs []httprange.Range, onWrite func(off, n int64)) error {
	if j.fetcher == nil {
		return fmt.Errorf("%w: %d bytes are missing and neither the torrent nor the .zsync names an origin URL for %s (give --url)", ErrNoURL, sumRanges(rs), j.name)
	}
	before := j.fetcher.Stats()
	var w io.WriterAt = part
	if onWrite != nil {
		w = notifyWriter{File: part, fn: onWrite}
	}
	err := j.fetcher.Fetch(ctx, rs, w)
	after := j.fetcher.Stats()
	j.res.BytesFromOrigin += after.Bytes - before.Bytes
	j.res.RequestsToOrigin += after.Requests - before.Requests
	if errors.Is(err, httprange.ErrChanged) || errors.Is(err, store.ErrChanged) {
		// Another version was published while this one was fetched: its bytes are never
		// mixed with the ones already written, and nothing is renamed into place.
		return fmt.Errorf("%s changed on the origin during the update (a new version published?); nothing was put in place, run the update again: %w", j.name, err)
	}
	if err != nil {
		return fmt.Errorf("fetching from the origin: %w", err)
	}
	return nil
}

// freeSpace says how much room the file system that holds path has left, for a message about a
// full disk; "" when it cannot tell.
func freeSpace(path string) string {
	dir := filepath.Dir(path)
	free, ok := freeBytes(dir)
	if !ok {
		return ""
	}
	return fmt.Sprintf(" (the file system of %s has %s free)", dir, progress.Bytes(free))
}

func sumRanges(rs []httprange.Range) (n int64) {
	for _, r := range rs {
		n += r.Len
	}
	return n
}
