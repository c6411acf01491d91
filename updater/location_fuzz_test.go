package updater

import (
	"testing"

	"github.com/pkgsync/pkgsync/store"
)

// FuzzResolve feeds location.resolve the references a fetched .torrent ("zsync-url") and a
// fetched .zsync ("URL:") carry, against a base that is a URL or a local path: it must never
// panic; a location parseLocation calls a URL is an http(s) URL with a host; a reference that is
// such a URL is taken as it is; and against a URL, every reference gives an http(s) URL with a
// host or a location that refuses to be read: a fetched file cannot point the updater at a
// local path (the fuzzer's findings "x%zz", "file:///etc/passwd" and "//@" did before), and a
// store URL it gives is in the base's own store (same scheme and host).
func FuzzResolve(f *testing.F) {
	for _, s := range [][2]string{
		{"http://o/pkgs/pkg.tar.torrent", "pkg.tar.zsync"},
		{"http://o/pkgs/pkg.tar.torrent", "../../../../etc/passwd"},
		{"https://o:8443/a/b?x=1", "//mirror/x.zsync"},
		{"http://o/pkgs/pkg.tar.torrent", "/abs/pkg.zsync"},
		{"http://o/pkgs/pkg.tar.torrent", "file:///etc/passwd"},
		{"/srv/pkgs/pkg.tar.torrent", "pkg.tar.zsync"},
		{"/srv/pkgs/pkg.tar.torrent", "http://o/pkg.tar"},
		{"pkg.tar.torrent", "../x"},
		{"http:/nohost", "y"},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "pkg.tar.zsync"},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "webhdfs://other:9870/x"},
		{"http://o/pkgs/pkg.tar.torrent", "webhdfs://nn:9870/p/pkg.tar"},
		{"webhdfs://nn:9870/p/pkg.tar.torrent", "//other/x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, base, ref string) {
		b := parseLocation(base)
		checkLocation(t, base, b)
		got := b.resolve(ref)
		if b.url == nil {
			checkLocation(t, ref, got) // against a local path, only a full URL is a URL
		}
		if r := parseLocation(ref); r.url != nil && got.raw != ref {
			t.Fatalf("URL %q resolved against %q gave %q", ref, base, got.raw)
		}
		if b.url != nil && got.url == nil && got.bad == nil {
			t.Fatalf("%q resolved against the URL %q gave the local path %q", ref, base, got.raw)
		}
		checkLocation(t, ref, got)
		if b.url != nil && got.store && (!b.store || !b.sameStore(got.url)) {
			t.Fatalf("%q resolved against %q gave %q, in another store", ref, base, got.raw)
		}
	})
}

func checkLocation(t *testing.T, from string, l location) {
	t.Helper()
	if l.url == nil {
		return
	}
	if l.store && store.IsURL(l.raw) && l.url.Host != "" {
		return
	}
	if (l.url.Scheme != "http" && l.url.Scheme != "https") || l.url.Host == "" {
		t.Fatalf("%q gave the URL %q (scheme %q, host %q)", from, l.raw, l.url.Scheme, l.url.Host)
	}
}
