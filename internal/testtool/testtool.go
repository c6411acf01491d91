// Package testtool lets tests depend on stock external tools (zsyncmake, aria2c, nginx, ...).
//
// On a developer's machine a missing tool skips the test with a note; under CI (CI=true) it fails
// the test, because .ci/run installs every tool and a skip there would hide a broken install step.
package testtool

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Need returns the path of each named program, in order. A missing one skips the test, or fails it
// when the CI environment variable is set.
func Need(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, 0, len(names))
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; .ci/run must install it", n)
			}
			t.Skipf("%s is not installed (CI installs it): %v", n, err)
		}
		paths = append(paths, p)
	}
	return paths
}

// NeedRoot skips (or under CI fails) a test that needs root, for example for ip netns.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root; CI runs as root")
		}
		t.Skip("needs root")
	}
}

// ZsyncmakeTable runs the stock zsyncmake (at path bin) with block size bs on data and returns
// what ReadZsyncTable reads from its output.
func ZsyncmakeTable(t testing.TB, bin string, data []byte, bs int) (rsumBytes, checksumBytes int, table []byte) {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "data.zsync")
	cmd := exec.Command(bin, "-b", strconv.Itoa(bs), "-o", out, in)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zsyncmake: %v\n%s", err, msg)
	}
	return ReadZsyncTable(t, out)
}

// ReadZsyncTable returns the rsum and checksum lengths from the Hash-Lengths header of a .zsync
// written by the stock zsyncmake, and the block table that follows the header. It is a minimal,
// independent parser, so that tests of the checksums do not lean on package zsyncfile.
func ReadZsyncTable(t testing.TB, path string) (rsumBytes, checksumBytes int, table []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: header not ended by an empty line: %v", path, err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Hash-Lengths: "); ok {
			var seq int
			if _, err := fmt.Sscanf(v, "%d,%d,%d", &seq, &rsumBytes, &checksumBytes); err != nil {
				t.Fatalf("%s: Hash-Lengths %q: %v", path, v, err)
			}
		}
	}
	if rsumBytes == 0 || checksumBytes == 0 {
		t.Fatalf("%s: no Hash-Lengths header", path)
	}
	table, err = io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	return rsumBytes, checksumBytes, table
}
