package main

import (
	"log/slog"
	"os"
)

// nodeLogger returns, when PKGSYNC_TEST_LOG is set, a debug logger to stderr for node i of an
// in-process swarm test (storeSwarm, runNodes), so that a run that sent the origin too much can be
// replayed with every origin run and result in view; nil (quiet) otherwise.
func nodeLogger(i int) *slog.Logger {
	if os.Getenv("PKGSYNC_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
}
