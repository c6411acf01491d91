package manifest

import (
	"bytes"
	"context"
	"crypto/sha1"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// The files in ../testdata/torrent and ../testdata/zsync that stock tools made from
// ../testdata/pkg/seq.txt (see ../testdata/README.md for the commands).
const (
	stockData    = "../testdata/pkg/seq.txt"
	stockZsync   = "../testdata/zsync/zsyncmake-seq.txt.zsync"
	stockURL     = "http://origin.example/pkg/seq.txt"
	stockTracker = "http://tracker.example/announce"
)

// TestStockToolFixtures loads the .torrent files that mktorrent and transmission-create made and
// the .zsync that zsyncmake made of the same file: ParseTorrent must accept each with the file's
// name, length and piece hashes, Check must find each .torrent and the .zsync to describe the
// same package, and the .zsync's header and block table must be the file's.
func TestStockToolFixtures(t *testing.T) {
	data, err := os.ReadFile(stockData)
	if err != nil {
		t.Fatal(err)
	}
	z := readStockZsync(t, data)
	tests := []struct {
		file      string
		pieceSize int64
		urlList   []string
	}{
		{"../testdata/torrent/mktorrent-seq.txt.torrent", 32 << 10, []string{stockURL}},
		{"../testdata/torrent/transmission-seq.txt.torrent", 16 << 10, nil},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			raw, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			tor, err := ParseTorrent(raw)
			if err != nil {
				t.Fatalf("ParseTorrent(%s): %v", tt.file, err)
			}
			if tor.Info.Name != "seq.txt" || tor.Info.Length != int64(len(data)) || tor.Info.PieceLength != tt.pieceSize {
				t.Errorf("name %q, length %d, piece length %d; want seq.txt, %d, %d",
					tor.Info.Name, tor.Info.Length, tor.Info.PieceLength, len(data), tt.pieceSize)
			}
			if bad := tor.BadPieces(pieceHashes(data, tt.pieceSize)); len(bad) > 0 {
				t.Errorf("pieces %v do not hash to the file's", bad)
			}
			if tor.ZsyncURL != "" || tor.ZsyncInfo != nil {
				t.Errorf("a stock tool's torrent has zsync-url %q and zsync-info %q", tor.ZsyncURL, tor.ZsyncInfo)
			}
			if !slices.Equal(tor.MetaInfo.UrlList, tt.urlList) {
				t.Errorf("url-list %q, want %q", tor.MetaInfo.UrlList, tt.urlList)
			}
			if got := tor.MetaInfo.UpvertedAnnounceList(); len(got) != 1 || !slices.Equal(got[0], []string{stockTracker}) {
				t.Errorf("trackers %q, want %q", got, stockTracker)
			}
			if err := Check(tor, z); err != nil {
				t.Errorf("Check with zsyncmake's .zsync of the same file: %v", err)
			}
		})
	}
}

// TestMakeMatchesStockTools runs Make on the file the stock tools were given, with their
// piece size, block size, URL and tracker: the info dictionary must be mktorrent's (the same info
// hash, so a pkgsync node and a stock client join the same swarm) and the .zsync's block table
// must be zsyncmake's.
func TestMakeMatchesStockTools(t *testing.T) {
	data, err := os.ReadFile(stockData)
	if err != nil {
		t.Fatal(err)
	}
	z := readStockZsync(t, data)
	dir := t.TempDir()
	pkg := filepath.Join(dir, "seq.txt")
	if err := os.WriteFile(pkg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(pkg, z.MTime, z.MTime); err != nil {
		t.Fatal(err)
	}
	res, err := Make(context.Background(), pkg, MakeOptions{URL: stockURL, Trackers: []string{stockTracker},
		PieceSize: 32 << 10, BlockSize: 2048, Now: func() time.Time { return z.MTime }})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../testdata/torrent/mktorrent-seq.txt.torrent")
	if err != nil {
		t.Fatal(err)
	}
	stock, err := ParseTorrent(raw)
	if err != nil {
		t.Fatal(err)
	}
	if res.InfoHash != stock.InfoHash.HexString() {
		ours, _ := os.ReadFile(res.Torrent)
		t.Errorf("Make's info hash %s, mktorrent's %s\nours:  %q\ntheirs: %q", res.InfoHash, stock.InfoHash.HexString(), ours, raw)
	}
	zraw, err := os.ReadFile(res.Zsync)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := zsyncfile.Read(bytes.NewReader(zraw))
	if err != nil {
		t.Fatalf("Read of Make's .zsync: %v", err)
	}
	if ours.SHA1 != z.SHA1 || ours.Length != z.Length || ours.Blocksize != z.Blocksize || !slices.Equal(ours.Blocks, z.Blocks) {
		t.Errorf("Make's .zsync (length %d, block size %d, %d blocks) differs from zsyncmake's (%d, %d, %d) in its hashes",
			ours.Length, ours.Blocksize, len(ours.Blocks), z.Length, z.Blocksize, len(z.Blocks))
	}
}

// readStockZsync reads zsyncmake's .zsync of data and checks its header and block table.
func readStockZsync(t *testing.T, data []byte) *zsyncfile.File {
	t.Helper()
	raw, err := os.ReadFile(stockZsync)
	if err != nil {
		t.Fatal(err)
	}
	z, err := zsyncfile.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("Read(%s): %v", stockZsync, err)
	}
	if z.Filename != "seq.txt" || z.Length != int64(len(data)) || z.SHA1 != sha1.Sum(data) || !slices.Equal(z.URLs, []string{stockURL}) {
		t.Fatalf("%s: header %+v does not describe %s", stockZsync, z.Header, stockData)
	}
	for i := range z.Blocks {
		off := i * z.Blocksize
		if want := z.Sum(data[off:min(off+z.Blocksize, len(data))]); z.Blocks[i] != want {
			t.Fatalf("%s: block %d is %+v, the file's is %+v", stockZsync, i, z.Blocks[i], want)
		}
	}
	return z
}

// pieceHashes returns the concatenated SHA-1s of data's pieces of size n.
func pieceHashes(data []byte, n int64) []byte {
	var out []byte
	for off := int64(0); off < int64(len(data)); off += n {
		sum := sha1.Sum(data[off:min(off+n, int64(len(data)))])
		out = append(out, sum[:]...)
	}
	return out
}
