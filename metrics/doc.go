// Package metrics defines every Prometheus metric pkgsync exposes: the counters and gauges that
// `pkgsync serve`, `pkgsync tracker` and `pkgsync seed --metrics-addr` serve at /metrics, and the
// gauges that `pkgsync update` and `pkgsync sync` write with --metrics-file for node_exporter's
// textfile collector.
//
// It has a home of its own so that the names, help texts and labels that dashboards and alerts
// are built on are defined in one place, next to the rules that keep them bounded, and so that
// origin, tracker and the command carry a call per event rather than the client library's
// registration and exposition code.
//
// # Labels
//
// Every label takes a bounded set of values, so that no client can make a server keep series
// without end. A package label names a file of the served folder, or a torrent given on seed's
// command line, never a request's raw path: a request that names no file of the folder (a 404, a
// refused path) counts under package="" kind="", and beyond maxPackages distinct files further
// ones count there too. Methods other than GET and HEAD count as "other", announce events other
// than BitTorrent's as "unknown". No label ever holds a peer's address or ID: per-peer figures
// belong in the tracker's announce log and update's --json, not in a time series database.
//
// # Names
//
// Served at /metrics:
//
//	pkgsync_origin_requests_total{method,status}            requests for files and the index
//	pkgsync_origin_sent_bytes_total{package,kind,status}    body bytes sent; kind: data, torrent, zsync, sig, index
//	pkgsync_tracker_announces_total{event,result}           result: ok, refused
//	pkgsync_tracker_scrapes_total{result}
//	pkgsync_tracker_swarms, pkgsync_tracker_peers, pkgsync_tracker_seeders   live now
//	pkgsync_seed_torrents                                   torrents seeded
//	pkgsync_seed_peers{package,info_hash}                   connected peers now
//	pkgsync_seed_uploaded_bytes_total{package,info_hash}    piece data sent to peers
//
// plus the client library's go_* and process_* metrics. Written by --metrics-file, one file per
// run, replaced whole:
//
//	pkgsync_update_bytes{output,source}                     source: reused, peers, origin
//	pkgsync_update_duration_seconds{output}
//	pkgsync_update_result{output,result}                    1 for the run's result, 0 for the others
//	pkgsync_update_last_run_timestamp_seconds{output}
//	pkgsync_sync_bytes{dir,line,source}
//	pkgsync_sync_package_duration_seconds{dir,line}
//	pkgsync_sync_package_result{dir,line,result}
//	pkgsync_sync_duration_seconds{dir}
//	pkgsync_sync_result{dir,result}
//	pkgsync_sync_last_run_timestamp_seconds{dir}
//
// result is one of updated, current and failed. The output and dir labels keep apart the files
// of several update or sync units on one node, which node_exporter merges into one scrape.
package metrics
