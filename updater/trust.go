package updater

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/pkgsync/pkgsync/sign"
)

// The signature check (Options.Trust). The .sig is read and verified first, before the .torrent
// or .zsync it vouches for is used, and each of those is checked against it on the very bytes
// that are then parsed: the .torrent in load, before the lock and the up-to-date check, the
// .zsync in loadZsync, before OUT.part is opened. So a package that fails the check has not
// written a byte of OUT.part. A node that loads no .zsync (it has no old data, see loadZsync)
// checks the .torrent alone: the piece hashes of the signed info dictionary verify every byte it
// writes, and the .zsync it does not read cannot mislead it.

// signatureOf returns where the .sig of the package whose .torrent or .zsync is at src is:
// FILE.sig for FILE.torrent and FILE.zsync, as pkgsync make --sign-key writes it. A URL keeps its
// query (an access token for the .torrent is one for its .sig).
func signatureOf(src location) location {
	trim := func(p string) string {
		for _, ext := range []string{".torrent", ".zsync"} {
			if s, ok := strings.CutSuffix(p, ext); ok {
				return s + ".sig"
			}
		}
		return p + ".sig"
	}
	if src.url == nil {
		return location{raw: trim(src.raw)}
	}
	u := *src.url
	u.Path, u.RawPath = trim(u.Path), "" // String escapes Path again
	return location{raw: u.String(), url: &u, store: src.store}
}

// loadSignature reads the .sig beside SOURCE and checks that a trusted key made it.
func (j *job) loadSignature(ctx context.Context) error {
	loc := signatureOf(j.src)
	data, err := loc.read(ctx, j.opt.HTTP, j.opt.Header, j.opt.Store, sign.MaxSize)
	if err != nil {
		return fmt.Errorf("%s: no signature for %s, and --trust-key requires one: %w", loc, j.src, err)
	}
	s, err := sign.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: not a valid signature: %w", loc, err)
	}
	k, err := j.opt.Trust.Verify(s)
	if err != nil {
		return fmt.Errorf("%s: %w", loc, err)
	}
	j.log.Info("update: signed by a trusted key", "sig", loc.String(), "key", k.ID, "file", s.Statement.File)
	j.sig, j.sigLoc = &s.Statement, loc
	return nil
}

// checkInfoHash refuses a .torrent at src whose info hash is not the signed one.
func (j *job) checkInfoHash(src location, h [20]byte) error {
	if j.sig == nil || h == j.sig.InfoHash {
		return nil
	}
	return fmt.Errorf("%s: info hash %x is not the one %s vouches for (%x): the .torrent was altered, or the signature is of another version",
		src, h, j.sigLoc, j.sig.InfoHash)
}

// checkZsync refuses a .zsync at src whose SHA-256 is not the signed one.
func (j *job) checkZsync(src location, data []byte) error {
	if j.sig == nil {
		return nil
	}
	if h := sha256.Sum256(data); h != j.sig.ZsyncSHA256 {
		return fmt.Errorf("%s: SHA-256 %x is not the one %s vouches for (%x): the .zsync was altered, or the signature is of another version",
			src, h, j.sigLoc, j.sig.ZsyncSHA256)
	}
	return nil
}
