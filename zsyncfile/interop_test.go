package zsyncfile_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/testtool"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// testdataFiles are control files the stock zsyncmake 0.6.2 wrote, kept in the shared
// ../testdata/zsync so that these checks run without the tool: testData(seed, length) saved as
// "f" with mtime 2026-11-25 14:51:54 UTC, then
// "zsyncmake -b 2048 -u http://example.org/pkg/f -o zsyncmake-LENGTH.zsync f".
var testdataFiles = []struct {
	seed   uint64
	length int
}{{10, 0}, {11, 1}, {12, 2048}, {13, 5000}}

// TestZsyncmakeTestdata reads zsyncmake's files, recomputes every record with Header.Sum, and
// writes the same file back byte for byte from a File built from the data alone.
func TestZsyncmakeTestdata(t *testing.T) {
	mtime := time.Date(2026, 11, 25, 14, 51, 54, 0, time.UTC)
	for _, tc := range testdataFiles {
		t.Run(fmt.Sprint(tc.length), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "testdata", "zsync", fmt.Sprintf("zsyncmake-%d.zsync", tc.length)))
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstZsyncmake(t, raw, testData(tc.seed, tc.length), mtime, "http://example.org/pkg/f")
		})
	}
}

// checkAgainstZsyncmake checks pkgsync against a control file zsyncmake made for data (named "f",
// block size 2048, one URL): (a) Read parses it into the expected header; (b) Header.Sum over the
// data gives its table record for record; (c) Write of a File built with NewHeader and Sum gives
// the same bytes.
func checkAgainstZsyncmake(t *testing.T, raw, data []byte, mtime time.Time, url string) {
	t.Helper()
	got, err := zsyncfile.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("Read of zsyncmake's file: %v", err)
	}
	seq, rsum, checksum := zsyncfile.HashLengths(int64(len(data)), 2048)
	wantHeader := zsyncfile.Header{
		Version: "0.6.2", Filename: "f", MTime: mtime, Blocksize: 2048, Length: int64(len(data)),
		SeqMatches: seq, RsumBytes: rsum, ChecksumBytes: checksum, URLs: []string{url}, SHA1: sha1.Sum(data),
	}
	if !headersEqual(got.Header, wantHeader) {
		t.Errorf("(a) header of zsyncmake's file = %+v\nwant %+v", got.Header, wantHeader)
	}
	ours := makeFile("f", data, 2048, mtime, url)
	if len(got.Blocks) != len(ours.Blocks) {
		t.Fatalf("(b) zsyncmake wrote %d records, Sum gives %d", len(got.Blocks), len(ours.Blocks))
	}
	for i := range ours.Blocks {
		if got.Blocks[i] != ours.Blocks[i] {
			t.Fatalf("(b) block %d: zsyncmake wrote %+v, Sum gives %+v", i, got.Blocks[i], ours.Blocks[i])
		}
	}
	var buf bytes.Buffer
	if err := zsyncfile.Write(&buf, ours); err != nil {
		t.Fatal(err)
	}
	tableLen := len(ours.Blocks) * (rsum + checksum)
	if !bytes.Equal(buf.Bytes()[buf.Len()-tableLen:], raw[len(raw)-tableLen:]) {
		t.Errorf("(c) Write's block table differs from zsyncmake's")
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Errorf("(c) Write =\n%q\nzsyncmake wrote\n%q", buf.Bytes(), raw)
	}
}

