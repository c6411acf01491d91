package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/internal/proclab"
)

// mountTmpfs mounts a tmpfs of size bytes on a new folder of the lab and unmounts it in the
// test's cleanup. It needs root: without it the test is skipped, or fails under CI=true.
func mountTmpfs(l *lab, size int64) string {
	l.T.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			l.T.Fatal("mounting a tmpfs needs root")
		}
		l.T.Skip("mounting a tmpfs needs root")
	}
	dir := l.Path("full")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.T.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		l.T.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	l.T.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			l.T.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestDiskFull updates an OUT on a tmpfs that holds the old version but not the new one beside
// it: update must fail at once, before fetching a byte, with one line naming the file and the
// file system, exit status 1, and leave OUT as it was with nothing beside it (the OUT.part it
// made holds nothing to resume from); once the disk has room, the rerun completes.
func TestDiskFull(t *testing.T) {
	s := newScene(t, "")
	base := s.baseline()
	// Room for OUT and half of the new version.
	dir := mountTmpfs(s.l, int64(len(s.v1)+len(s.v2)/2)&^4095)
	s.out = filepath.Join(dir, "pkg.bin")
	s.resetOut()
	msg := s.l.failedUpdate("update on a full disk", s.args()...)
	t.Logf("stderr: %s", msg)
	for _, want := range []string{"no space left on device", s.out + ".part", dir} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q", want)
		}
	}
	proclab.SameFile(t, s.out, s.v1)
	s.checkOld()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	// The part file the run made holds nothing to resume from: it is gone too.
	if got := strings.Join(names, " "); got != "pkg.bin" {
		t.Errorf("%s holds %q, want pkg.bin alone", dir, names)
	}
	if s.o.sent.Load() != 0 {
		t.Errorf("the origin sent %d bytes of the package to a node that had no room for it", s.o.sent.Load())
	}
	// Room again: the rerun completes.
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", 4*len(s.v2)), dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	re := s.l.mustUpdate("rerun with room", s.args()...)
	proclab.SameFile(t, s.out, s.v2)
	s.checkOld()
	t.Logf("ROW disk full: %q; files after: %q; rerun fetched %d in %d requests (an undisturbed run: %d)",
		msg, names, re.BytesFromOrigin, re.RequestsToOrigin, base.BytesFromOrigin)
}
