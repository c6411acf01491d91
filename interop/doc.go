// Package interop holds end-to-end interop tests of pkgsync's swarm against stock BitTorrent
// clients and trackers. It has no code of its own: its tests build the pkgsync binary once and run
// it as a user would (pkgsync make, serve, tracker, seed and update as subprocesses), next to
// Debian's opentracker, aria2c and python3-libtorrent, all on loopback, each node on its own
// 127.0.0.K address because the swarm bans and ranks peers by IP.
//
// The unit tests of bt, tracker and updater prove each part against in-process peers built on
// the same library. These tests prove the promises that only hold between processes and
// between implementations:
//
//   - a swarm of pkgsync nodes works with a standard tracker (opentracker) as well as with the
//     embedded one (pkgsync serve --tracker), and the origin sends each missing byte about once
//     however many nodes update at once;
//   - nodes finish from a seeder when the origin goes away;
//   - aria2c and libtorrent download a package from a pkgsync seeder and from a pkgsync origin
//     acting as a BEP 19 web seed alone;
//   - pkgsync downloads a package from aria2c and libtorrent seeders.
//
// A missing stock tool skips a test on a developer's machine and fails it under CI=true
// (internal/testtool).
package interop
