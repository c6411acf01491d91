package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/store"
)

// newOrigin returns the server for serve's argument: a folder, or a store's URL.
func newOrigin(ctx context.Context, arg string, opt origin.Options, cacheDir string) (*origin.Server, error) {
	if !store.IsURL(arg) {
		return origin.New(arg, opt)
	}
	st, key, err := store.Open(ctx, arg, store.Options{})
	if err != nil {
		return nil, err
	}
	if cacheDir == "" && opt.AutoMake {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("no --cache-dir and no user cache folder: %w", err)
		}
		cacheDir = filepath.Join(base, "pkgsync", "serve")
	}
	if cacheDir != "" {
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("--cache-dir: %w", err)
		}
	}
	return origin.NewStore(st, key, opt, cacheDir)
}
