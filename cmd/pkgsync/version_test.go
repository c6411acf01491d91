package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, c := range []struct {
		name    string
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"go install @tag", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.2"}},
			"pkgsync v1.4.2 commit unknown go1.26.8"},
		{"go install @commit", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206191200-0276348e1234"}},
			"pkgsync v0.0.0-20261206191200-0276348e1234 commit 0276348e1234 go1.26.8"},
		{"pseudo-version after a tag", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.3-0.20261206191200-0276348e1234+incompatible"}},
			"pkgsync v1.4.3-0.20261206191200-0276348e1234+incompatible commit 0276348e1234 go1.26.8"},
		{"tag that only looks like one", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.0.0-rc-0276348e1234"}},
			"pkgsync v1.0.0-rc-0276348e1234 commit unknown go1.26.8"},
		{"go build in the repository", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("0276348e1234aaaabbbbccccddddeeeeffff0000", "false")},
			"pkgsync devel commit 0276348e1234aaaabbbbccccddddeeeeffff0000 go1.26.8"},
		{"uncommitted changes", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("0276348e1234aaaabbbbccccddddeeeeffff0000", "true")},
			"pkgsync devel commit 0276348e1234aaaabbbbccccddddeeeeffff0000-modified go1.26.8"},
		{"ldflags win", "v2.0.0", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.2"}, Settings: vcs("0276348e1234aaaabbbbccccddddeeeeffff0000", "false")},
			"pkgsync v2.0.0 commit 0276348e1234aaaabbbbccccddddeeeeffff0000 go1.26.8"},
		{"no build info", "", nil, "pkgsync devel commit unknown unknown-go"},
	} {
		if got := versionLine(c.ldflags, c.bi); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// TestVersionCommand runs `pkgsync version` on the test binary's own build info.
func TestVersionCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "pkgsync ") || !strings.Contains(out.String(), " commit ") {
		t.Errorf("pkgsync version printed %q", out.String())
	}
}
