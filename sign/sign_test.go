package sign

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustKey(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testStatement() Statement {
	st := Statement{File: "pkg.tar"}
	for i := range st.InfoHash {
		st.InfoHash[i] = byte(i)
	}
	for i := range st.ZsyncSHA256 {
		st.ZsyncSHA256[i] = byte(0xff - i)
	}
	return st
}

// TestSignifyGolden: testdata holds a key pair that signify-openbsd made (signify -G -n) and a
// .sig it made of a statement (signify -S -e). We must read all three, verify the .sig, and,
// ed25519 being deterministic, sign the same statement with the same key into the same bytes:
// so signify checks what we sign, and we check what signify signs.
func TestSignifyGolden(t *testing.T) {
	priv, err := ReadPrivateKey("testdata/signify.sec")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ReadPublicKey("testdata/signify.pub")
	if err != nil {
		t.Fatal(err)
	}
	if priv.ID != pub.ID || !bytes.Equal(priv.Public().Key, pub.Key) {
		t.Fatalf("secret key %s and public key %s are not a pair", priv.ID, pub.ID)
	}
	golden, err := os.ReadFile("testdata/pkg.tar.sig")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(golden)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Keyring{pub}).Verify(s); err != nil {
		t.Fatalf("signify's .sig: %v", err)
	}
	if s.Statement.File != "pkg.tar" || s.Comment != "verify with signify.pub" {
		t.Fatalf("parsed %+v", s)
	}
	ours, err := Sign(priv, s.Statement, s.Comment)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, golden) {
		t.Fatalf("our .sig differs from signify's:\n%s\nsignify's:\n%s", ours, golden)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	k := mustKey(t)
	path := filepath.Join(t.TempDir(), "key")
	if err := WriteKeyPair(path, k); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, path + ".pub": 0o644} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: mode %v (err %v), want %v", p, st.Mode().Perm(), err, mode)
		}
	}
	priv, err := ReadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ReadPublicKey(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if priv.ID != k.ID || !bytes.Equal(priv.Key, k.Key) || pub.ID != k.ID || !bytes.Equal(pub.Key, k.Public().Key) {
		t.Fatal("keys changed on the way through their files")
	}
	if err := WriteKeyPair(path, mustKey(t)); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwrote an existing key: %v", err)
	}
}

func TestVerify(t *testing.T) {
	signer, other := mustKey(t), mustKey(t)
	sig, err := Sign(signer, testStatement(), "verify with key.pub")
	if err != nil {
		t.Fatal(err)
	}
	// Flip one hex digit of the info hash: still well-formed, no longer what was signed.
	tampered := bytes.Replace(sig, []byte("info-hash: 00"), []byte("info-hash: 01"), 1)
	recommented := bytes.Replace(sig, []byte("verify with key.pub"), []byte("anything at all"), 1)
	tests := []struct {
		name    string
		sig     []byte
		keys    Keyring
		wantErr error
	}{
		{"good", sig, Keyring{signer.Public()}, nil},
		{"good among several", sig, Keyring{other.Public(), signer.Public()}, nil},
		{"comment is not signed", recommented, Keyring{signer.Public()}, nil},
		{"untrusted key", sig, Keyring{other.Public()}, ErrUntrusted},
		{"no trusted key", sig, nil, ErrUntrusted},
		{"tampered statement", tampered, Keyring{signer.Public()}, ErrBadSignature},
		{"key id of a trusted key, signed by another", withKeyID(t, mustSign(t, other), signer.ID), Keyring{signer.Public()}, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.sig)
			if err != nil {
				t.Fatal(err)
			}
			k, err := tt.keys.Verify(s)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify: %v, want %v", err, tt.wantErr)
			}
			if err == nil && k.ID != signer.ID {
				t.Fatalf("verified by %s, want %s", k.ID, signer.ID)
			}
			if err != nil && !strings.Contains(err.Error(), s.KeyID.String()) {
				t.Fatalf("error %q does not name the signing key %s", err, s.KeyID)
			}
		})
	}
}

