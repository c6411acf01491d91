package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/sign"
	"github.com/pkgsync/pkgsync/store"
)

const makeSynopsis = `Usage: pkgsync make FILE|STORE-URL [flags]
       pkgsync make --part I/N FILE [flags]
       pkgsync make --merge PARTS... [flags]

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

As a map-and-merge job, for a package too large for one reader: --part I/N (I from 0 to N-1)
hashes only the I-th of N stretches of FILE, cut at multiples of the piece size (of --align when
given) so that each holds whole pieces and whole zsync blocks, reads only that stretch, and writes
the part file FILE.I-of-N.mkpart (beside FILE or in --out-dir). Run the N parts anywhere FILE can
be read, with the same flags; then --merge PARTS... checks that the parts belong together and
cover FILE exactly once, and writes FILE.torrent and FILE.zsync, byte for byte those of a one-pass
make with the same flags. The .zsync's whole-file SHA-1 cannot be cut into parts (SHA-1 runs over
the bytes in order), so --merge computes it by reading FILE once, sequentially, at the path the
parts recorded: the merge needs read access to FILE. FILE may be a store URL too: every part
reads its stretch from the store, and the part files and the merge's outputs go into --out-dir,
which is then required.

The torrent's creation date is the time of the make, or SOURCE_DATE_EPOCH (seconds since 1970)
when that is set, for reproducible output.

Examples:
  pkgsync make webhdfs://nn.example:9870/pkgs/pkg.tar --url http://origin.example/pkgs/pkg.tar
  pkgsync make pkg.tar --url http://origin.example/pkgs/pkg.tar --tracker http://origin.example:6969/announce
  pkgsync make big.img --align 134217728 -o /srv/manifests --json
  pkgsync make pkg.tar --url http://origin.example/pkgs/pkg.tar --sign-key /etc/pkgsync/release.key
  pkgsync make --part 3/8 /data/big.img --url http://origin.example/big.img -o /data/parts
  pkgsync make --merge /data/parts/big.img.*-of-8.mkpart -o /srv/manifests`

// makeFlags are make's command line.
type makeFlags struct {
	opt     manifest.MakeOptions
	jsonOut bool
	signKey string
	part    string // --part I/N
	merge   bool
}

func runMake(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("make", makeSynopsis, stdout)
	var f makeFlags
	opt := &f.opt
	fs.StringVar(&opt.URL, "url", "", "URL of FILE on the origin (http or https): the torrent's web seed and the .zsync's URL;\nwithout it the .zsync points at FILE's name beside itself")
	fs.StringArrayVar(&opt.Trackers, "tracker", nil, "announce URL of a tracker (repeat for more)")
	fs.Int64Var(&opt.PieceSize, "piece-size", 0, "BitTorrent piece size in bytes, a power of two (default: from the file size, 32 KiB to 16 MiB, at most about 4000 pieces)")
	fs.IntVar(&opt.BlockSize, "block-size", 0, "zsync block size in bytes, a power of two (default: 2048 below 100 MB, else 4096, as zsyncmake)")
	fs.Int64Var(&opt.Align, "align", 0, "keep every piece inside one N-byte block (e.g. the HDFS block size 134217728)")
	fs.StringVarP(&opt.OutDir, "out-dir", "o", "", "write the .torrent and .zsync (or the part file) into this folder (default: beside FILE)")
	fs.StringVar(&f.signKey, "sign-key", "", "sign the package with this secret key (pkgsync keygen): writes FILE.sig beside the .torrent")
	fs.StringVar(&f.part, "part", "", "hash only stretch I of N of FILE (I from 0 to N-1) and write the part file FILE.I-of-N.mkpart")
	fs.BoolVar(&f.merge, "merge", false, "combine the part files given as arguments into FILE.torrent and FILE.zsync;\nreads FILE once, sequentially, for the .zsync's whole-file SHA-1")
	fs.BoolVar(&f.jsonOut, "json", false, "print a one-object JSON summary on stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := f.check(fs.NArg()); err != nil {
		return err
	}
	now, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	opt.Now = now
	if opt.OutDir != "" {
		if st, err := os.Stat(opt.OutDir); err != nil {
			return fmt.Errorf("output folder: %w", err)
		} else if !st.IsDir() {
			return fmt.Errorf("output folder %s: not a directory", opt.OutDir)
		}
	}
	if f.part != "" {
		return runPart(ctx, fs.Arg(0), &f, stdout, stderr)
	}
	var key *sign.PrivateKey
	if f.signKey != "" {
		// Before the read of FILE, which can take minutes: a bad key fails at once.
		if key, err = sign.ReadPrivateKey(f.signKey); err != nil {
			return fmt.Errorf("--sign-key: %w", err)
		}
	}
	if !f.merge && store.IsURL(fs.Arg(0)) {
		return runMakeStore(ctx, fs.Arg(0), *opt, fs.Changed("align"), key, f.signKey, f.jsonOut, stdout, stderr)
	}
	start := time.Now()
	var res *manifest.MakeResult
	if f.merge {
		res, err = runMerge(ctx, fs.Args(), opt, f.jsonOut, stderr)
	} else {
		res, err = makeOne(ctx, fs.Arg(0), opt, f.jsonOut, stderr)
	}
	if err != nil {
		return err
	}
	var sigPath string
	if key != nil {
		if sigPath, err = signPackage(key, f.signKey, res); err != nil {
			return err
		}
	}
	return printMade(stdout, res, sigPath, key, time.Since(start).Seconds(), f.jsonOut)
}

