package updater

import "testing"

func TestSignatureOf(t *testing.T) {
	tests := []struct{ src, want string }{
		{"/srv/pkgs/pkg.tar.torrent", "/srv/pkgs/pkg.tar.sig"},
		{"pkg.tar.zsync", "pkg.tar.sig"},
		{"pkg.torrent.zsync", "pkg.torrent.sig"},
		{"/srv/pkgs/latest", "/srv/pkgs/latest.sig"},
		{"http://origin/pkgs/pkg.tar.torrent", "http://origin/pkgs/pkg.tar.sig"},
		{"https://origin:8443/pkgs/pkg.tar.zsync?token=abc", "https://origin:8443/pkgs/pkg.tar.sig?token=abc"},
		{"http://origin/pkgs/my%20pkg.tar.torrent", "http://origin/pkgs/my%20pkg.tar.sig"},
	}
	for _, tt := range tests {
		if got := signatureOf(parseLocation(tt.src)).raw; got != tt.want {
			t.Errorf("signatureOf(%q) = %q, want %q", tt.src, got, tt.want)
		}
	}
}
