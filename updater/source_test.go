package updater

import (
	"path/filepath"
	"testing"
)

func TestLocationResolve(t *testing.T) {
	tests := []struct {
		base, ref, want string
		isURL           bool
	}{
		{"http://o/pkgs/pkg.tar.torrent", "pkg.tar.zsync", "http://o/pkgs/pkg.tar.zsync", true},
		{"http://o/pkgs/pkg.tar.torrent", "../other/pkg.zsync", "http://o/other/pkg.zsync", true},
		{"http://o/pkgs/pkg.tar.torrent", "https://mirror/x.zsync", "https://mirror/x.zsync", true},
		{"/srv/pkgs/pkg.tar.torrent", "pkg.tar.zsync", "/srv/pkgs/pkg.tar.zsync", false},
		{"pkg.tar.torrent", "pkg.tar.zsync", "pkg.tar.zsync", false},
		{"/srv/pkgs/pkg.tar.torrent", "/abs/pkg.zsync", "/abs/pkg.zsync", false},
		{"/srv/pkgs/pkg.tar.torrent", "http://o/pkg.tar", "http://o/pkg.tar", true},
		{"http://o/a/b.zsync", "b", "http://o/a/b", true},
	}
	for _, tt := range tests {
		got := parseLocation(tt.base).resolve(tt.ref)
		if got.raw != filepath.FromSlash(tt.want) && got.raw != tt.want || (got.url != nil) != tt.isURL {
			t.Errorf("resolve(%q, %q) = %q (url %v), want %q (url %v)", tt.base, tt.ref, got.raw, got.url != nil, tt.want, tt.isURL)
		}
	}
}

func TestSourceKind(t *testing.T) {
	if !isZsync([]byte("zsync: 0.6.2\nFilename: x\n")) || isZsync([]byte("d8:announce")) {
		t.Fatal("isZsync misreads")
	}
	if siblingZsync("/a/pkg.tar.torrent") != "/a/pkg.tar.zsync" || siblingZsync("http://o/p.torrent") != "http://o/p.zsync" {
		t.Fatal("siblingZsync")
	}
	for _, s := range []string{"ftp://x/y", "x/y.torrent", "/abs/y", "http:/nohost"} {
		if parseLocation(s).url != nil {
			t.Errorf("%q parsed as a URL", s)
		}
	}
}
