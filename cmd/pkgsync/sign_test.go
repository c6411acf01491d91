package main

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/sign"
)

// keygen makes a key pair in dir and returns the secret key's path (the public key is path.pub).
func keygen(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	mustPkgsync(t, "keygen", "-o", path)
	return path
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "release.key")
	out := mustPkgsync(t, "keygen", "-o", key)
	priv, err := sign.ReadPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sign.ReadPublicKey(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if priv.ID != pub.ID || !strings.Contains(out, priv.ID.String()) {
		t.Fatalf("key ids: secret %s, public %s, printed %q", priv.ID, pub.ID, out)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, err %v; want 0600", key, st.Mode().Perm(), err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"existing key", []string{"-o", key}, 1, key + " already exists"},
		{"no -o", nil, 2, "-o KEY is required"},
		{"argument", []string{"-o", filepath.Join(dir, "k2"), "extra"}, 2, "no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := pkgsync(t, append([]string{"keygen"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q", code, errs, tt.code, tt.want)
			}
		})
	}
	// The refused run left the existing pair as it was.
	if again, err := sign.ReadPrivateKey(key); err != nil || again.ID != priv.ID {
		t.Fatalf("the existing key changed: %v", err)
	}
}

func TestMakeSignKey(t *testing.T) {
	dir := t.TempDir()
	key := keygen(t, dir, "release.key")
	pkg := filepath.Join(dir, "pkg.tar")
	writeFile(t, pkg, randomBytes(200, 1<<20+3))
	outDir := filepath.Join(dir, "manifests")
	os.Mkdir(outDir, 0o755)
	mustPkgsync(t, "make", pkg, "--url", "http://origin.invalid/pkg.tar", "--sign-key", key, "-o", outDir)
	data, err := os.ReadFile(filepath.Join(outDir, "pkg.tar.sig"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := sign.ReadPublicKey(key + ".pub")
	if _, err := (sign.Keyring{pub}).Verify(s); err != nil {
		t.Fatal(err)
	}
	traw, _ := os.ReadFile(filepath.Join(outDir, "pkg.tar.torrent"))
	tor, err := manifest.ParseTorrent(traw)
	if err != nil {
		t.Fatal(err)
	}
	zraw, _ := os.ReadFile(filepath.Join(outDir, "pkg.tar.zsync"))
	want := sign.Statement{File: "pkg.tar", InfoHash: tor.InfoHash, ZsyncSHA256: sha256.Sum256(zraw)}
	if s.Statement != want || s.Comment != "verify with release.key.pub" {
		t.Fatalf("the .sig says %+v (comment %q), want %+v", s.Statement, s.Comment, want)
	}

	// A key that is not a secret key fails before FILE is read, naming the key file.
	code, _, errs := pkgsync(t, "make", pkg, "--sign-key", key+".pub", "-o", outDir)
	if code != 1 || !strings.Contains(errs, key+".pub") || !strings.Contains(errs, "not a secret key") {
		t.Fatalf("make with a public key as --sign-key: exit %d, %q", code, errs)
	}
}

// tamper flips one byte of path at the offset that at returns for its content.
func tamper(t *testing.T, path string, at func([]byte) int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := at(b)
	if i < 0 || i >= len(b) {
		t.Fatalf("%s: nothing to tamper with", path)
	}
	b[i] ^= 0x01
	writeFile(t, path, b)
}

// inPieces is the offset of a byte inside the torrent's piece hashes: the torrent stays valid,
// its info hash changes.
func inPieces(b []byte) int {
	i := bytes.Index(b, []byte("6:pieces"))
	if i < 0 {
		return -1
	}
	j := bytes.IndexByte(b[i+8:], ':')
	return i + 8 + j + 1 + 7
}

// inBlockTable is the offset of a byte in the .zsync's block checksums: the control file stays
// valid, its SHA-256 changes.
func inBlockTable(b []byte) int {
	i := bytes.Index(b, []byte("\n\n"))
	if i < 0 {
		return -1
	}
	return i + 2 + 5
}

// TestUpdateTrustKey: under --trust-key, every package whose .torrent or .zsync does not match a
// valid signature by a trusted key is refused with exit status 1, a message naming the file at
// fault, and no OUT.part; signed packages update end to end, over HTTP and over the swarm, and
// without --trust-key unsigned ones still do.
func TestUpdateTrustKey(t *testing.T) {
	v1 := randomBytes(210, 1<<20+77)
	v2 := edited(v1, 211, 6)
	keys := t.TempDir()
	trusted := keygen(t, keys, "trusted.key")
	untrusted := keygen(t, keys, "untrusted.key")

	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	publishAs := func(name, key string) {
		writeFile(t, filepath.Join(pub, name), v2)
		args := []string{"make", filepath.Join(pub, name), "--url", base + name}
		if key != "" {
			args = append(args, "--sign-key", key)
		}
		mustPkgsync(t, args...)
	}
	publishAs("good.tar", trusted)
	publishAs("badtorrent.tar", trusted)
	tamper(t, filepath.Join(pub, "badtorrent.tar.torrent"), inPieces)
	publishAs("badzsync.tar", trusted)
	tamper(t, filepath.Join(pub, "badzsync.tar.zsync"), inBlockTable)
	publishAs("untrusted.tar", untrusted)
	publishAs("unsigned.tar", "")
	publishAs("garbled.tar", trusted)
	writeFile(t, filepath.Join(pub, "garbled.tar.sig"), []byte("untrusted comment: x\nnot a signature\n"))

	trust := []string{"--trust-key", trusted + ".pub"}
	tests := []struct {
		name   string
		args   []string
		source string
		want   []string // in stderr on failure; "" entries skipped
	}{
		{"good over HTTP", append(trust, "--no-swarm"), "good.tar.torrent", nil},
		{"good over the swarm", append(trust, "--seed-time=0", "--listen", "127.0.0.1:0"), "good.tar.torrent", nil},
		{"good plain .zsync", append(trust, "--no-swarm"), "good.tar.zsync", nil},
		{"good among several trusted keys", append([]string{"--trust-key", untrusted + ".pub", "--no-swarm"}, trust...), "good.tar.torrent", nil},
		{"unsigned without --trust-key", []string{"--no-swarm"}, "unsigned.tar.torrent", nil},
		{"tampered .torrent", append(trust, "--no-swarm"), "badtorrent.tar.torrent", []string{base + "badtorrent.tar.torrent", "info hash", "badtorrent.tar.sig"}},
		{"tampered .zsync", append(trust, "--no-swarm"), "badzsync.tar.torrent", []string{base + "badzsync.tar.zsync", "SHA-256", "badzsync.tar.sig"}},
		{"tampered .zsync as SOURCE", append(trust, "--no-swarm"), "badzsync.tar.zsync", []string{base + "badzsync.tar.zsync", "SHA-256"}},
		{"untrusted key", append(trust, "--no-swarm"), "untrusted.tar.torrent", []string{base + "untrusted.tar.sig", "not trusted"}},
		{"missing signature", append(trust, "--no-swarm"), "unsigned.tar.torrent", []string{base + "unsigned.tar.sig", "no signature", "404"}},
		{"malformed signature", append(trust, "--no-swarm"), "garbled.tar.torrent", []string{base + "garbled.tar.sig", "not a valid signature"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := t.TempDir()
			old := filepath.Join(node, "v1.tar")
			writeFile(t, old, v1)
			out := filepath.Join(node, "out.tar")
			args := append([]string{"update", "--old", old, "-o", out}, tt.args...)
			code, _, errs := pkgsync(t, append(args, base+tt.source)...)
			sameFile(t, old, v1)
			if tt.want == nil {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errs)
				}
				sameFile(t, out, v2)
				return
			}
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", code, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Fatalf("stderr %q does not mention %q", errs, w)
				}
			}
			for _, p := range []string{out, out + ".part"} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Fatalf("%s exists after a refused package (err %v)", p, err)
				}
			}
		})
	}
}