// check checks the combination of flags and the number of arguments.
func (f *makeFlags) check(nargs int) error {
	switch {
	case f.part != "" && f.merge:
		return fmt.Errorf("%w: --part and --merge are two steps: give one", errUsage)
	case f.merge && nargs == 0:
		return fmt.Errorf("%w: --merge wants the part files (FILE.I-of-N.mkpart) as arguments", errUsage)
	case !f.merge && nargs != 1:
		return fmt.Errorf("%w: want exactly one FILE, got %d arguments", errUsage, nargs)
	case f.part != "" && f.signKey != "":
		return fmt.Errorf("%w: --sign-key signs the .torrent and .zsync: give it to --merge, not --part", errUsage)
	}
	return nil
}

// sourceDateEpoch returns the clock for the torrent's creation date: SOURCE_DATE_EPOCH when
// set (https://reproducible-builds.org/specs/source-date-epoch/), so that a make and a merge
// run at different times write the same bytes; else nil, the time of the make.
func sourceDateEpoch() (func() time.Time, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return nil, nil
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q: want a non-negative integer, seconds since 1970-01-01 UTC", v)
	}
	t := time.Unix(secs, 0)
	return func() time.Time { return t }, nil
}

// makeOne is a one-pass make of file, with a progress bar on stderr unless --json.
func makeOne(ctx context.Context, file string, opt *manifest.MakeOptions, jsonOut bool, stderr io.Writer) (*manifest.MakeResult, error) {
	var bar *progress.Bar
	if st, err := os.Stat(file); err == nil && !jsonOut {
		bar = progress.New(stderr, filepath.Base(file), st.Size())
		opt.OnProgress = bar.Set
	}
	res, err := manifest.Make(ctx, file, *opt)
	bar.Done()
	return res, err
}

// printMade prints what make or merge wrote: a JSON object with --json, a line on a terminal.
func printMade(stdout io.Writer, res *manifest.MakeResult, sigPath string, key *sign.PrivateKey, secs float64, jsonOut bool) error {
	if jsonOut {
		out := struct {
			*manifest.MakeResult
			Sig     string  `json:"sig,omitempty"`
			Seconds float64 `json:"seconds"`
		}{res, sigPath, secs}
		return json.NewEncoder(stdout).Encode(out)
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
	return path, manifest.WriteFile(path, sig)
}
