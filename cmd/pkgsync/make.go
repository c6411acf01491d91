package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/sign"
	"github.com/pkgsync/pkgsync/store"
)

const makeSynopsis = `Usage: pkgsync make FILE|STORE-URL [flags]

Reads FILE once and writes FILE.torrent (BitTorrent v1 metainfo, with the origin as a BEP 19 web
seed and a pointer to the .zsync) and FILE.zsync (zsync 0.6.2 control file, readable by the stock
zsync client), beside FILE or in --out-dir. Both appear atomically when complete; a failure leaves
earlier files untouched.

With --sign-key KEY (from pkgsync keygen, or signify -G -n), it also writes FILE.sig beside them:
an ed25519 signature, in signify's embedded format, over FILE.torrent's info hash and FILE.zsync's
SHA-256, which pkgsync update --trust-key KEY.pub checks before it writes anything. Stock tools
are unaffected: the signature is a file of its own.

FILE may also be the URL of a package in a store (webhdfs://NAMENODE:PORT/PATH, s3://BUCKET/KEY,
http(s)://): it is read with ranged reads in parallel, without a local copy, and the .torrent and
.zsync are written beside it in the store, or into --out-dir. For webhdfs, --align defaults to the
file's HDFS block size, so that no piece spans two blocks.

Examples:
  pkgsync make webhdfs://nn.example:9870/pkgs/pkg.tar --url http://origin.example/pkgs/pkg.tar
  pkgsync make pkg.tar --url http://origin.example/pkgs/pkg.tar --tracker http://origin.example:6969/announce
  pkgsync make big.img --align 134217728 -o /srv/manifests --json
  pkgsync make pkg.tar --url http://origin.example/pkgs/pkg.tar --sign-key /etc/pkgsync/release.key`

func runMake(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("make", makeSynopsis, stdout)
	var opt manifest.MakeOptions
	var (
		jsonOut bool
		signKey string
	)
	fs.StringVar(&opt.URL, "url", "", "URL of FILE on the origin (http or https): the torrent's web seed and the .zsync's URL;\nwithout it the .zsync points at FILE's name beside itself")
	fs.StringArrayVar(&opt.Trackers, "tracker", nil, "announce URL of a tracker (repeat for more)")
	fs.Int64Var(&opt.PieceSize, "piece-size", 0, "BitTorrent piece size in bytes, a power of two (default: from the file size, 32 KiB to 16 MiB, at most about 4000 pieces)")
	fs.IntVar(&opt.BlockSize, "block-size", 0, "zsync block size in bytes, a power of two (default: 2048 below 100 MB, else 4096, as zsyncmake)")
	fs.Int64Var(&opt.Align, "align", 0, "keep every piece inside one N-byte block (e.g. the HDFS block size 134217728)")
	fs.StringVarP(&opt.OutDir, "out-dir", "o", "", "write the .torrent and .zsync into this folder (default: beside FILE)")
	fs.StringVar(&signKey, "sign-key", "", "sign the package with this secret key (pkgsync keygen): writes FILE.sig beside the .torrent")
	fs.BoolVar(&jsonOut, "json", false, "print a one-object JSON summary on stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one FILE, got %d arguments", errUsage, fs.NArg())
	}
	var key *sign.PrivateKey
	if signKey != "" {
		// Before the read of FILE, which can take minutes: a bad key fails at once.
		var err error
		if key, err = sign.ReadPrivateKey(signKey); err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
	}
	file := fs.Arg(0)
	if opt.OutDir != "" {
		if st, err := os.Stat(opt.OutDir); err != nil {
			return fmt.Errorf("output folder: %w", err)
		} else if !st.IsDir() {
			return fmt.Errorf("output folder %s: not a directory", opt.OutDir)
		}
	}
	if store.IsURL(file) {
		return runMakeStore(ctx, file, opt, fs.Changed("align"), key, signKey, jsonOut, stdout, stderr)
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
	var sigPath string
	if key != nil {
		if sigPath, err = signPackage(key, signKey, res); err != nil {
			return err
		}
	}
	secs := time.Since(start).Seconds()
	if jsonOut {
		out := struct {
			*manifest.MakeResult
			Sig     string  `json:"sig,omitempty"`
			Seconds float64 `json:"seconds"`
		}{res, sigPath, secs}
		enc := json.NewEncoder(stdout)
		return enc.Encode(out)
	}
	if progress.IsTerminal(stdout) {
		fmt.Fprintf(stdout, "wrote %s and %s (%s, %d pieces of %s, %d blocks of %d) in %.2fs\n",
			res.Torrent, res.Zsync, progress.Bytes(res.Length), res.Pieces, progress.Bytes(res.PieceSize), res.Blocks, res.BlockSize, secs)
		if sigPath != "" {
			fmt.Fprintf(stdout, "signed %s with key %s\n", sigPath, key.ID)
		}
	}
	return nil
}

// signPackage writes FILE.sig beside the .torrent that make wrote: a signature over the info
// hash and the SHA-256 of the .zsync, both read back from the files as they stand on disk, so
// that it vouches for exactly what the origin will serve.
func signPackage(key *sign.PrivateKey, keyPath string, res *manifest.MakeResult) (string, error) {
	tdata, err := os.ReadFile(res.Torrent)
	if err != nil {
		return "", err
	}
	t, err := manifest.ParseTorrent(tdata)
	if err != nil {
		return "", fmt.Errorf("%s: %w", res.Torrent, err)
	}
	zdata, err := os.ReadFile(res.Zsync)
	if err != nil {
		return "", err
	}
	st := sign.Statement{File: t.Info.Name, InfoHash: t.InfoHash, ZsyncSHA256: sha256.Sum256(zdata)}
	sig, err := sign.Sign(key, st, "verify with "+filepath.Base(keyPath)+".pub")
	if err != nil {
		return "", fmt.Errorf("signing %s: %w", res.Torrent, err)
	}
	path := strings.TrimSuffix(res.Torrent, ".torrent") + ".sig"
	return path, writeFileAtomic(path, sig)
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and renames it over
// path: a reader sees the old .sig or the new one, never a part.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
