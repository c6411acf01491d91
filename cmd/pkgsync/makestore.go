package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"time"

	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/sign"
	"github.com/pkgsync/pkgsync/store"
)

// runMakeStore is make for a package in a store: read without a local copy, outputs beside it
// (Put) or in opt.OutDir.
func runMakeStore(ctx context.Context, raw string, opt manifest.MakeOptions, alignSet bool, key *sign.PrivateKey, keyPath string, jsonOut bool, stdout, stderr io.Writer) error {
	st, objKey, err := store.Open(ctx, raw, store.Options{})
	if err != nil {
		return err
	}
	if bs, ok := st.(store.BlockSizer); ok && !alignSet {
		if opt.Align, err = bs.BlockSize(ctx, objKey); err != nil {
			return err
		}
	}
	info, err := st.Stat(ctx, objKey)
	if err != nil {
		return err
	}
	var bar *progress.Bar
	if !jsonOut {
		bar = progress.New(stderr, path.Base(objKey), info.Size)
		opt.OnProgress = bar.Set
	}
	start := time.Now()
	made, err := store.Make(ctx, st, objKey, opt)
	bar.Done()
	if err != nil {
		return err
	}
	var sig []byte
	if key != nil {
		if sig, err = signMade(key, keyPath, made); err != nil {
			return err
		}
	}
	res := made.Result
	res.Package = raw
	sigAt, err := writeMade(ctx, st, raw, objKey, opt.OutDir, made, sig, &res)
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if jsonOut {
		return json.NewEncoder(stdout).Encode(struct {
			manifest.MakeResult
			Sig     string  `json:"sig,omitempty"`
			Seconds float64 `json:"seconds"`
		}{res, sigAt, secs})
	}
	if progress.IsTerminal(stdout) {
		fmt.Fprintf(stdout, "wrote %s and %s (%s, %d pieces of %s, %d blocks of %d) in %.2fs\n",
			res.Torrent, res.Zsync, progress.Bytes(res.Length), res.Pieces, progress.Bytes(res.PieceSize), res.Blocks, res.BlockSize, secs)
	}
	return nil
}

// writeMade writes the .zsync, then the .torrent (and the .sig) into outDir, or beside the
// object in the store when outDir is "". It fills in res's file names and returns the .sig's.
func writeMade(ctx context.Context, st store.Store, raw, objKey, outDir string, made *store.Made, sig []byte, res *manifest.MakeResult) (string, error) {
	files := []struct {
		ext  string
		data []byte
	}{{".zsync", made.Zsync}, {".torrent", made.Torrent}, {".sig", sig}}
	var names [3]string
	for i, f := range files {
		if f.data == nil {
			continue
		}
		if outDir != "" {
			names[i] = filepath.Join(outDir, path.Base(objKey)+f.ext)
			if err := manifest.WriteFile(names[i], f.data); err != nil {
				return "", err
			}
			continue
		}
		names[i] = raw + f.ext
		if err := st.Put(ctx, objKey+f.ext, bytes.NewReader(f.data), int64(len(f.data))); err != nil {
			return "", fmt.Errorf("writing %s beside the package (give -o to write it here): %w", names[i], err)
		}
	}
	res.Zsync, res.Torrent = names[0], names[1]
	return names[2], nil
}

// signMade is signPackage for outputs in memory: a signature over the info hash and the
// .zsync's SHA-256.
func signMade(key *sign.PrivateKey, keyPath string, made *store.Made) ([]byte, error) {
	t, err := manifest.ParseTorrent(made.Torrent)
	if err != nil {
		return nil, err
	}
	stmt := sign.Statement{File: t.Info.Name, InfoHash: t.InfoHash, ZsyncSHA256: sha256.Sum256(made.Zsync)}
	sig, err := sign.Sign(key, stmt, "verify with "+filepath.Base(keyPath)+".pub")
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", t.Info.Name, err)
	}
	return sig, nil
}