// TestZsyncmakeInterop runs the stock zsyncmake on seeded data of edge sizes and compares its
// output with pkgsync's (see checkAgainstZsyncmake); then the stock zsync client must rebuild the
// file from pkgsync's own control file. The client gets the data as its seed (-i), so every block is
// found locally and the URL, which nothing listens on, is never fetched.
func TestZsyncmakeInterop(t *testing.T) {
	tools := testtool.Need(t, "zsyncmake", "zsync")
	zsyncmake, zsync := tools[0], tools[1]
	mtime := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	const url = "http://127.0.0.1:9/f"
	for _, length := range []int{0, 1, 2047, 2048, 2049, 5000, 300<<10 + 777} {
		t.Run(fmt.Sprint(length), func(t *testing.T) {
			dir := t.TempDir()
			data := testData(uint64(length)+100, length)
			in := filepath.Join(dir, "f")
			if err := os.WriteFile(in, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(in, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			run(t, dir, zsyncmake, "-b", "2048", "-u", url, "-o", "f.zsync", "f")
			raw, err := os.ReadFile(filepath.Join(dir, "f.zsync"))
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstZsyncmake(t, raw, data, mtime, url)

			if length == 0 {
				return // zsync 0.6.2 refuses Length 0 ("Not a zsync file")
			}
			var ours bytes.Buffer
			if err := zsyncfile.Write(&ours, makeFile("f", data, 2048, mtime, url)); err != nil {
				t.Fatal(err)
			}
			client := t.TempDir()
			if err := os.WriteFile(filepath.Join(client, "ours.zsync"), ours.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, client, zsync, "-q", "-i", in, "-o", "out", "ours.zsync")
			out, err := os.ReadFile(filepath.Join(client, "out"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, data) {
				t.Errorf("zsync rebuilt %d bytes that differ from the %d of the file", len(out), len(data))
			}
		})
	}
}

// TestStockClientAgrees runs the stock zsync 0.6.2 client on files pkgsync writes (which it must
// accept, rebuilding the file from its seed) and on malformed files that it refuses as well as
// Read (so pkgsync is no stricter than needed there). The client gets the data as its seed (-i): a
// file it accepts needs nothing from the URL, which nothing listens on.
func TestStockClientAgrees(t *testing.T) {
	zsync := testtool.Need(t, "zsync")[0]
	dir := t.TempDir()
	data := testData(20, 5000)
	seed := filepath.Join(dir, "seed")
	if err := os.WriteFile(seed, data, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(extra ...zsyncfile.Field) string {
		f := makeFile("f", data, 2048, time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), "http://127.0.0.1:9/f")
		f.Extra = extra
		var buf bytes.Buffer
		if err := zsyncfile.Write(&buf, f); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	good := write()
	replace := func(old, new string) string {
		s := strings.Replace(good, old, new, 1)
		if s == good {
			t.Fatalf("the file has no %q", old)
		}
		return s
	}
	tests := []struct {
		name   string
		in     string
		accept bool
	}{
		{"as written", good, true},
		{"Safe-listed extra keys", write(zsyncfile.Field{Key: "X-A", Value: "1"}, zsyncfile.Field{Key: "X-B", Value: "2"}), true},
		{"Min-Version met", write(zsyncfile.Field{Key: "Min-Version", Value: "0.6.2"}), true},
		{"unknown key", replace("Blocksize:", "X-New: 1\nBlocksize:"), false},
		{"bad line", replace("Blocksize: 2048", "Blocksize:2048"), false},
		{"block size not a power of two", replace("Blocksize: 2048", "Blocksize: 3000"), false},
		{"rsum_bytes 5", replace("Hash-Lengths: 2,2,3", "Hash-Lengths: 2,5,3"), false},
		{"Min-Version newer", replace("Blocksize:", "Min-Version: 0.6.3\nBlocksize:"), false},
		{"zsync 0.0.4", replace("zsync: 0.6.2", "zsync: 0.0.4"), false},
		{"table one byte short", good[:len(good)-1], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ourErr := zsyncfile.Read(strings.NewReader(tc.in))
			client := t.TempDir()
			if err := os.WriteFile(filepath.Join(client, "in.zsync"), []byte(tc.in), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, zsync, "-q", "-i", seed, "-o", "out", "in.zsync")
			cmd.Dir = client
			msg, stockErr := cmd.CombinedOutput()
			if (ourErr == nil) != tc.accept || (stockErr == nil) != tc.accept {
				t.Fatalf("Read error %v, zsync error %v, want both to %s\n%s",
					ourErr, stockErr, map[bool]string{true: "accept", false: "refuse"}[tc.accept], msg)
			}
			if tc.accept {
				if out, err := os.ReadFile(filepath.Join(client, "out")); err != nil || !bytes.Equal(out, data) {
					t.Errorf("zsync did not rebuild the file (%v)", err)
				}
			}
		})
	}
}

// run runs a tool in dir and fails the test with its output if it fails.
func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, msg)
	}
}
