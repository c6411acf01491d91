package updater

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/manifest"
)

// Metadata that does not grow with the number of nodes. A swarm update asks the origin for the
// .torrent's stub (manifest.StubType in Accept): `pkgsync serve` answers with a few hundred
// bytes (the keys outside the info dictionaries, the info hashes, the name and length), and
// the node takes the info dictionary from its peers by BEP 9, verified by the info hash
// (bt.Node.FetchInfo); the first node of the swarm, or one whose peers send nothing in time,
// fetches the .torrent itself. A web server that does not know the stub (nginx) sends the
// .torrent, and the update goes on as with any .torrent. The stub has an ETag of its own, so a
// cron run on a current package still costs one 304, and a stub whose info hash is the one
// recorded beside OUT needs no info from anybody.

// torrentHeader returns the headers of the request for the .torrent: the stub is asked for
// when the update uses the swarm (only peers can send the info dictionary) from a web server.
func (j *job) torrentHeader(src location) http.Header {
	if !j.opt.Swarm || src.store {
		return j.opt.Header
	}
	h := j.opt.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Accept", manifest.StubType+", application/x-bittorrent;q=0.5")
	return h
}

// useStub adopts the stub data read from src: the paths and the signature check need no more,
// the info dictionary waits for the lock (resolveStub).
func (j *job) useStub(src location, data []byte) error {
	st, err := manifest.ParseStub(data)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if err := j.checkInfoHash(src, st.InfoHash); err != nil {
		return err
	}
	j.stub = st
	j.length = st.Length
	j.setPaths(st.Name, src)
	j.log.Info("update: got the .torrent's stub", "source", src.String(), "info_hash", st.InfoHash.HexString(), "bytes", len(data))
	return nil
}

// resolveStub turns the stub into the .torrent: with the info dictionary of the record beside
// OUT when it is the same, else from peers, else from the origin's .torrent.
func (j *job) resolveStub(ctx context.Context) error {
	st := j.stub
	if st == nil || j.torrent != nil {
		return nil
	}
	var data []byte
	if t := j.recordedTorrent(st.InfoHash); t != nil {
		// A .torrent made again from the same package keeps its info but may describe
		// another .zsync (its header has a date).
		zinfo := t.ZsyncInfo
		if t.ZsyncInfoHash != st.ZsyncInfoHash {
			zinfo = nil
		}
		var err error
		if data, err = st.Torrent(t.MetaInfo.InfoBytes, zinfo); err != nil {
			return fmt.Errorf("%s: the recorded .torrent: %w", j.src, err)
		}
		j.res.InfoFrom = "record"
	} else {
		var err error
		if data, err = j.infoFromSwarm(ctx, st); err != nil {
			return err
		}
	}
	t, err := manifest.ParseTorrent(data)
	if err != nil {
		return fmt.Errorf("%s: %w", j.src, err)
	}
	if err := j.checkInfoHash(j.src, t.InfoHash); err != nil {
		return err
	}
	j.torrent, j.torrentBytes = t, data
	j.length = t.Info.Length
	j.res.BytesTotal = j.length
	j.setOrigin(ctx, j.src, nil)
	return nil
}

// recordedTorrent returns the .torrent recorded beside OUT when its info hash is ih.
func (j *job) recordedTorrent(ih metainfo.Hash) *manifest.Torrent {
	r := j.record
	if r == nil || r.InfoHash != hex.EncodeToString(ih[:]) {
		return nil
	}
	t, err := manifest.ParseTorrent(r.Torrent)
	if err != nil || t.InfoHash != ih {
		return nil
	}
	return t
}

// infoRequest is the request for one info dictionary of the stub's torrents.
func (j *job) infoRequest(ih metainfo.Hash, name string, length int64) bt.InfoRequest {
	var trackers []string
	for _, tier := range j.stub.MetaInfo.UpvertedAnnounceList() {
		for _, u := range tier {
			if u != "" && !slices.Contains(trackers, u) {
				trackers = append(trackers, u)
			}
		}
	}
	return bt.InfoRequest{InfoHash: ih, Name: name, Length: length, Trackers: trackers, Peers: j.opt.Peers, Wait: j.opt.InfoWait}
}

