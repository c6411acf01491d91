package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/internal/testtool"
)

// TestPairSmoke runs the pair benchmark's smoke mode: every client once on a small package, each
// download compared with the package byte for byte (runPair fails otherwise), and the table has a
// row with figures for each. The figures themselves are not judged: the machine is shared.
func TestPairSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pkgsync and starts nginx, a tracker and four clients")
	}
	testtool.Need(t, "curl", "nginx", "aria2c")
	testtool.NeedRoot(t) // nginx's workers read the work folder as root
	if err := need(debianPython); err != nil {
		t.Fatal(err)
	}
	t.Chdir("../..") // pkgbench builds ./cmd/pkgsync from the repository root
	var out strings.Builder
	if err := runPairBench(t.Context(), []string{"--size", "4M", "--runs", "1"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"curl", "pkgsync", "aria2", "libtorrent"} {
		row := regexp.MustCompile(`(?m)^\| ` + c + ` \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| ([0-9.]+|-) \|$`)
		if !row.MatchString(out.String()) {
			t.Errorf("no row of figures for %s in:\n%s", c, out.String())
		}
	}
	floor := regexp.MustCompile(`(?m)^floor of a client that verifies every byte and writes through the page cache as curl does: curl's downloader CPU [0-9.]+ \+ SHA-1 [0-9.]+ = [0-9.]+ s/GiB \([0-9.]+ x curl\)$`)
	if !floor.MatchString(out.String()) {
		t.Errorf("no floor line in:\n%s", out.String())
	}
	load := regexp.MustCompile(`(?m)^load average \(1 min\): ([0-9.]+|n/a) at the start, ([0-9.]+|n/a) at the end$`)
	if !load.MatchString(out.String()) {
		t.Errorf("no load average line in:\n%s", out.String())
	}
}

// TestIdleSmoke runs the idle benchmark's smoke mode: a seeder of a few packages is started, found
// listening, and its CPU share over a second reported.
func TestIdleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pkgsync and starts a tracker and a seeder")
	}
	t.Chdir("../..")
	var out strings.Builder
	if err := runIdleBench(t.Context(), []string{"--packages", "3", "--seconds", "1s"}, &out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\| [0-9]+ s \| [0-9.]+ s \| [0-9.]+% \|$`).MatchString(out.String()) {
		t.Errorf("no row of figures in:\n%s", out.String())
	}
}
