package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KeyID is signify's keynum: 8 random bytes that name a key pair, carried by its public key and
// by every signature it makes, so that a verifier knows which trusted key to try.
type KeyID [8]byte

func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// PublicKey checks signatures.
type PublicKey struct {
	ID  KeyID
	Key ed25519.PublicKey
}

// PrivateKey makes signatures.
type PrivateKey struct {
	ID  KeyID
	Key ed25519.PrivateKey
}

// Public returns the public half of k.
func (k *PrivateKey) Public() *PublicKey {
	return &PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// Errors that key and signature parsing wrap.
var (
	// ErrFormat: the file is not in the format described in the package doc.
	ErrFormat = errors.New("malformed")
	// ErrEncrypted: a signify secret key protected by a passphrase.
	ErrEncrypted = errors.New("protected by a passphrase (pkgsync reads keys made without one: pkgsync keygen, or signify -G -n)")
)

const (
	commentHeader  = "untrusted comment: "
	maxCommentLen  = 1023 // signify's COMMENTMAXLEN less its NUL
	algorithm      = "Ed"
	kdfAlgorithm   = "BK"
	publicKeyLen   = 2 + 8 + ed25519.PublicKeySize
	secretKeyLen   = 2 + 2 + 4 + 16 + 8 + 8 + ed25519.PrivateKeySize
	signatureBlob  = 2 + 8 + ed25519.SignatureSize
	maxKeyFileSize = 4096
)

// GenerateKey makes a new key pair from rand (crypto/rand.Reader outside tests).
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	k := &PrivateKey{Key: priv}
	if _, err := io.ReadFull(rand, k.ID[:]); err != nil {
		return nil, err
	}
	return k, nil
}

// Marshal returns k as a signify public key file.
func (k *PublicKey) Marshal() []byte {
	blob := make([]byte, 0, publicKeyLen)
	blob = append(blob, algorithm...)
	blob = append(blob, k.ID[:]...)
	blob = append(blob, k.Key...)
	return armor("pkgsync public key", blob)
}

// Marshal returns k as a signify secret key file without a passphrase (zero KDF rounds: the
// key is stored as it is, and the salt, which signify writes all the same, is zero).
func (k *PrivateKey) Marshal() []byte {
	blob := make([]byte, 0, secretKeyLen)
	blob = append(blob, algorithm...)
	blob = append(blob, kdfAlgorithm...)
	blob = binary.BigEndian.AppendUint32(blob, 0)
	blob = append(blob, make([]byte, 16)...)
	sum := sha512.Sum512(k.Key)
	blob = append(blob, sum[:8]...)
	blob = append(blob, k.ID[:]...)
	blob = append(blob, k.Key...)
	return armor("pkgsync secret key", blob)
}

// armor writes signify's two lines: the comment and the base64 of blob.
func armor(comment string, blob []byte) []byte {
	return []byte(commentHeader + comment + "\n" + base64.StdEncoding.EncodeToString(blob) + "\n")
}

// unarmor reads signify's two lines at the start of data and returns the comment, the decoded
// blob (which must be n bytes and start with "Ed") and what follows the second line.
func unarmor(data []byte, n int) (comment string, blob, rest []byte, err error) {
	line, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return "", nil, nil, fmt.Errorf("%w: line 1 does not end", ErrFormat)
	}
	c, ok := strings.CutPrefix(string(line), commentHeader)
	if !ok {
		return "", nil, nil, fmt.Errorf("%w: line 1 does not start with %q", ErrFormat, commentHeader)
	}
	if c == "" || len(c) > maxCommentLen || strings.ContainsAny(c, "\r\x00") {
		return "", nil, nil, fmt.Errorf("%w: line 1: the comment must be 1 to %d bytes, without CR or NUL", ErrFormat, maxCommentLen)
	}
	line, rest, ok = bytes.Cut(rest, []byte("\n"))
	if !ok {
		return "", nil, nil, fmt.Errorf("%w: line 2 does not end", ErrFormat)
	}
	blob, err = base64.StdEncoding.DecodeString(string(line))
	// The decoder skips CR and LF, and accepts any padding bits: insisting on the one canonical
	// spelling keeps one file per key or signature.
	if err != nil || base64.StdEncoding.EncodeToString(blob) != string(line) {
		return "", nil, nil, fmt.Errorf("%w: line 2 is not base64", ErrFormat)
	}
	if len(blob) != n || string(blob[:2]) != algorithm {
		return "", nil, nil, fmt.Errorf("%w: line 2 is not an ed25519 %s (%d bytes, want %d starting with %q)", ErrFormat, kind(n), len(blob), n, algorithm)
	}
	return c, blob, rest, nil
}

func kind(n int) string {
	switch n {
	case publicKeyLen:
		return "public key"
	case secretKeyLen:
		return "secret key"
	}
	return "signature"
}

// ParsePublicKey reads a signify public key file.
func ParsePublicKey(data []byte) (*PublicKey, error) {
	_, blob, rest, err := unarmor(data, publicKeyLen)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the key", ErrFormat, len(rest))
	}
	k := &PublicKey{Key: ed25519.PublicKey(bytes.Clone(blob[10:]))}
	copy(k.ID[:], blob[2:10])
	return k, nil
}

// ParsePrivateKey reads a signify secret key file made without a passphrase.
func ParsePrivateKey(data []byte) (*PrivateKey, error) {
	_, blob, rest, err := unarmor(data, secretKeyLen)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the key", ErrFormat, len(rest))
	}
	if string(blob[2:4]) != kdfAlgorithm {
		return nil, fmt.Errorf("%w: unknown key derivation %q", ErrFormat, blob[2:4])
	}
	if binary.BigEndian.Uint32(blob[4:8]) != 0 {
		return nil, ErrEncrypted
	}
	checksum, id, seckey := blob[24:32], blob[32:40], blob[40:]
	sum := sha512.Sum512(seckey)
	if subtle.ConstantTimeCompare(sum[:8], checksum) != 1 {
		return nil, fmt.Errorf("%w: the key's checksum does not match", ErrFormat)
	}
	k := &PrivateKey{Key: ed25519.NewKeyFromSeed(seckey[:ed25519.SeedSize])}
	if !bytes.Equal(k.Key, seckey) {
		return nil, fmt.Errorf("%w: the key's public half is not its seed's", ErrFormat)
	}
	copy(k.ID[:], id)
	return k, nil
}

// ReadPublicKey reads the public key file at path; errors name the file.
func ReadPublicKey(path string) (*PublicKey, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not a public key: %w", path, err)
	}
	return k, nil
}

// ReadPrivateKey reads the secret key file at path; errors name the file.
func ReadPrivateKey(path string) (*PrivateKey, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not a secret key: %w", path, err)
	}
	return k, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a key", path, maxKeyFileSize)
	}
	return data, nil
}

// WriteKeyPair writes k to path (mode 0600) and its public key to path+".pub" (0644). It
// refuses to overwrite either file: a lost secret key cannot be made again.
func WriteKeyPair(path string, k *PrivateKey) error {
	pub := path + ".pub"
	for _, p := range []string{path, pub} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; remove it first to make a new key", p)
		}
	}
	if err := writeNew(path, k.Marshal(), 0o600); err != nil {
		return err
	}
	if err := writeNew(pub, k.Public().Marshal(), 0o644); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// writeNew creates path with data, failing if it exists, and syncs it.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode) // the umask may have taken bits away from the public key
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
