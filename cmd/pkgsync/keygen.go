package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/pkgsync/pkgsync/sign"
)

const keygenSynopsis = `Usage: pkgsync keygen -o KEY

Makes an ed25519 key pair for signing packages: KEY, the secret key (mode 0600, no passphrase:
the file's permissions protect it), and KEY.pub, the public key to hand to consumers. Existing
files are never overwritten. The files are signify's (OpenBSD signify, signify-openbsd on
Debian), so signify can use the keys and check pkgsync's signatures.

  pkgsync keygen -o /etc/pkgsync/release.key
  pkgsync make pkg.tar --url http://origin/pkgs/pkg.tar --sign-key /etc/pkgsync/release.key
  pkgsync update --old v1.tar --trust-key release.key.pub http://origin/pkgs/pkg.tar.torrent`

func runKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", keygenSynopsis, stdout)
	var out string
	fs.StringVarP(&out, "output", "o", "", "where to write the secret key; the public key goes to this path + .pub")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: keygen takes no arguments, got %q", errUsage, fs.Args())
	}
	if out == "" {
		return fmt.Errorf("%w: -o KEY is required", errUsage)
	}
	k, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := sign.WriteKeyPair(out, k); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (secret) and %s.pub (public), key %s\n", out, out, k.ID)
	return nil
}
