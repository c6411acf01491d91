// Package bt is the swarm half of pkgsync: it obtains the pieces of a file that the delta
// plan could not rebuild, from BitTorrent peers first and from the origin last, and serves
// complete pieces to other nodes meanwhile. It is built on github.com/anacrolix/torrent
// v1.59.1; a Node is one anacrolix Client, a Torrent one file in it.
//
// The caller (pkgsync update) has already written what it could into OUT.part and
// verified which pieces are complete. It passes the file, that bitmap and its origin
// fetcher (an OriginFetcher, which fetches runs of pieces by HTTP Range requests or a store's
// ranged reads; or an OriginFunc, one piece per call). Download returns
// once every piece is complete and verified. pkgsync seed is Add with every piece Have and
// the Node kept open.
//
// # What the library does by default, and what this package changes
//
// Storage. Without ClientConfig.DefaultStorage the client opens file storage in DataDir,
// and that storage keeps piece completion in a bolt or sqlite database in the same
// directory. Here every torrent brings a fileStorage (storage.ClientImpl) over
// Package.Data: piece i is at i*PieceLength of one file, reads and writes are ReadAt and
// WriteAt, and completion is an in-memory bitmap seeded from Package.Have that
// MarkComplete and MarkNotComplete update. Completion always reports Ok, so the library
// skips its initial hashing. The client's default storage refuses every torrent, so
// nothing is ever written next to the data.
//
// Pieces without the network. A piece the origin fetched is handed to the library with
// Piece.VerifyDataContext: the library hashes it, calls MarkComplete and sends HAVE to
// every peer. VerifyDataContext returns as soon as the hash is counted, which can be
// before the result is stored (the library unlocks between the two), so Download also
// waits for the piece's Marking state to clear before reading the result.
//
// Web seeds. TorrentSpecFromMetaInfo turns a url-list into web seed peers. The library
// then requests from them at once, alongside peers: spans of up to 64 MiB aligned to the
// torrent, 25 requests per host, lowest pieces first. Every node does it in the same
// order; requests already made to peers only move a span later. Here torrents are added
// with AddTorrentOpts and their info bytes only, DisableWebseeds is set, and the origin
// is reached through the OriginFunc (or OriginFetcher) alone, under the scheduling described below.
//
// Choking. The library has no unchoke slots and no optimistic unchoke rotation. A
// connection's writer unchokes the peer whenever uploading is allowed and chokes it
// otherwise. With ClientConfig.Seed and aggressive upload, every peer is allowed. Without
// them, only peers that have pieces we want are allowed, and
// at most 100 KiB ahead of what they gave us. Here Seed is always on.
// Config.TitForTat sets DisableAggressiveUpload, which brings the reciprocity back while
// the torrent still needs data. The default unchokes every interested peer: in a data
// center every node is ours.
//
// Peer order. Known addresses wait in a queue ordered by trust, then by BEP 40 priority
// (a CRC of both addresses), and are dialed best-first. At most 25 are half-open per
// torrent, and dials are limited to 10 per second. Here the library does not talk to
// trackers (DisableTrackers). This package announces itself: to udp trackers with the
// library's tracker client, to http(s) trackers with the same request made by its own
// (httpannounce.go), since the library drops the "pkgsync" key in which pkgsync's tracker
// names the origin fetchers; the role read there goes to the origin planner
// (originplan.View.Role). It ranks the answers and Package.Peers with topology.Closeness over
// Config.Topology (shared site levels, then the common address prefix), keeping the
// tracker's order among equals. It hands them over one at a time, so the first dials
// follow that ranking. With a topology that places this node and the origin
// (Package.OriginAddrs) in sites, the site rule (sites.go) also keeps the nodes of a site
// without the origin away from other sites, except for one gateway per site, so that each
// piece crosses the link between sites about once. A node of the origin's site is not told
// what the gateways have (their HAVE and bitfield messages are turned into keep-alives before
// the library reads them), so it never takes a piece back across: a gateway's upload is its
// site's only way in. The half-open limits follow MaxConns, and the dial rate is not
// limited. Owning the announce also tells Download how many peers to wait for.
//
// Requesting. Each connection requests pieces by priority, then by availability (rarest
// first), then by a random order per torrent, and may steal requests from a peer that
// delivered its last chunk less recently. The library cannot weight peers. Close peers get
// more of the work only because they are faster: stealing favours the connection that
// delivered last, and a connection's request queue grows with its peak. A piece at
// priority None is not requested at all. Download sets that priority on the pieces it
// gives to the origin, and the storage refuses peer chunks for those pieces
// (errPieceBusy). The library then leaves such a chunk pending rather than written, and
// nobody is blamed if the origin fails.
//
// Bad peers. A piece that fails its hash is fetched again. If one untrusted connection
// supplied all of it, that peer's IP is banned. The library also keeps a hash of every
// block, so when a piece later passes, every IP that sent a differing block is banned
// ("smart ban"). Bans are per IP. That is why Package.Peers are added untrusted, and why
// a Node with a specific ListenAddr dials from that address: peers see the address the
// tracker lists, and a ban hits only the liar. The tests run nodes on distinct 127.0.0.x
// addresses for the same reason. The library keys the first kind of ban by the IPv4-mapped
// form of an IPv4 address and checks accepted connections by the plain form, so the banned peer could
// connect again; every library ban also goes into the Node's own list (the client's
// IPBlocklist, which compares unmapped addresses), as do the bans of the range path (below).
// -v logs each ban once: msg="bt: banned peer" torrent=NAME peer=IP reason=.... A peer that
// only withholds what it claims, or never completes a handshake, proves nothing against
// itself (a slow peer looks the same) and is not banned: StallTimeout and PeerWait bound
// what it costs.
//
// Upload budget. In v1.59.1 each connection may hold 1 MiB (MaxAllocPeerRequestDataPerConn)
// of peer request data read from disk and not yet sent. Reservations are granted in
// arrival order but served in map order. A peer with more than 64 outstanding requests,
// which anacrolix peers reach quickly, can leave the serving goroutine waiting for a
// reservation that only it could free, and uploads to that peer stop for good. The budget
// here covers every request the library queues (1024 of 16 KiB).
//
// Lost wake-up. A connection's writer looks for work, then takes its wake-up channel. A
// chunk read from disk in between goes unsent until the keep-alive timer fires, a minute
// by default; the tests saw a first request wait that long. The keep-alive period here is
// half a second.
//
// Upload that starves the download. The library uploads to every peer as fast as the link
// takes it. A node's requests and TCP acknowledgements leave on the same link, behind that
// data, so a node whose upload link stays full hears back slowly and downloads below its
// link's speed. A node that falls behind its downloading peers that way caps its own upload
// at 0.85 of its average upload rate until it has caught up (upthrottle.go).
//
// Also changed: no uTP, no DHT, PEX or UPnP unless asked, plaintext first
// (RequireEncryption means RC4 only), 128 connections per torrent, duplicate connections
// between two nodes dropped (both ends keep the one dialed by the higher peer ID), and
// the rate limits from Config. The library has no local peer discovery, so Config.LPD is
// refused.
//
// # Where each workaround meets the library
//
// The library code each change above works around, in the v1.59.1 module (go env GOMODCACHE,
// then github.com/anacrolix/torrent@v1.59.1), with the test in upstream_test.go that fails
// when the behaviour it relies on changes. After an upgrade, re-read these first.
//   - Storage: NewClient (client.go) opens storage.NewFile(DataDir) when DefaultStorage is
//     nil, and pieceCompletionForDir (storage/piece-completion.go) puts .torrent.bolt.db or
//     .torrent.db there (anacrolix/torrent#450, #481).
//     TestUpstreamDefaultStorageWritesCompletionDB. The initial hash is skipped for pieces
//     whose Completion is Ok (Torrent.queueInitialPieceCheck, torrent.go).
//   - Pieces without the network: Torrent.VerifyDataContext and Torrent.pieceHashed
//     (torrent.go) unlock the client between counting the hash and storing the result,
//     which PieceState.Marking shows. Not tested here: the window is a race.
//   - Web seeds: TorrentSpecFromMetaInfo (spec.go) copies url-list into Webseeds,
//     Torrent.addWebSeed (torrent.go) honours DisableWebseeds, and Client.updateWebseedRequests
//     and Torrent.getWebseedRequestEnd (webseed-requesting.go) plan the aligned spans.
//     TestUpstreamWebseeds.
//   - Choking: PeerConn.uploadAllowed and PeerConn.upload (peerconn.go).
//     TestUpstreamDefaultConfig pins Seed and DisableAggressiveUpload off by default.
//   - Peer order: Torrent.addPeer and Torrent.openNewConns (torrent.go) over prioritizedPeers
//     (prioritized-peers.go, bep40Priority in bep40.go); Client.dialAndCompleteHandshake
//     (client.go) waits on DialRateLimiter. TestUpstreamDefaultConfig pins
//     HalfOpenConnsPerTorrent (25) and the dial rate (10/s).
//   - Requesting: PeerConn.getDesiredRequestState (requesting.go) and the piece order of
//     request-strategy/. A chunk the storage refuses (errPieceBusy) fails Torrent.writeChunk
//     in Peer.receiveChunk (peer.go) and stays pending; how the library treats write errors
//     changed in v1.53.3 (anacrolix/torrent#889).
//   - Bad peers: Torrent.pieceHashed (torrent.go) calls PeerConn.providedBadData
//     (peerconn.go) for a piece with one untrusted source (anacrolix/torrent#715), and
//     bans the smart-ban cache's failed peers (smartban.go). Client.banPeerIP (client.go)
//     keys the ban by netip.AddrFromSlice(net.ParseIP(host)), the IPv4-mapped form, while
//     Client.badPeerIPPort for accepted connections (Client.rejectAccepted, client.go) and
//     Torrent.dropBannedPeers (torrent.go) look up the plain form.
//     TestUpstreamBanKeyAndChunkSize.
//   - Upload budget: PeerConn.onReadRequest reserves MaxAllocPeerRequestDataPerConn for
//     each of up to localClientReqq (1024, client.go) requests, and PeerConn.servePeerRequest
//     (peerconn.go) waits on the reservation (internal/alloclim/l.go, Limiter.Reserve).
//     TestUpstreamReqq and TestUpstreamDefaultConfig; the 16 KiB chunk (defaultChunkSize,
//     global.go) in TestUpstreamBanKeyAndChunkSize.
//   - Lost wake-up: peerConnMsgWriter.run (peer-conn-msg-writer.go) takes its wake-up
//     channel after filling the buffer; upstream changed the wake-up and re-arms the
//     keep-alive timer after v1.59.1 (anacrolix/torrent#1078, #1071).
//     TestUpstreamDefaultConfig pins the one-minute KeepAliveTimeout.
//   - Duplicate connections: DropDuplicatePeerIds (config.go), checked in
//     Torrent.addPeerConn (torrent.go).
//   - The fast path: Piece.UpdateCompletion (piece.go) has the library read a piece's
//     completion from storage and announce a change, without hashing the piece.
//     TestUpstreamUpdateCompletion. Hiding a peer's
//     pieces from the library relies on PeerConn.mainReadLoop skipping a message turned into a
//     keep-alive by the ReadMessage callback, as the site rule does.
//
// # The origin comes last
//
// Download runs one scheduler goroutine. Origin fetches run beside it, at most
// Config.OriginConcurrency (4) at once for a node alone. Nodes sharing the origin split
// that, one each at least, and as their blocks (below) run out of open pieces the owners
// of the others take over the slots, so that the swarm keeps as many fetches in flight:
// one fetch into a node whose link also carries its peers' traffic gets only a fair share
// of that link. A piece may go to the origin only if all of these hold:
//   - no connected peer has it;
//   - no pkgsync peer has claimed it (see below);
//   - no peer wrote to it in the last second;
//   - the library is not hashing it.
//
// A seeder on the origin's host (a peer at Package.OriginAddrs that has every piece when
// it connects, such as pkgsync seed beside the web server) is taken for the origin: the
// library is not told what it has, so the nodes share its pieces out over the origin path
// instead of each asking it for the rarest pieces (16 nodes made it send 1.5 times the
// package). The origin gate takes it for the seeder it is. When an origin fetch fails,
// the node reconnects to such seeders and hears what they have from then on. A peer that a
// coordinating tracker names an origin fetcher is never taken for such a seeder, whatever
// address it shares with the origin: it is a node that downloads, and its pieces are the ones
// the others need from it.
//
// Once peers have completed no piece for Config.StallTimeout, pieces that peers claim to
// have may go to the origin too, so a choking or trickling seeder cannot stall the
// update. Completed pieces count as progress, bytes do not: a trickle would hold its
// pieces forever. A node that a tracker or an election did not make an origin fetcher waits
// originplan.LongStall times as long before it takes those pieces: the fetchers are at work.
//
// Before its first origin request Download waits for the known peers (Package.Peers and
// the first tracker answers) to connect and say what they have, at most Config.PeerWait.
// Known peers that still have not connected once the others have settled and nothing
// changed for a second are not waited for: two nodes that fail to connect to each other
// (seen in the swarm benchmark, about one run in three) would otherwise both sit out
// PeerWait while the rest count them as members and leave their blocks to them.
// Until the first tracker answer, while known peers are still connecting (their count changed
// within that second), or while a tracker reports a seeder that no connected peer is, the
// wait stretches to 2 s
// (originplan's ReachWait) even where PeerWait is shorter: the .zsync's swarm waits 500 ms,
// and sixteen nodes dialing each other on a loaded machine took longer, each then fetching
// the .zsync the swarm already had.
// With no peer known it starts at once when the torrent has no tracker; with a tracker it
// re-announces every 250 ms until a peer appears or PeerWait ends, because nodes that start
// together announce within moments of each other. This short head start is what lets nodes that
// start together agree on who fetches what.
//
// The rules of this section and the next are decided by package originplan, which holds no
// state of the library and no clock of its own: each scheduler round (download.go) gathers
// what the node observed (members, claims, what connected peers have, open fetches) and asks
// its Planner which pieces to fetch from the origin now, and its Gate whether to start. The
// simulator swarmsim runs the same code.
//
// Nodes coordinate with a small BEP 10 extension, pkgsync_origin (claims.go). A node
// announces whether it downloads with an origin. It claims each piece before asking the
// origin for it, and releases the claim if the fetch fails or Download ends. The nodes
// that use the origin and still need data sort their peer IDs. The pieces the caller did
// not have are cut into one contiguous block per node. Nodes that start from the same old
// version cut the same list. Each node walks its own block forwards, so N nodes starting
// together ask the origin for disjoint pieces and trade the rest. A node that runs out of
// its own work walks the other blocks backwards, meeting their owners in the middle. It
// takes a piece from a working owner only if at least twice OriginConcurrency open pieces
// lie between it and the owner's frontier, and it leaves a number of the block's last open
// pieces that differs for every node taking from that block (thiefSkip), so that the nodes
// that ran out of work together do not all pick the block's last open piece before the
// first claim arrives. An owner that has had no claim outstanding for
// a second is idle (nodes that see the swarm differently may disagree on the blocks): its
// block goes to its heir, the next member after it in the sorted list that is not idle, and
// after three seconds to all. Opening an idle block to all at once made every node fetch
// its pieces together, within one claim's round trip: one piece went out five times.
// Claims are kept per peer ID (crossed connections are dropped after carrying messages),
// count only while the claimer is connected and fetching, and lapse after 30 s unless
// repeated. Clients without the extension are simply not told.
//
// A node to which no tracker gave a Role (a stock tracker such as opentracker, or none) sees
// only the peers it is connected to, and nodes that see different parts of the swarm would
// cut different blocks. So it elects origin fetchers with its pkgsync peers
// (originplan.Election, salted with the info hash): it tells them its list of the 16 heaviest
// candidates it heard of (an 'e' message of the same extension), merges theirs, and once the
// list holds another node it plans by the list as by a tracker's Role. Config.NoElect turns
// this off.
//
// Object stores bill and throttle per request, so with Package.OriginFetcher one fetch
// covers a run of pieces (originrun.go), and the planner counts a run as one fetch in flight.
// A pick in the node's own block is followed by the block's next open pieces, in the order
// of the pieces the caller lacked (pieces that peers have or others claim are skipped: a
// multi-range request asks for the rest). A node alone asks for up to 64 MiB at once
// (httprange's largest request, so it sends the requests --no-swarm sends) and claims a
// window of 2 x OriginConcurrency pieces ahead of its stream; a node that joins later claims
// the rest, and the run is cut before the first piece a peer claims or has. While others
// share the origin work a run is at most that window, claimed whole: nodes whose member lists
// differ cut different blocks, and longer runs made a 16-node fan-out's origin send about 1.5
// times the package (overlapping blocks, and the bytes in flight when a run was cut). A pick
// in another node's block grows with the planner's next picks, while they lie next to it, up
// to the same window. The run streams: each piece is verified and announced as soon as its
// bytes are written, while the rest are still arriving, so peers take it at once.
//
// An origin piece is verified at once and announced by the library. A fetch error or a
// failed verification gives the piece back to the peers, and it is retried after a
// backoff; a run that fails midway gives back the pieces whose bytes had not all arrived.
// When the data failed verification the retry uses Package.Refetch if set (the
// whole piece: a bad peer may have overwritten bytes the delta plan counted on), or asks
// the OriginFetcher for the whole piece. Four failures of one piece end Download with an
// error.
//
// # Partly present pieces
//
// The delta plan works in blocks of a few KiB, pieces are 256 KiB or more, so after a
// small change most missing pieces lack only a few KiB. The library cannot be told that
// part of a piece is present: it requests every chunk of a piece it wants. Package.Missing
// names the missing ranges of each piece not in Have. Add leaves the partly present pieces
// (those with some bytes known present) at priority None, and Download completes them over
// a second BEP 10 extension, pkgsync_range (ranges.go): a request names a piece, an offset
// and up to 16 KiB, and the answer carries the bytes or a refusal. A peer answers only for
// pieces it has complete, reading from storage and under the Node's upload limit.
//
// Each round, a partial piece that some connected pkgsync peer has is taken from the
// library the way an origin piece is (peer writes refused, priority None). Its missing
// ranges are cut into 16 KiB requests and spread over the pkgsync peers that have the
// piece, at most 8 outstanding per connection, the least loaded first. Replies are written
// at their offsets by the scheduler, and once every range is in the piece goes through the
// origin's verify path, so the library announces it. A refusal, a closed connection or
// 5 s without an answer send the request to another such peer. When no peer is left, or
// the piece fails verification (a lying peer, or a plan that was wrong about the present
// part), the piece goes back to the existing paths for good: whole from peers through the
// library, or from the origin, whose OriginFunc rewrites the missing ranges (and Refetch
// the whole piece if that fails too). Correctness never depends on the extension. What each
// peer sent for a piece that failed is kept, and once the piece is complete by another path
// every peer whose bytes differ from it is banned (judgeRanges), as the library's smart ban
// does for whole pieces: a liar over the extension is caught however the piece was finished,
// and an honest peer is not blamed for a plan that was wrong.
//
// A partial piece that only clients without the extension have is handed to the library
// whole (or to the fast path, below, when a pkgsync peer has it but the range path gave it
// up) once the known peers have said what they have (or PeerWait has passed); one that
// no peer has goes to the origin under the rules above, which ask it for the missing
// ranges only. Stock clients never see the extension: nothing changes for them.
//
// # Whole pieces between pkgsync nodes: the fast path
//
// The library moves every piece in 16 KiB chunks: a message read, a write into storage and a
// smart-ban hash each, and a read of the whole piece to hash it once it is in. Between two
// pkgsync nodes that costs several times the CPU of a plain HTTP download of the same bytes.
// So each Node also listens on a TCP port of its own beside the BitTorrent one (fastServer,
// fastserve.go) and offers it with a third BEP 10 extension, pkgsync_fast (fastwire.go has the
// wire format). A node asks a peer that offers it for whole pieces over that port, several
// requests in flight, about 20 ms of transfer; the peer sends each piece with sendfile
// straight from the page cache. The asking node reads it in large reads into one buffer,
// hashes it as it arrives, and writes it with one call once the SHA-1 matches the torrent's;
// storage then says the piece is complete, and the library takes its word without hashing the
// piece again (Piece.UpdateCompletion) and announces it. Requests start as soon as the peer has said its port, as the
// library asks peers from Add on.
//
// The library cannot be told not to request from a given peer, so it is not told what a
// fast-path peer has: the peer's bitfield and HAVE messages become keep-alives for the library
// (as for the site rule) and are kept in this package, where the scheduler's view of the peers
// reads them (peerPieces). A piece taken by the fast path is refused to the library's writes
// and set to priority None, like an origin piece, and given back to every path if it does not
// complete. A piece whose SHA-1 does not match came whole from one peer: that peer is banned
// (Node.ban, logged with reason "sent a piece over pkgsync_fast that failed verification"),
// the bytes are never written, and the piece goes back to every path. A peer whose fast path
// cannot be reached, or that offers it and never says its port, is heard through the library
// again: the connection is closed and the peer dialed anew. Partly present pieces stay with
// pkgsync_range. The fast path is plaintext and serves whoever knows the info hash, as
// BitTorrent does, so it is off with RequireEncryption and with TitForTat, and Config.NoFastPath
// turns it off. It passes the Node's upload and download limits and bans. Stock clients never
// see it.
//
// What the tests hold this to, on loopback: nodes holding the old version take exactly the
// missing bytes from a seeder and from each other, not whole pieces (TestPartialPiecesFromPeers);
// and nodes that start together and find each other through Package.Peers or a tracker make the
// origin send each missing byte once, each node asking it for an equal share, whether every
// piece is missing, the tail changed or changes are scattered (TestSwarmSharesOrigin).
package bt
