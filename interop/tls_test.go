package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/internal/nginxtest"
	"github.com/pkgsync/pkgsync/internal/proclab"
	"github.com/pkgsync/pkgsync/internal/testtool"
)

// TestNginxMutualTLS updates from the stock nginx serving https with ssl_verify_client on and a
// private CA made by the test: with --ca-file, --client-cert and --client-key, update builds the
// exact file from the .torrent (over HTTP alone, and through the swarm path, whose origin
// ranges use the same client) and from the .zsync; without a client certificate, with one of
// another CA, or without --ca-file it fails with status 1, an error naming the URL and saying
// why, and no output.
func TestNginxMutualTLS(t *testing.T) {
	l := newLab(t)
	certs := testtool.MakeCerts(t, l.Mkdir("certs"))
	stranger := testtool.MakeCerts(t, l.Mkdir("stranger")) // a client certificate of another CA
	v1, v2 := versions()
	pub := l.Mkdir("pub")
	l.Write(v2, "pub", "pkg.bin")
	old := l.Write(v1, "old.bin")
	base := nginxtest.StartTLS(t, pub, nginxtest.TLS{Cert: certs.ServerCert, Key: certs.ServerKey, ClientCA: certs.CA})
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("nginx serves %s, want https", base)
	}
	l.makeTorrent(filepath.Join(pub, "pkg.bin"), "--url", base+"/pkg.bin")
	torrent, zsync := base+"/pkg.bin.torrent", base+"/pkg.bin.zsync"
	trust := []string{"--ca-file", certs.CA}
	identity := []string{"--client-cert", certs.ClientCert, "--client-key", certs.ClientKey}

	ok := []struct {
		name   string
		source string
		extra  []string
	}{
		{"torrent over HTTP", torrent, []string{"--no-swarm"}},
		{"torrent through the swarm path", torrent, nil},
		{"zsync", zsync, nil},
	}
	for i, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			l := &lab{&proclab.Lab{T: t, Dir: l.Dir, Ctx: l.Ctx}}
			extra := append(append(append([]string{}, tc.extra...), trust...), identity...)
			n := l.update("ok"+string(rune('a'+i)), "127.0.0.1", tc.source, old, extra...)
			s := l.results([]*node{n}, v2)[0]
			if s.BytesFromOrigin == 0 || s.BytesReused == 0 {
				t.Errorf("%+v: want bytes reused from v1 and the rest from nginx", s)
			}
		})
	}

	refused := []struct {
		name  string
		extra []string
		want  string
	}{
		{"no client certificate", trust, "No required SSL certificate was sent"},
		{"client certificate of another CA", append(append([]string{}, trust...),
			"--client-cert", stranger.ClientCert, "--client-key", stranger.ClientKey), "SSL certificate error"},
		{"no CA file", identity, "certificate signed by unknown authority"},
	}
	for i, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			l := &lab{&proclab.Lab{T: t, Dir: l.Dir, Ctx: l.Ctx}}
			n := l.update("refused"+string(rune('a'+i)), "127.0.0.1", torrent, old, tc.extra...)
			if err := n.p.Wait(l.Ctx); err == nil {
				t.Fatal("update succeeded")
			}
			code := n.p.Cmd.ProcessState.ExitCode()
			errs := n.p.Stderr.String()
			if code != 1 || !strings.Contains(errs, torrent) || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant status 1 and an error naming %s and saying %q", code, proclab.Tail(errs), torrent, tc.want)
			}
			for _, p := range []string{n.out, n.out + ".part"} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s exists after a refused update", p)
				}
			}
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			t.Logf("%s", lines[len(lines)-1])
		})
	}
}
