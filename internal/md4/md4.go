// Package md4 computes MD4 (RFC 1320), the strong block checksum of zsync 0.6.2.
//
// It lives in its own package because MD4 is the bottleneck of both `pkgsync make` and the delta
// scan: every block of a package is hashed with it, and golang.org/x/crypto/md4 allocates a digest
// per call. MD4 is broken as a cryptographic hash; here it only confirms weak-sum matches, and every
// piece and the whole file are verified with SHA-1 afterwards.
package md4

import xmd4 "golang.org/x/crypto/md4"

// Sum returns the MD4 digest of data.
func Sum(data []byte) [16]byte {
	h := xmd4.New()
	h.Write(data)
	var out [16]byte
	h.Sum(out[:0])
	return out
}
