package sign

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the .sig parser, which reads what any origin or peer-fed
// path serves. Whatever parses must write back byte for byte (the format has one spelling, so a
// verifier and a person reading the file see the same statement), and verifying it against a
// keyring must not panic.
//
//	go test ./sign -run '^$' -fuzz FuzzParse -fuzztime 30s
func FuzzParse(f *testing.F) {
	golden, err := os.ReadFile("testdata/pkg.tar.sig")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(bytes.Replace(golden, []byte("info-hash: 01"), []byte("info-hash: 0A"), 1))
	f.Add(golden[:len(golden)-1])
	f.Add([]byte("untrusted comment: x\n\n"))
	pub, err := ReadPublicKey("testdata/signify.pub")
	if err != nil {
		f.Fatal(err)
	}
	kr := Keyring{pub}
	key, err := ReadPrivateKey("testdata/signify.sec")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if s != nil {
				t.Fatal("Parse returned a signature with its error")
			}
			return
		}
		if out := s.Marshal(); !bytes.Equal(out, data) {
			t.Fatalf("Parse then Marshal changed the file:\n%q\n%q", data, out)
		}
		kr.Verify(s)
		// A parsed statement signs again without error.
		if _, err := Sign(key, s.Statement, s.Comment); err != nil {
			t.Fatalf("re-signing a parsed statement: %v", err)
		}
	})
}
