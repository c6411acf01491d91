package updater

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/store"
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

// TestResolveStaysOnTheWeb checks that a reference in a fetched file never names a local path:
// against a URL, what does not resolve to an http(s) URL with a host refuses to be read.
func TestResolveStaysOnTheWeb(t *testing.T) {
	base := parseLocation("http://o/pkgs/pkg.tar.torrent")
	for _, tc := range []struct{ ref, want string }{
		{"pkg.tar.zsync", "http://o/pkgs/pkg.tar.zsync"},
		{"../../../../etc/passwd", "http://o/etc/passwd"},
		{"//mirror/x.zsync", "http://mirror/x.zsync"},
		{"https://m/x.zsync", "https://m/x.zsync"},
		{"x%zz", ""},
		{"file:///etc/passwd", ""},
		{"ftp://h/x", ""},
		{"//@", ""},
	} {
		got := base.resolve(tc.ref)
		if tc.want != "" {
			if got.url == nil || got.raw != tc.want {
				t.Errorf("resolve(%q) = %q (url %v, bad %v), want %q", tc.ref, got.raw, got.url, got.bad, tc.want)
			}
			continue
		}
		if got.bad == nil {
			t.Errorf("resolve(%q) = %q, want a location that refuses to be read", tc.ref, got.raw)
			continue
		}
		if _, err := got.read(t.Context(), nil, nil, store.Options{}, 1<<20); err == nil || !strings.Contains(err.Error(), base.raw) {
			t.Errorf("reading resolve(%q): %v, want an error naming %s", tc.ref, err, base.raw)
		}
	}
}

// TestResolveStores checks the rule for store URLs: a file from the web cannot name a store, a
// file from a store can name files of that store (relative or absolute) and the web, and a local
// file (the user's own) can name any store.
func TestResolveStores(t *testing.T) {
	for _, tc := range []struct {
		base, ref, want string // want "": refused
	}{
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "pkg.tar.zsync", "webhdfs://nn:9870/p/pkg.tar.zsync"},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "/q/pkg.tar", "webhdfs://nn:9870/q/pkg.tar"},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "webhdfs://nn:9870/q/x", "webhdfs://nn:9870/q/x"},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "http://o/pkg.tar", "http://o/pkg.tar"},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "webhdfs://other:9870/q/x", ""},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "//other:9870/q/x", ""},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "swebhdfs://nn:9870/q/x", ""},
		{"http://o/pkgs/pkg.tar.torrent", "webhdfs://nn:9870/p/pkg.tar", ""},
		{"/srv/pkg.tar.torrent", "webhdfs://nn:9870/p/pkg.tar", "webhdfs://nn:9870/p/pkg.tar"},
	} {
		got := parseLocation(tc.base).resolve(tc.ref)
		if tc.want == "" {
			if got.bad == nil {
				t.Errorf("resolve(%q, %q) = %q, want a refusal", tc.base, tc.ref, got.raw)
			}
			continue
		}
		if got.bad != nil || got.raw != tc.want || got.url == nil {
			t.Errorf("resolve(%q, %q) = %q (bad %v), want %q", tc.base, tc.ref, got.raw, got.bad, tc.want)
		}
	}
}
