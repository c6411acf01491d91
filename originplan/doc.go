// Package originplan decides which pieces a node fetches from the origin, and when: the
// origin-scheduling policy of pkgsync's swarm, as a pure state machine. Given one node's view
// (the pieces it lacks, what its connected peers have, which of them use the origin and what
// they claim, its fetches in flight) and the time, Planner.Plan returns the pieces to ask the
// origin for now; Gate says when the node may start.
//
// It has a home of its own, apart from bt, so that one piece of code is driven three ways:
// by bt's scheduler over real connections (bt/download.go), by table tests here, and by the
// fleet simulator (swarmsim), which runs thousands of simulated views that no lab can. It
// therefore imports neither anacrolix/torrent nor anything that does I/O, starts no
// goroutine and reads no clock: time comes in with every call, the way etcd's raft takes
// Tick, and the caller does the claiming, fetching and messaging the plan implies.
//
// # The policy
//
// A piece may go to the origin only if no connected peer has it, no member claims it, no
// peer wrote to it within PeerWriteGrace, and it is not being verified; once peers have
// completed no piece for StallTimeout, pieces peers have may go too.
//
// The members (connected nodes that use the origin and still need data) and this node sort
// their peer IDs. The pieces the caller did not have are cut into one contiguous block per
// member (BlockStart). Nodes that start from the same old version cut the same list, so N
// nodes starting together ask the origin for disjoint pieces and trade the rest. A node
// walks its own block forwards, then the others' backwards (ShareOrder), meeting their
// owners in the middle. It takes from a working owner only if at least 2 x Concurrency open
// pieces lie between it and the owner's frontier, and leaves a number of the block's last
// open pieces that differs for every taker (ThiefSkip). An owner with no claim outstanding
// for IdleGrace is idle: its block goes to its heir (HeirOf), and after OrphanAfter to all.
// How many fetches a node keeps in flight depends on how many share the origin (Limit).
//
// # With a tracker's help
//
// A tracker sees every announcer of a swarm. Slots is its side of the coordination: it hands
// a few announcers a fetcher slot each (Role), and every announcer the same list of slot
// holders, so that the fetchers cut the same blocks whatever part of the swarm each sees and
// the rest leave the origin to them. Under a stock tracker no Role comes, and the members
// are worked out from the connected peers as below.
//
// With a Role (View.Role), a fetcher cuts todo into one block per slot and walks its own
// slot's block, the other holders being its members whether it is connected to them or not.
// A holder whose claims show it working keeps its block; one that shows none is idle after
// IdleGrace; one this node is not connected to (it may be working for peers this node does
// not see) only while this node is stalled; a vacant slot's block has an heir among the holders
// (VacantHeirs), which walks it as its own. A node's list is the tracker's answer to its
// last announce; the fetchers it is connected to say which slots they hold, and their word
// fills in those who took a slot since (Role.WithHolders), so that connected fetchers work
// out the same heirs. Idle blocks go to their heirs and orphans to all, as below. Each fetcher keeps Concurrency fetches in flight, since
// the tracker keeps them few. A node that is not a fetcher asks the origin for nothing while
// its peers make progress; stalled, it takes only pieces no connected peer has, cut among
// its connected members as below (and, stalled for LongStall times StallTimeout, those its peers say they have too). Its gate waits for the tracker's answer and the bitfields
// of the peers already connected, not for the rest of the swarm.
//
// # Under a stock tracker
//
// No tracker names fetchers there, and a node's members are only the peers it is connected
// to: nodes that see different parts of the swarm would cut different blocks and fetch pieces
// twice. So the nodes elect fetchers among themselves (Election): each keeps the
// ElectedFetchers candidates of the highest rendezvous weight it hears of and passes that list
// on to its peers, which merge it with theirs; the heaviest nodes of the swarm come to be on
// every list within a few exchanges, and the list stands for a tracker's Role. Claims and the
// idle rule bound what disagreement remains; the simulator measures it.
package originplan
