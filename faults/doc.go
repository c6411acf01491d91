// Package faults is the fault suite of pkgsync: `go test ./faults` runs the real pkgsync binary
// against real sockets and file systems and breaks them on purpose, one fault per test, each
// checking what the user sees (exit status, message), what is on disk afterwards (OLD intact,
// OUT either the old version or the complete new one, at most a resumable OUT.part) and what
// the next run fetches again.
//
// The faults covered: update killed with SIGKILL at 10%, 50% and 90% of an HTTP update and of
// a swarm update, and in its final rename window; a full disk (a tmpfs the test mounts) under
// the output; the origin publishing another version in the middle of a fetch; an origin that
// answers 5xx, resets the connection mid-body, ignores Range, sends a wrong Content-Range, a
// truncated, corrupted or stalled body; and a tracker that refuses connections.
//
// It has its own home because none of its tests belongs to one package: each drives the whole
// command (updater, httprange, delta and the file system together) the way cron does on a node,
// with an origin whose faults the test controls byte by byte, an in-process net/http server
// that throttles, counts and breaks the package's replies. interop/ tests agreement with stock
// tools, where the other side behaves; here the other side, or the machine, misbehaves. The
// README's "Faults" table gives the figures of a run.
package faults