// infoFromSwarm gets the package's info dictionary from peers, or the .torrent from the origin,
// and returns the .torrent. A node that fetched the .torrent offers the .zsync's info, which
// came with it, to its peers at once.
func (j *job) infoFromSwarm(ctx context.Context, st *manifest.Stub) ([]byte, error) {
	node, err := j.ensureNode()
	if err != nil {
		return nil, err
	}
	var full *manifest.Torrent
	var fullBytes []byte
	req := j.infoRequest(st.InfoHash, st.Name, st.Length)
	req.Fallback = func(ctx context.Context) ([]byte, error) {
		data, t, err := j.torrentFromOrigin(ctx, st.InfoHash)
		if err != nil {
			return nil, err
		}
		full, fullBytes = t, data
		return t.MetaInfo.InfoBytes, nil
	}
	start := time.Now()
	res, err := node.FetchInfo(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("the info dictionary of %s: %w", j.src, err)
	}
	took := time.Since(start).Round(time.Millisecond)
	if full == nil {
		j.res.InfoFrom = "peers"
		j.log.Info("update: got the info dictionary from peers", "bytes", len(res.Info), "took", took)
		return st.Torrent(res.Info, nil)
	}
	j.res.InfoFrom = "origin"
	j.log.Info("update: fetched the .torrent from the origin", "why", res.Why, "bytes", len(fullBytes), "took", took)
	if len(full.ZsyncInfo) > 0 && full.ZsyncInfoHash == st.ZsyncInfoHash {
		zreq := j.infoRequest(full.ZsyncInfoHash, st.Name+".zsync", 0)
		if err := node.ServeInfo(zreq, full.ZsyncInfo); err != nil {
			j.log.Warn("update: cannot offer the .zsync's info dictionary to peers", "err", err)
		}
	}
	return fullBytes, nil
}

// torrentFromOrigin fetches the .torrent itself (no stub asked for) and checks that it is the
// stub's version.
func (j *job) torrentFromOrigin(ctx context.Context, ih metainfo.Hash) ([]byte, *manifest.Torrent, error) {
	data, err := j.src.read(ctx, j.opt.HTTP, j.opt.Header, j.opt.Store, maxTorrentBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", j.src, err)
	}
	t, err := manifest.ParseTorrent(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", j.src, err)
	}
	if t.InfoHash != ih {
		return nil, nil, fmt.Errorf("%s: info hash %s, its stub said %s: a new version was published meanwhile; run the update again",
			j.src, t.InfoHash.HexString(), ih.HexString())
	}
	return data, t, nil
}

// zsyncInfo gets the .zsync's info dictionary, which a .torrent rebuilt from a stub lacks,
// from peers (the first node offers it, see infoFromSwarm), else from the origin's .torrent,
// and puts it in the torrent (and the .torrent recorded beside OUT).
func (j *job) zsyncInfo(ctx context.Context) error {
	t := j.torrent
	if j.stub == nil || len(t.ZsyncInfo) > 0 || t.ZsyncInfoHash == (metainfo.Hash{}) {
		return nil
	}
	node, err := j.ensureNode()
	if err != nil {
		return err
	}
	req := j.infoRequest(t.ZsyncInfoHash, j.name+".zsync", 0)
	req.WaitAlone = true
	req.Fallback = func(ctx context.Context) ([]byte, error) {
		_, full, err := j.torrentFromOrigin(ctx, t.InfoHash)
		if err != nil {
			return nil, err
		}
		return full.ZsyncInfo, nil
	}
	start := time.Now()
	res, err := node.FetchInfo(ctx, req)
	if err != nil {
		return fmt.Errorf("the .zsync's info dictionary of %s: %w", j.src, err)
	}
	j.log.Info("update: got the .zsync's info dictionary", "from_peers", res.FromPeers, "why", res.Why, "took", time.Since(start).Round(time.Millisecond))
	data, err := j.stub.Torrent(t.MetaInfo.InfoBytes, res.Info)
	if err != nil {
		return fmt.Errorf("%s: %w", j.src, err)
	}
	t.ZsyncInfo, j.torrentBytes = res.Info, data
	return nil
}
