package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Statement is what a .sig vouches for.
type Statement struct {
	File        string            // the package's file name (FILE of FILE.torrent), for people reading the .sig
	InfoHash    [sha1.Size]byte   // the BitTorrent v1 info hash of FILE.torrent
	ZsyncSHA256 [sha256.Size]byte // the SHA-256 of the whole FILE.zsync
}

// Signature is a parsed .sig file. Parse checks its form only; Keyring.Verify checks that a
// trusted key made it.
type Signature struct {
	Comment   string // untrusted: anyone can change it without breaking the signature
	KeyID     KeyID
	Sig       [ed25519.SignatureSize]byte
	Statement Statement
	message   []byte // the signed bytes: the statement lines exactly as read
}

// MaxSize caps a .sig: the signed part is four short lines, the comment at most 1 KiB.
const MaxSize = 4096

const statementVersion = "1"

// ParseError reports where a .sig is malformed; it wraps ErrFormat.
type ParseError struct {
	Line int // 1-based line of the .sig
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }
func (e *ParseError) Unwrap() error { return ErrFormat }

// Errors that Keyring.Verify wraps.
var (
	// ErrUntrusted: the .sig was made by a key that is not among the trusted ones.
	ErrUntrusted = errors.New("signed by a key that is not trusted")
	// ErrBadSignature: the key is trusted but the signature does not verify: the statement or
	// the signature was altered.
	ErrBadSignature = errors.New("signature does not verify")
)

// Sign makes a .sig file vouching for st with k; comment goes on the untrusted comment line
// (signify writes "verify with KEY.pub").
func Sign(k *PrivateKey, st Statement, comment string) ([]byte, error) {
	if err := st.check(); err != nil {
		return nil, err
	}
	if comment == "" || len(comment) > maxCommentLen || strings.ContainsAny(comment, "\n\r\x00") {
		return nil, fmt.Errorf("signature comment %q: want 1 to %d bytes on one line", comment, maxCommentLen)
	}
	s := &Signature{Comment: comment, KeyID: k.ID, Statement: st, message: st.marshal()}
	copy(s.Sig[:], ed25519.Sign(k.Key, s.message))
	return s.Marshal(), nil
}

// Marshal returns the .sig file: the comment line, the signature line and the statement.
func (s *Signature) Marshal() []byte {
	blob := make([]byte, 0, signatureBlob)
	blob = append(blob, algorithm...)
	blob = append(blob, s.KeyID[:]...)
	blob = append(blob, s.Sig[:]...)
	msg := s.message
	if msg == nil {
		msg = s.Statement.marshal()
	}
	return append(armor(s.Comment, blob), msg...)
}

// marshal returns the statement's lines, the bytes the signature covers.
func (st Statement) marshal() []byte {
	return fmt.Appendf(nil, "pkgsync-signature: %s\nfile: %s\ninfo-hash: %x\nzsync-sha256: %x\n",
		statementVersion, st.File, st.InfoHash, st.ZsyncSHA256)
}

// check reports a file name that the statement's one-line format cannot carry.
func (st Statement) check() error {
	switch {
	case st.File == "", len(st.File) > 255, strings.Contains(st.File, "/"), !utf8.ValidString(st.File):
		return fmt.Errorf("file name %q: want a base name of 1 to 255 bytes of UTF-8", st.File)
	case strings.ContainsFunc(st.File, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("file name %q has control characters", st.File)
	}
	return nil
}

// Parse reads a .sig file (see the package doc). It checks the form, not the signature.
func Parse(data []byte) (*Signature, error) {
	if len(data) > MaxSize {
		return nil, &ParseError{1, fmt.Sprintf("%d bytes is too large for a .sig (limit %d)", len(data), MaxSize)}
	}
	comment, blob, msg, err := unarmor(data, signatureBlob)
	if err != nil {
		return nil, err
	}
	s := &Signature{Comment: comment, message: bytes.Clone(msg)}
	copy(s.KeyID[:], blob[2:10])
	copy(s.Sig[:], blob[10:])
	if s.Statement, err = parseStatement(msg); err != nil {
		return nil, err
	}
	return s, nil
}

// statementKeys are the statement's lines, in their one order.
var statementKeys = [...]string{"pkgsync-signature", "file", "info-hash", "zsync-sha256"}

// parseStatement reads the statement lines, which start on line 3 of the .sig.
func parseStatement(msg []byte) (Statement, error) {
	var st Statement
	rest := msg
	for i, key := range statementKeys {
		lineNo := 3 + i
		line, r, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return st, &ParseError{lineNo, fmt.Sprintf("want the %q line, ending in a newline", key)}
		}
		rest = r
		v, ok := strings.CutPrefix(string(line), key+": ")
		if !ok {
			return st, &ParseError{lineNo, fmt.Sprintf("want %q, got %.40q", key+": ...", line)}
		}
		var err error
		switch key {
		case "pkgsync-signature":
			if v != statementVersion {
				err = fmt.Errorf("statement version %.20q is not supported (this pkgsync reads %s)", v, statementVersion)
			}
		case "file":
			st.File = v
			err = st.check()
		case "info-hash":
			err = parseHex(v, st.InfoHash[:])
		case "zsync-sha256":
			err = parseHex(v, st.ZsyncSHA256[:])
		}
		if err != nil {
			return st, &ParseError{lineNo, fmt.Sprintf("%s: %v", key, err)}
		}
	}
	if len(rest) > 0 {
		return st, &ParseError{3 + len(statementKeys), "unexpected text after the statement"}
	}
	return st, nil
}

// parseHex decodes lowercase hex of exactly len(dst) bytes: one spelling per value.
func parseHex(s string, dst []byte) error {
	if len(s) != 2*len(dst) || strings.ToLower(s) != s {
		return fmt.Errorf("want %d lowercase hex digits, got %.80q", 2*len(dst), s)
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("want %d lowercase hex digits: %v", 2*len(dst), err)
	}
	return nil
}

// Keyring is the set of trusted public keys.
type Keyring []*PublicKey

// Verify checks that a key in kr made s over its statement. The error says which key signed,
// so that an operator can tell a missing --trust-key from a forgery.
func (kr Keyring) Verify(s *Signature) (*PublicKey, error) {
	var known bool
	for _, k := range kr {
		if k.ID != s.KeyID {
			continue
		}
		known = true
		if ed25519.Verify(k.Key, s.message, s.Sig[:]) {
			return k, nil
		}
	}
	if known {
		return nil, fmt.Errorf("%w with the trusted key %s: the .sig was altered", ErrBadSignature, s.KeyID)
	}
	return nil, fmt.Errorf("%w: key %s, while %s", ErrUntrusted, s.KeyID, kr.describe())
}

func (kr Keyring) describe() string {
	if len(kr) == 0 {
		return "no key is trusted"
	}
	ids := make([]string, len(kr))
	for i, k := range kr {
		ids[i] = k.ID.String()
	}
	return "the trusted key(s) are " + strings.Join(ids, ", ")
}
