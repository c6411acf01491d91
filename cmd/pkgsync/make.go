package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/manifest"
)

const makeSynopsis = `Usage: pkgsync make FILE [flags]

Reads FILE once and writes FILE.torrent (BitTorrent v1 metainfo, with the origin as a BEP 19 web
seed and a pointer to the .zsync) and FILE.zsync (zsync 0.6.2 control file, readable by the stock
zsync client), beside FILE or in --out-dir. Both appear atomically when complete; a failure leaves
earlier files untouched.

Examples:
  pkgsync make pkg.tar --url http://origin.example/pkgs/pkg.tar --tracker http://origin.example:6969/announce
  pkgsync make big.img --align 134217728 -o /srv/manifests --json`

func runMake(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("make", makeSynopsis, stdout)
	var opt manifest.MakeOptions
	var jsonOut bool
	fs.StringVar(&opt.URL, "url", "", "URL of FILE on the origin (http or https): the torrent's web seed and the .zsync's URL;\nwithout it the .zsync points at FILE's name beside itself")
	fs.StringArrayVar(&opt.Trackers, "tracker", nil, "announce URL of a tracker (repeat for more)")
	fs.Int64Var(&opt.PieceSize, "piece-size", 0, "BitTorrent piece size in bytes, a power of two (default: from the file size, 32 KiB to 16 MiB, at most about 4000 pieces)")
	fs.IntVar(&opt.BlockSize, "block-size", 0, "zsync block size in bytes, a power of two (default: 2048 below 100 MB, else 4096, as zsyncmake)")
	fs.Int64Var(&opt.Align, "align", 0, "keep every piece inside one N-byte block (e.g. the HDFS block size 134217728)")
	fs.StringVarP(&opt.OutDir, "out-dir", "o", "", "write the .torrent and .zsync into this folder (default: beside FILE)")
	fs.BoolVar(&jsonOut, "json", false, "print a one-object JSON summary on stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one FILE, got %d arguments", errUsage, fs.NArg())
	}
	file := fs.Arg(0)
	if opt.OutDir != "" {
		if st, err := os.Stat(opt.OutDir); err != nil {
			return fmt.Errorf("output folder: %w", err)
		} else if !st.IsDir() {
			return fmt.Errorf("output folder %s: not a directory", opt.OutDir)
		}
	}
	var bar *progress.Bar
	if st, err := os.Stat(file); err == nil && !jsonOut {
		bar = progress.New(stderr, filepath.Base(file), st.Size())
		opt.OnProgress = bar.Set
	}
	start := time.Now()
	res, err := manifest.Make(ctx, file, opt)
	bar.Done()
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if jsonOut {
		out := struct {
			*manifest.MakeResult
			Seconds float64 `json:"seconds"`
		}{res, secs}
		enc := json.NewEncoder(stdout)
		return enc.Encode(out)
	}
	if progress.IsTerminal(stdout) {
		fmt.Fprintf(stdout, "wrote %s and %s (%s, %d pieces of %s, %d blocks of %d) in %.2fs\n",
			res.Torrent, res.Zsync, progress.Bytes(res.Length), res.Pieces, progress.Bytes(res.PieceSize), res.Blocks, res.BlockSize, secs)
	}
	return nil
}