func mustSign(t *testing.T, k *PrivateKey) []byte {
	t.Helper()
	sig, err := Sign(k, testStatement(), "c")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// withKeyID rewrites the key id in a .sig.
func withKeyID(t *testing.T, sig []byte, id KeyID) []byte {
	t.Helper()
	s, err := Parse(sig)
	if err != nil {
		t.Fatal(err)
	}
	s.KeyID = id
	return s.Marshal()
}

func TestParseErrors(t *testing.T) {
	good := string(mustSign(t, mustKey(t)))
	lines := strings.SplitAfter(good, "\n")
	join := func(ls ...string) []byte { return []byte(strings.Join(ls, "")) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "line 1 does not end"},
		{"no comment header", join("comment: c\n", lines[1], lines[2], lines[3], lines[4], lines[5]), "untrusted comment"},
		{"empty comment", join("untrusted comment: \n", lines[1], lines[2], lines[3], lines[4], lines[5]), "comment must be"},
		{"not base64", join(lines[0], "!!!\n", lines[2], lines[3], lines[4], lines[5]), "not base64"},
		{"a public key, not a signature", join(lines[0], string(bytes.Split(mustKey(t).Public().Marshal(), []byte("\n"))[1])+"\n", lines[2], lines[3], lines[4], lines[5]), "not an ed25519 signature"},
		{"no statement", join(lines[0], lines[1]), "line 3: want the \"pkgsync-signature\" line"},
		{"version 2", join(lines[0], lines[1], "pkgsync-signature: 2\n", lines[3], lines[4], lines[5]), "version \"2\" is not supported"},
		{"lines swapped", join(lines[0], lines[1], lines[2], lines[4], lines[3], lines[5]), "line 4: want \"file: ...\""},
		{"uppercase hex", join(lines[0], lines[1], lines[2], lines[3], lines[4][:11]+"ABCDEF"+lines[4][17:], lines[5]), "line 5: info-hash: want 40 lowercase hex digits"},
		{"short hash", join(lines[0], lines[1], lines[2], lines[3], lines[4], "zsync-sha256: 00\n"), "line 6: zsync-sha256"},
		{"path as file", join(lines[0], lines[1], lines[2], "file: ../etc/passwd\n", lines[4], lines[5]), "line 4: file"},
		{"no final newline", []byte(strings.TrimSuffix(good, "\n")), "line 6"},
		{"text after", join(good, "extra: 1\n"), "line 7: unexpected text"},
		{"CRLF", []byte(strings.ReplaceAll(good, "\n", "\r\n")), "line 1"},
		{"too large", append([]byte(good), make([]byte, MaxSize)...), "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrFormat) {
				t.Fatalf("Parse: %v, want an ErrFormat mentioning %q", err, tt.want)
			}
		})
	}
}

func TestKeyParseErrors(t *testing.T) {
	k := mustKey(t)
	sec := k.Marshal()
	pub := k.Public().Marshal()
	enc := bytes.Clone(sec) // rounds != 0: signify -G with a passphrase
	blob := decodeLine2(t, enc)
	blob[7] = 42
	enc = rearmor(blob)
	bad := decodeLine2(t, sec)
	bad[len(bad)-1] ^= 1 // the public half no longer matches the checksum
	tests := []struct {
		name  string
		parse func([]byte) error
		data  []byte
		want  error
	}{
		{"secret key as public", func(b []byte) error { _, err := ParsePublicKey(b); return err }, sec, ErrFormat},
		{"public key as secret", func(b []byte) error { _, err := ParsePrivateKey(b); return err }, pub, ErrFormat},
		{"passphrase", func(b []byte) error { _, err := ParsePrivateKey(b); return err }, enc, ErrEncrypted},
		{"checksum", func(b []byte) error { _, err := ParsePrivateKey(b); return err }, rearmor(bad), ErrFormat},
		{"trailing text", func(b []byte) error { _, err := ParsePublicKey(b); return err }, append(bytes.Clone(pub), "x\n"...), ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.parse(tt.data); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// File errors name the file.
	path := filepath.Join(t.TempDir(), "junk.pub")
	os.WriteFile(path, []byte("junk\n"), 0o644)
	if _, err := ReadPublicKey(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("ReadPublicKey: %v, want an error naming %s", err, path)
	}
}

// decodeLine2 returns the decoded base64 line of a key or signature file.
func decodeLine2(t *testing.T, file []byte) []byte {
	t.Helper()
	lines := strings.Split(string(file), "\n")
	blob, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

func rearmor(blob []byte) []byte { return armor("test", blob) }

func TestSignRefusesBadNames(t *testing.T) {
	k := mustKey(t)
	for _, name := range []string{"", "a/b", "a\nb", strings.Repeat("x", 256), "\xff"} {
		st := testStatement()
		st.File = name
		if _, err := Sign(k, st, "c"); err == nil {
			t.Errorf("signed a statement for file %q", name)
		}
	}
	if _, err := Sign(k, testStatement(), "two\nlines"); err == nil {
		t.Error("signed with a two-line comment")
	}
}
