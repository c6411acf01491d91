package manifest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Verify checks that f, the file at path, is the data t describes: its size, and every piece
// against t's piece hashes. A seeder runs it before it offers a file, so that it never serves
// bytes that fail a peer's check.
func (t *Torrent) Verify(ctx context.Context, f *os.File, path string) error {
	if st, err := f.Stat(); err != nil || st.Size() != t.Info.Length {
		return fmt.Errorf("%s: not the data of the torrent (size differs: want %d bytes)", path, t.Info.Length)
	}
	h, err := Hash(ctx, io.NewSectionReader(f, 0, t.Info.Length), HashOptions{Name: path, Length: t.Info.Length, PieceSize: t.Info.PieceLength})
	if err != nil {
		return err
	}
	if bad := t.BadPieces(h.Pieces); len(bad) > 0 {
		return fmt.Errorf("%s: piece %d does not match the torrent", path, bad[0])
	}
	return nil
}

// FindZsync returns the .zsync of t as a torrent of its own, with the file opened and verified,
// when t describes one (see ZsyncTorrent): it looks where t's relative zsync-url points from the
// torrent file at torrentPath, then beside the data as data+".zsync". It returns a nil torrent
// and no error when t describes none, and an error naming every place tried when none holds it.
func (t *Torrent) FindZsync(ctx context.Context, torrentPath, data string) (string, *Torrent, *os.File, error) {
	zt, err := t.ZsyncTorrent("")
	if err != nil || zt == nil {
		return "", nil, nil, err
	}
	var cands []string
	if u := t.ZsyncURL; u != "" && !strings.Contains(u, "://") {
		cands = append(cands, filepath.Join(filepath.Dir(torrentPath), filepath.FromSlash(u)))
	}
	cands = append(cands, data+".zsync")
	var errs []string
	for _, zp := range cands {
		f, err := os.Open(zp)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := zt.Verify(ctx, f, zp); err != nil {
			f.Close()
			errs = append(errs, err.Error()+" (a .zsync of another version?)")
			continue
		}
		return zp, zt, f, nil
	}
	return "", nil, nil, errors.New(strings.Join(errs, "; "))
}