// TestUpdateTrustKeyNoOld: a node with nothing to rebuild from loads no .zsync (the signed
// torrent's piece hashes verify every byte); it still refuses a tampered .torrent and a missing
// signature before it writes anything.
func TestUpdateTrustKeyNoOld(t *testing.T) {
	v2 := randomBytes(220, 1<<20+5)
	keys := t.TempDir()
	trusted := keygen(t, keys, "trusted.key")
	pub := t.TempDir()
	base, _ := startOrigin(t, pub)
	for _, name := range []string{"good.tar", "badtorrent.tar"} {
		writeFile(t, filepath.Join(pub, name), v2)
		mustPkgsync(t, "make", filepath.Join(pub, name), "--url", base+name, "--sign-key", trusted)
	}
	tamper(t, filepath.Join(pub, "badtorrent.tar.torrent"), inPieces)
	os.Remove(filepath.Join(pub, "good.tar.zsync")) // not needed, so not read
	node := t.TempDir()
	out := filepath.Join(node, "good.tar")
	mustPkgsync(t, "update", "--no-swarm", "--trust-key", trusted+".pub", "-o", out, base+"good.tar.torrent")
	sameFile(t, out, v2)
	code, _, errs := pkgsync(t, "update", "--no-swarm", "--trust-key", trusted+".pub", "-o", filepath.Join(node, "bad.tar"), base+"badtorrent.tar.torrent")
	if code != 1 || !strings.Contains(errs, base+"badtorrent.tar.torrent") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	// The good update's output and its record (.good.tar.pkgsync) stay; the refused one left
	// nothing.
	if ents, _ := os.ReadDir(node); len(ents) != 2 || ents[0].Name() != ".good.tar.pkgsync" || ents[1].Name() != "good.tar" {
		t.Fatalf("files left beside the output: %v", ents)
	}
	// A key file that is not a public key is a clear error naming it.
	code, _, errs = pkgsync(t, "update", "--no-swarm", "--trust-key", trusted, "-o", out, base+"good.tar.torrent")
	if code != 1 || !strings.Contains(errs, trusted) || !strings.Contains(errs, "not a public key") {
		t.Fatalf("--trust-key with a secret key: exit %d, %q", code, errs)
	}
}
