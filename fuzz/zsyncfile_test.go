package fuzz

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// FuzzRead feeds arbitrary bytes to zsyncfile.Read, seeded with the control files in
// testdata/zsync (pkgsync's) and the repository's ../testdata/zsync (zsyncmake's). Read must not panic, and must fail only with a
// *ParseError, as the bytes come from memory. A file that parses must round-trip like
// encoding/csv's FuzzRoundtrip: Write accepts it, Read of the output gives an equal File, and
// writing that again gives the same bytes.
func FuzzRead(f *testing.F) {
	var seeds []string
	for _, dir := range []string{filepath.Join("testdata", "zsync"), filepath.Join("..", "testdata", "zsync")} {
		paths, err := filepath.Glob(filepath.Join(dir, "*.zsync"))
		if err != nil {
			f.Fatal(err)
		}
		if len(paths) == 0 {
			f.Fatalf("no seed files in %s", dir)
		}
		seeds = append(seeds, paths...)
	}
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// Headers that claim more than they hold, and almost-valid lines, to start the mutator nearby.
	f.Add([]byte("Blocksize: 16777216\nLength: 1000000000000000\nHash-Lengths: 2,4,16\nSHA-1: 0000000000000000000000000000000000000000\n\n0123456789"))
	f.Add([]byte("Safe: A B\nA: 1\nMin-Version: 0.5\nBlocksize: 512\nLength: 1\nHash-Lengths: 1,1,3\nSHA-1: 0000000000000000000000000000000000000000\n\nabcd"))
	f.Add([]byte("zsync: 0.6.2\nMTime: 1 Jan 2000 00:00:00 -1200\nBlocksize: 2048\nLength: 0\nHash-Lengths: 1,2,3\nSHA-1: da39a3ee5e6b4b0d3255bfef95601890afd80709\n\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := zsyncfile.Read(bytes.NewReader(data))
		if err != nil {
			var pe *zsyncfile.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Read error %v (%T) is not a *ParseError", err, err)
			}
			return
		}
		var first bytes.Buffer
		if err := zsyncfile.Write(&first, file); err != nil {
			t.Fatalf("Write of a File that Read returned: %v\nfile: %+v", err, file.Header)
		}
		again, err := zsyncfile.Read(bytes.NewReader(first.Bytes()))
		if err != nil {
			t.Fatalf("Read of Write's output: %v\noutput: %q", err, first.Bytes())
		}
		if !reflect.DeepEqual(again, file) {
			t.Fatalf("Read(Write(f)) differs from f:\n got %+v\nwant %+v", again.Header, file.Header)
		}
		var second bytes.Buffer
		if err := zsyncfile.Write(&second, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(second.Bytes(), first.Bytes()) {
			t.Fatalf("second Write differs:\n%q\n%q", second.Bytes(), first.Bytes())
		}
	})
}
