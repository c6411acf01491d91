// Package sign proves who made a package: an ed25519 signature over the package's BitTorrent
// info hash and the SHA-256 of its .zsync, in a FILE.sig beside the package's .torrent and .zsync.
//
// # Why a signature, and why over these two hashes
//
// The hashes in a .torrent prove only that bytes match the .torrent, and the .zsync's SHA-1 only
// that they match the .zsync: whoever can change the origin's files, or answer in its place, can
// publish a .torrent and .zsync of anything. A signature by a key the consumer trusts (pkgsync
// update --trust-key) closes that gap. The info hash covers the torrent's info dictionary (name,
// length, piece size and every piece's SHA-1), so it fixes every byte of the package; the SHA-256
// of the whole .zsync fixes the control file that update scans the old version with and whose
// whole-file SHA-1 it checks. The rest of the .torrent (trackers, web seeds, where the .zsync is,
// the .zsync's own torrent) says only where to fetch from: whatever comes from there is checked
// against these two hashes before it is used, so those keys stay outside the signature and an
// operator may point them elsewhere without signing again.
//
// # Format: signify's, with the statement embedded
//
// The files are those of OpenBSD's signify (signify-openbsd on Debian), so that the stock tool
// can check what pkgsync signs and pkgsync can use keys that signify made:
//
//	KEY (secret, mode 0600)   untrusted comment: pkgsync secret key
//	                          base64("Ed" "BK" rounds:u32be=0 salt[16] checksum[8] keynum[8] seckey[64])
//	KEY.pub                   untrusted comment: pkgsync public key
//	                          base64("Ed" keynum[8] pubkey[32])
//	FILE.sig                  untrusted comment: verify with KEY.pub
//	                          base64("Ed" keynum[8] signature[64])
//	                          pkgsync-signature: 1
//	                          file: FILE
//	                          info-hash: <40 lowercase hex digits>
//	                          zsync-sha256: <64 lowercase hex digits>
//
// keynum is 8 random bytes that name the key pair; checksum is the first 8 bytes of the SHA-512
// of seckey (the 64-byte ed25519 private key, seed then public key). A .sig is signify's embedded
// form (signify -S -e): the ed25519 signature covers the four statement lines after the base64
// line, exactly as they stand, newlines included. So
//
//	signify-openbsd -V -e -p KEY.pub -x FILE.sig -m FILE.statement
//
// checks a .sig and writes the statement it vouches for; the hashes in it are those of
// FILE.torrent's info dictionary and of FILE.zsync. signify signs only with a secret key whose
// file name ends in .sec (pkgsync keygen -o release.sec writes release.sec and release.sec.pub,
// or copy the key). Secret keys protected by a passphrase
// (signify -G without -n) are refused: pkgsync signs unattended, from a build job, and the key
// file's permissions protect it. The statement is strict (these lines, in this order, nothing
// else) so that each statement has one spelling: what is signed is what is read.
//
// What a signature does not say: when it was made. An origin under an attacker's control can
// serve an older package with its own valid signature; rotate keys, or check versions by name,
// where that matters.
//
// # Why a package of its own
//
// The key and signature formats are parsers of untrusted input (a .sig comes over the network)
// with their own fuzz target, and both ends use them: `pkgsync make --sign-key` and `pkgsync
// keygen` write them, the updater reads them before it writes a byte. Kept apart from manifest
// (which describes packages and knows nothing of keys) and updater (which fetches), the crypto
// stays small enough to read whole: generate, sign, parse, verify.
package sign
