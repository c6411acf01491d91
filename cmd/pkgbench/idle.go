package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/pkgsync/pkgsync/internal/versions"
)

// The idle benchmark: what a seeder costs while nobody downloads (issue 20's "an idle seeder of
// 100 packages with no peers uses < 1% of a core"). One `pkgsync seed` process seeds --packages
// small packages (each with its .zsync, so twice as many torrents), announcing to a tracker of its
// own that lists no other peer; once it says where it listens, its CPU time over --seconds is read
// from /proc and reported as a share of one core.

func benchIdle(ctx context.Context, args []string) error { return runIdleBench(ctx, args, os.Stdout) }

// runIdleBench is the idle benchmark with its table written to w.
func runIdleBench(ctx context.Context, args []string, w io.Writer) error {
	fs := newFlags("idle")
	packages := fs.Int("packages", 100, "packages to seed")
	seconds := fs.Duration("seconds", 60*time.Second, "how long to measure, after start-up")
	fs.Parse(args)
	if *packages < 1 || *seconds <= 0 {
		return fmt.Errorf("--packages and --seconds must be positive")
	}
	dir, bin, err := workdir(ctx, "idle")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tr, trackerURL, err := startListening(ctx, bin, regexp.MustCompile(`listening on (http://[^/\s]+)/`), "tracker", "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { tr.Process.Kill(); tr.Wait() }()
	var torrents []string
	for i := range *packages {
		pkg := filepath.Join(dir, fmt.Sprintf("pkg%03d.bin", i))
		if err := os.WriteFile(pkg, versions.Random(uint64(i)+1, 256<<10), 0o644); err != nil {
			return err
		}
		mk := exec.CommandContext(ctx, bin, "make", pkg, "--url", "http://127.0.0.1:9/"+filepath.Base(pkg), "--tracker", trackerURL+"/announce")
		if out, err := mk.CombinedOutput(); err != nil {
			return fmt.Errorf("pkgsync make: %w\n%s", err, out)
		}
		torrents = append(torrents, pkg+".torrent")
	}
	seed, _, err := startListening(ctx, bin, regexp.MustCompile(`seed: (listening on \S+);`), append([]string{"seed", "--listen", "127.0.0.2:0"}, torrents...)...)
	if err != nil {
		return err
	}
	defer func() { seed.Process.Kill(); seed.Wait() }()
	time.Sleep(2 * time.Second) // the first announces
	cpu0, t0 := procCPU(seed.Process.Pid), time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*seconds):
	}
	cpu, wall := procCPU(seed.Process.Pid)-cpu0, time.Since(t0)
	fmt.Fprintf(w, "\n### idle: one seeder of %d packages (%d torrents with their .zsync), no peers\n\n", *packages, 2**packages)
	fmt.Fprintln(w, "| measured | CPU | share of a core |")
	fmt.Fprintln(w, "| ---: | ---: | ---: |")
	fmt.Fprintf(w, "| %.0f s | %.2f s | %.2f%% |\n", wall.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/wall.Seconds())
	return nil
}
