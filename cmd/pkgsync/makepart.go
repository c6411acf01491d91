package main

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/store"
)

var partSpec = regexp.MustCompile(`^([0-9]+)/([0-9]+)$`)

// parsePart parses --part I/N; the range of I and N is manifest's to check.
func parsePart(s string) (i, n int, err error) {
	m := partSpec.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("%w: --part %q: want I/N, e.g. 0/8 (parts count from 0)", errUsage, s)
	}
	i, err1 := strconv.Atoi(m[1])
	n, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: --part %q: number out of range", errUsage, s)
	}
	return i, n, nil
}

// partJSON is the --json summary of a --part run.
type partJSON struct {
	PartFile string  `json:"part_file"`
	Package  string  `json:"package"`
	Part     int     `json:"part"`
	Parts    int     `json:"parts"`
	Offset   int64   `json:"offset"`
	End      int64   `json:"end"`
	Pieces   int     `json:"pieces"`
	Blocks   int     `json:"blocks"`
	Seconds  float64 `json:"seconds"`
}

// runPart hashes stretch I of N of file and writes its part file.
func runPart(ctx context.Context, file string, f *makeFlags, stdout, stderr io.Writer) error {
	i, n, err := parsePart(f.part)
	if err != nil {
		return err
	}
	if store.IsURL(file) && f.opt.OutDir == "" {
		return fmt.Errorf("%w: --part of %s writes its part file into a local folder: give -o DIR", errUsage, file)
	}
	start := time.Now()
	src, err := openPackage(ctx, file)
	if err != nil {
		return err
	}
	defer src.Close()
	file = src.Label
	opt := f.opt
	off, end, err := opt.PartStretch(src.Size, i, n)
	if err != nil {
		return err
	}
	var bar *progress.Bar
	if !f.jsonOut {
		bar = progress.New(stderr, fmt.Sprintf("%s %d/%d", src.Name, i, n), end-off)
		opt.OnProgress = bar.Set
	}
	p, err := manifest.MakePart(ctx, src, opt, i, n)
	bar.Done()
	if err != nil {
		return err
	}
	dir := opt.OutDir
	if dir == "" {
		dir = filepath.Dir(file)
	}
	path := filepath.Join(dir, manifest.PartFileName(src.Name, i, n))
	if err := manifest.WritePartFile(path, p); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if f.jsonOut {
		return json.NewEncoder(stdout).Encode(partJSON{path, file, i, n, p.Off, p.End, len(p.Pieces) / sha1.Size, len(p.Blocks), secs})
	}
	if progress.IsTerminal(stdout) {
		fmt.Fprintf(stdout, "wrote %s (part %d/%d: bytes %d to %d, %d pieces, %d blocks) in %.2fs\n",
			path, i, n, p.Off, p.End, len(p.Pieces)/sha1.Size, len(p.Blocks), secs)
	}
	return nil
}

// runMerge reads the part files, checks them, and merges them into the .torrent and .zsync,
// reading the package the parts name once for the whole-file SHA-1.
func runMerge(ctx context.Context, files []string, opt *manifest.MakeOptions, jsonOut bool, stderr io.Writer) (*manifest.MakeResult, error) {
	parts := make([]*manifest.Part, 0, len(files))
	for _, file := range files {
		p, err := manifest.ReadPartFile(file)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	// Every part file is checked before the package is opened: a missing part is reported as
	// such, not as whatever the package's read would run into.
	parts, err := manifest.CheckParts(parts)
	if err != nil {
		return nil, err
	}
	if store.IsURL(parts[0].Source) && opt.OutDir == "" {
		return nil, fmt.Errorf("%w: --merge of parts of %s writes the .torrent and .zsync into a local folder: give -o DIR", errUsage, parts[0].Source)
	}
	src, err := openPackage(ctx, parts[0].Source)
	if err != nil {
		return nil, fmt.Errorf("reading the package for the whole-file SHA-1 (named by %s): %w", parts[0].File, err)
	}
	defer src.Close()
	if opt.OutDir == "" {
		opt.OutDir = filepath.Dir(parts[0].Source)
	}
	var bar *progress.Bar
	if !jsonOut {
		bar = progress.New(stderr, src.Name+" SHA-1", src.Size)
		opt.OnProgress = bar.Set
	}
	res, err := manifest.Merge(ctx, src, parts, *opt)
	bar.Done()
	return res, err
}

// openPackage opens the package a part is made of or merged from: a local file, by its absolute
// path (the merge reads it where the part file says, from any working folder), or an object in
// a store, by its URL.
func openPackage(ctx context.Context, name string) (*manifest.Source, error) {
	if store.IsURL(name) {
		st, key, err := store.Open(ctx, name, store.Options{})
		if err != nil {
			return nil, err
		}
		return store.Source(ctx, st, key)
	}
	if abs, err := filepath.Abs(name); err == nil {
		name = abs
	}
	return manifest.OpenFile(name)
}
