package fuzz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"reflect"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/manifest"
)

// FuzzReadPart feeds arbitrary bytes to the reader of `pkgsync make --part` files, which
// `--merge` takes from wherever the parts ran. It must never panic, and a part it accepts must
// survive a write and a read unchanged. Each input is also tried with a correct trailing SHA-256
// appended, so that mutations reach the checks behind the checksum.
func FuzzReadPart(f *testing.F) {
	data := bytes.Repeat([]byte("pkgsync part file seed "), 9000)
	src := &manifest.Source{Name: "pkg.bin", Label: "/srv/pkg.bin", Size: int64(len(data)), ModTime: time.Unix(1700000000, 5), ReaderAt: bytes.NewReader(data)}
	for _, c := range []struct {
		opt  manifest.MakeOptions
		i, n int
	}{
		{manifest.MakeOptions{URL: "http://o/pkg.bin", Trackers: []string{"http://t/a"}}, 0, 3},
		{manifest.MakeOptions{}, 2, 3},             // the last, partial block
		{manifest.MakeOptions{Align: 98304}, 5, 7}, // an empty part
	} {
		p, err := manifest.MakePart(context.Background(), src, c.opt, c.i, c.n)
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if err := manifest.WritePart(&buf, p); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
		body := buf.Bytes()[:buf.Len()-sha256.Size] // the fuzz function appends the checksum
		f.Add(body)
		// Other spellings of the same header: null for no trackers, an mtime with a zone.
		body = bytes.Replace(body, []byte(`"trackers":[]`), []byte(`"trackers":null`), 1)
		f.Add(bytes.Replace(body, []byte(`Z","piece_length"`), []byte(`+01:00","piece_length"`), 1))
	}
	f.Add([]byte("pkgsync-make-part 1\n{}\n"))
	f.Add([]byte("pkgsync-make-part 1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		sum := sha256.Sum256(in)
		for _, b := range [][]byte{in, append(bytes.Clone(in), sum[:]...)} {
			p, err := manifest.ReadPart(bytes.NewReader(b))
			if err != nil {
				continue
			}
			var out bytes.Buffer
			if err := manifest.WritePart(&out, p); err != nil {
				t.Fatalf("accepted part does not write back: %v", err)
			}
			q, err := manifest.ReadPart(&out)
			if err != nil {
				t.Fatalf("written part does not read back: %v", err)
			}
			if !reflect.DeepEqual(p, q) {
				t.Fatalf("part changed on a write and read:\n%+v\n%+v", p, q)
			}
		}
	})
}
