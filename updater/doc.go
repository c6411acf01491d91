// Package updater carries out `pkgsync update`: it loads a package's .torrent and .zsync, rebuilds
// as much of the new version as it can from the old one(s) (package delta), fetches the rest from
// BitTorrent peers first (package bt) and from the origin last (package httprange for a web
// server, package store for HDFS and object stores), verifies every piece and the whole file, and
// only then renames the result into place.
//
// It has its own home because this order of steps, and the promise behind it, is the product:
// the old version and any earlier output stay untouched until the new file is complete and
// verified; an interrupted run leaves only OUT.part, which the next run reuses.
package updater
