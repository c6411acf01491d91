package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pkgsync/pkgsync/internal/progress"
)

func benchMake(ctx context.Context, args []string) error {
	fs := newFlags("make")
	sizeS := fs.String("size", "1G", "package size")
	runs := fs.Int("runs", 5, "runs of each tool; medians are reported")
	fs.Parse(args)
	size, err := progress.ParseSize(*sizeS)
	if err != nil {
		return err
	}
	if err := need("zsyncmake", "mktorrent", "sha1sum"); err != nil {
		return err
	}
	dir, bin, err := workdir(ctx, "make")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pkg := filepath.Join(dir, "pkg.bin")
	f, err := os.Create(pkg)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		return err
	}
	f.Close()
	if err := warm(pkg); err != nil {
		return err
	}
	// pkgsync picks its piece size from the file size; give mktorrent the same (-l is log2).
	ps, err := pieceSize(ctx, bin, pkg, dir)
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	var tPk, tZm, tMk, tSha, rPk, rZm, rMk []float64
	for i := 0; i < *runs; i++ {
		m, err := runCmd(ctx, dir, bin, "make", pkg, "-o", out, "--url", "http://origin.invalid/pkg.bin")
		if err != nil {
			return err
		}
		tPk, rPk = append(tPk, m.wall.Seconds()), append(rPk, float64(m.rssKB)/1024)
		os.Remove(filepath.Join(out, "ref.zsync"))
		m, err = runCmd(ctx, dir, "zsyncmake", "-u", "http://origin.invalid/pkg.bin", "-o", filepath.Join(out, "ref.zsync"), pkg)
		if err != nil {
			return err
		}
		tZm, rZm = append(tZm, m.wall.Seconds()), append(rZm, float64(m.rssKB)/1024)
		os.Remove(filepath.Join(out, "ref.torrent"))
		m, err = runCmd(ctx, dir, "mktorrent", "-l", strconv.Itoa(bits.TrailingZeros64(uint64(ps))), "-w", "http://origin.invalid/pkg.bin", "-o", filepath.Join(out, "ref.torrent"), pkg)
		if err != nil {
			return err
		}
		tMk, rMk = append(tMk, m.wall.Seconds()), append(rMk, float64(m.rssKB)/1024)
		m, err = runCmd(ctx, dir, "sha1sum", pkg)
		if err != nil {
			return err
		}
		tSha = append(tSha, m.wall.Seconds())
	}
	// The ratio per run (same moment, same load) is steadier than a ratio of medians.
	var ratios []float64
	for i := range tPk {
		ratios = append(ratios, tPk[i]/(tZm[i]+tMk[i]))
	}
	fmt.Printf("make, %d MiB file, page cache warm, %d runs, medians; piece size %d\n\n", size>>20, *runs, ps)
	fmt.Println("| tool | wall s | peak RSS MiB |")
	fmt.Println("| --- | ---: | ---: |")
	fmt.Printf("| pkgsync make (.torrent + .zsync) | %.2f | %.0f |\n", median(tPk), median(rPk))
	fmt.Printf("| zsyncmake | %.2f | %.0f |\n", median(tZm), median(rZm))
	fmt.Printf("| mktorrent | %.2f | %.0f |\n", median(tMk), median(rMk))
	fmt.Printf("| sha1sum (one hash, the floor of any one-read tool) | %.2f | |\n\n", median(tSha))
	fmt.Printf("pkgsync make / (zsyncmake + mktorrent) = %.2f (median of per-run ratios; goal <= 0.5)\n", median(ratios))
	fmt.Printf("pkgsync make / sha1sum = %.2f\n", median(tPk)/median(tSha))
	return nil
}

// pieceSize asks pkgsync which piece size it chooses for pkg.
func pieceSize(ctx context.Context, bin, pkg, dir string) (int64, error) {
	tmp := filepath.Join(dir, "probe")
	os.Mkdir(tmp, 0o755)
	defer os.RemoveAll(tmp)
	m, err := runCmd(ctx, dir, bin, "make", pkg, "-o", tmp, "--json")
	if err != nil {
		return 0, err
	}
	var res struct {
		PieceSize int64 `json:"piece_size"`
	}
	if err := json.Unmarshal(m.out, &res); err != nil || res.PieceSize == 0 {
		return 0, fmt.Errorf("pkgsync make --json: %q: %v", m.out, err)
	}
	return res.PieceSize, nil
}
