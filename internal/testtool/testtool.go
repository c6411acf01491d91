// Package testtool lets tests depend on stock external tools (zsyncmake, aria2c, nginx, ...).
//
// On a developer's machine a missing tool skips the test with a note; under CI (CI=true) it fails
// the test, because .ci/run installs every tool and a skip there would hide a broken install step.
package testtool

import (
	"os"
	"os/exec"
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
