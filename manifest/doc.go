// Package manifest makes and loads the two small files that describe a package: its BitTorrent v1
// metainfo (.torrent) and its zsync 0.6.2 control file (.zsync).
//
// It has its own home because neither file stands alone: `pkgsync make` writes both from one
// sequential read of the package (the piece SHA-1s, the per-block rolling sums and MD4s, and the
// whole-file SHA-1 are computed from the same buffers, spread over every core), and `pkgsync update`
// needs both and must refuse a pair that does not belong together. The .torrent carries a
// "zsync-url" key (outside the info dictionary, so the info hash is unaffected and stock clients
// ignore it) that tells a consumer where the .zsync is, relative to the .torrent's own location,
// and a "zsync-info" key: the info dictionary of the .zsync as a torrent of its own, so that the
// nodes of a fan-out trade the control file like the package (see ZsyncTorrent).
//
// A package too large for one reader is made in parts instead (MakePart, Merge, and the part
// file of WritePart and ReadPart): each part hashes one aligned stretch wherever the package can
// be read, and the merge writes the same two files, byte for byte.
package manifest
