// Package swarmsim is a discrete-event, flow-level simulator of a pkgsync fan-out: an origin and
// thousands of nodes in sites and racks fetch one package, and it reports when each node had it,
// what the origin sent and what crossed between sites. It exists to answer, for fleets no lab
// holds, the questions a fleet owner asks (how long 10 GB takes to reach 10,000 nodes in two
// data centers, what the origin and the link between them carry, what 1% of nodes dying does),
// with the origin decided by the code that decides it in pkgsync: every simulated node runs a
// package originplan Planner, the one bt's scheduler runs, fed with that node's view and the
// simulated time. cmd/swarmsim is its command line; --validate checks it against the lab.
//
// # The network
//
// Each host has an upload and a download link (the origin an upload only); racks may have a
// capped link to their site and sites a capped link between them, each way. A piece in transfer
// is one flow over the links on its way. A flow's rate is the smallest equal share of its
// links, capacity over the flows on the link: the max-min fair rate when a link's flows share
// their bottleneck, and below it when some are held back elsewhere (a node whose download is
// shared by fewer flows than its sender's upload leaves part of its link unused). When a flow
// starts or ends, the flows on its links get new rates and completion times; nothing else is
// recomputed, so an event costs the flows of a few links. A link with hundreds of flows (the
// origin's, when every node fetches from it at once) shares out again only when its count of
// flows has moved by 1%, at most every 2 ms, so it may carry 1% more or less than its rate. There
// are no packets, latencies or TCP dynamics: messages (HAVE, claims, the tracker's answers)
// arrive at once and connections open at once; Scenario.ClaimDelay (swarmsim --claim-delay)
// delays claims, to see what nodes whose rounds fall on the same instant do before their
// claims arrive (DefaultClaimDelay).
//
// # A node
//
// A node starts at its offset (Scenario.Splay), announces, and dials the peers the tracker
// lists, up to MaxConns connections on either side; a full node still takes a connection of
// the direction it has fewer of when it has more than one more of the other, closing its
// worst of those (one whose peer has nothing it lacks first, then the oldest), as
// anacrolix/torrent does. The tracker lists at most
// min(MaxPeers, MaxConns) peers: pkgsync's ranks them as package tracker does (the closest by
// topology.Closeness first, over addresses 10.site.rack.host and sites "dcS/rackR"; among
// equals seeders first for a leecher, then an order of the asker's own), a stock one
// (opentracker) samples them at random. pkgsync's also hands each announcer its origin role
// with originplan.Slots, the code package tracker runs: one Slots per swarm, announces with
// needs = not complete, slots kept for three intervals without an announce (a node that dies
// does not announce "stopped"), and the other slot holders listed first to every fetcher. With
// the site rule, only nodes of the origin's site get a role: a far site reaches the origin
// through its gateway, as under a stock tracker. A node re-announces every Interval, every 250 ms while
// it knows nobody, and is listed until three intervals after it dies. With several sites and
// Scenario.SiteRule, bt's site rule applies: a node of a far site connects across only as its
// site's gateway (the lowest node of the site it knows), nodes of the origin's site accept only
// the gateways they know and are not told what they have, and a node starved by the rule for
// 15 s drops it.
//
// From peers, a node keeps Pipeline pieces in flight. It models bt's fast path, over which
// pkgsync nodes take whole pieces from each other (bt/fast.go): a connection to a peer carries
// one piece at a time (its requests are answered in order) and takes the next piece the peer
// has in index order from a random point, not the rarest (the library's rarest first serves
// stock clients only). So a node requests a piece drawn at random among those its connected
// peers have and it lacks, whole, from the holder that uploads the fewest pieces among 4 it
// finds from a random connection on, of those that send it nothing yet. bt runs a connection
// to every peer at once; Pipeline (8) caps the pieces in flight, which keeps a run's flows and
// its cost in bounds. Every peer is unchoked (bt's default). Pieces are not split between
// peers.
//
// For the origin, every 250 ms (bt's tick) and as soon as one of its origin fetches ends, a
// node runs bt's round: the site rule, originplan's Gate (peers connect and say what they have
// at once, so it opens when every known peer is connected, after ConnectGrace otherwise, or
// when a node alone reaches PeerWait; at once with a role), then Planner.Plan with its
// members (connected nodes that use the origin and still need data), their claims (their
// origin fetches in flight, from ClaimDelay after they started), its pieces and its role, with the
// slots its connected fetchers hold written in (originplan.Role.WithHolders, as bt hears them). A round whose Plan could only pick nothing (every piece it lacks is in flight
// or held by a connected peer, and it is not stalled) is skipped after the stall count. An
// origin fetch is a flow from the origin; a peer transfer of a piece the node takes to the
// origin when stalled is cut. Origin fetches do not fail.
//
// Churn: Scenario.Churn of the nodes die once at a random moment within B of their start; their
// transfers stop (the bytes moved count as wasted), their peers forget them, and they come back
// Down later as a new process (new peer ID, new planner, no connections) with the pieces they
// had completed, as pkgsync update finds them in OUT.part. A node that completes stays and
// seeds.
//
// The delta case (Scenario.Have) gives every node the same share of the pieces, as the same old
// version does; partly present pieces are not modelled (a piece is had or missing).
//
// # Cost
//
// A node's piece sets are bitsets, and what every node has and what its peers have lie in two
// arrays indexed by node, so a HAVE fanning out to a hundred peers sets a bit in each without
// reading the peers themselves; per event the work is a few links' flows and one node's
// connections. Runs are deterministic for a seed: one random source, timers ordered by time
// then creation, flows by completion then creation; testdata/golden.json holds the test
// scenarios' figures, so that a change made for speed cannot change them.
package swarmsim
