package bt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"

	"github.com/pkgsync/pkgsync/internal/directio"
)

// storageFixture makes a 10-byte file with piece length 4 (pieces of 4, 4 and 2 bytes).
func storageFixture(t *testing.T, have []bool) (*fileStorage, *os.File, storage.TorrentImpl) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteString("0123456789"); err != nil {
		t.Fatal(err)
	}
	info := &metainfo.Info{Name: "data", PieceLength: 4, Length: 10, Pieces: make([]byte, 3*20)}
	s := newFileStorage(f, info, have)
	ti, err := s.OpenTorrent(context.Background(), info, metainfo.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	return s, f, ti
}

func piece(ti storage.TorrentImpl, i int) storage.PieceImpl {
	info := &metainfo.Info{Name: "data", PieceLength: 4, Length: 10, Pieces: make([]byte, 3*20)}
	return ti.Piece(info.Piece(i))
}

func TestStorageCompletion(t *testing.T) {
	tests := []struct {
		name string
		have []bool
		want []bool
	}{
		{"none", nil, []bool{false, false, false}},
		{"some", []bool{true, false, true}, []bool{true, false, true}},
		{"all", []bool{true, true, true}, []bool{true, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, ti := storageFixture(t, tc.have)
			for i, want := range tc.want {
				c := piece(ti, i).Completion()
				if !c.Ok || c.Complete != want {
					t.Errorf("piece %d: completion %+v, want Ok and Complete=%t", i, c, want)
				}
			}
			select {
			case <-s.done():
				if s.completed() != 3 {
					t.Errorf("done closed with %d of 3 pieces", s.completed())
				}
			default:
				if s.completed() == 3 {
					t.Error("all pieces complete but done is open")
				}
			}
		})
	}
}

func TestStorageMarkComplete(t *testing.T) {
	s, _, ti := storageFixture(t, []bool{true, false, false})
	changes := 0
	s.onChange = func() { changes++ }
	for _, i := range []int{1, 2} {
		if err := piece(ti, i).MarkComplete(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.done():
	default:
		t.Fatal("done still open after every piece was marked complete")
	}
	if err := piece(ti, 2).MarkComplete(); err != nil { // no change
		t.Fatal(err)
	}
	if err := piece(ti, 0).MarkNotComplete(); err != nil {
		t.Fatal(err)
	}
	if c := piece(ti, 0).Completion(); !c.Ok || c.Complete {
		t.Errorf("piece 0 after MarkNotComplete: %+v", c)
	}
	select {
	case <-s.done():
		t.Error("done closed although piece 0 is incomplete again")
	default:
	}
	if changes != 3 {
		t.Errorf("onChange called %d times, want 3", changes)
	}
	if got, want := s.missingBytes(), int64(4); got != want {
		t.Errorf("missingBytes = %d, want %d", got, want)
	}
}

func TestStorageReadWrite(t *testing.T) {
	s, f, ti := storageFixture(t, nil)
	tests := []struct {
		name     string
		piece    int
		off      int64
		write    string
		wantErr  error
		wantFile string
	}{
		{"first piece", 0, 1, "ab", nil, "0ab3456789"},
		{"last short piece", 2, 0, "xy", nil, "01234567xy"},
		{"middle piece end", 1, 2, "XY", nil, "012345XY89"},
		{"past piece end", 2, 1, "xy", errAny, "0123456789"},
		{"busy piece", 1, 0, "zz", errPieceBusy, "0123456789"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.WriteAt([]byte("0123456789"), 0); err != nil {
				t.Fatal(err)
			}
			busy := errors.Is(tc.wantErr, errPieceBusy)
			s.setBusy(tc.piece, busy)
			defer s.setBusy(tc.piece, false)
			before := s.peerBytes.Load()
			n, err := piece(ti, tc.piece).WriteAt([]byte(tc.write), tc.off)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("WriteAt: %v", err)
			case tc.wantErr == errAny && err == nil:
				t.Fatal("WriteAt succeeded")
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("WriteAt error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (n != len(tc.write) || s.peerBytes.Load()-before != int64(n)) {
				t.Errorf("wrote %d, counted %d, want %d", n, s.peerBytes.Load()-before, len(tc.write))
			}
			got, _ := os.ReadFile(f.Name())
			if string(got) != tc.wantFile {
				t.Errorf("file = %q, want %q", got, tc.wantFile)
			}
		})
	}

	if _, err := f.WriteAt([]byte("0123456789"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, err := piece(ti, 2).ReadAt(buf, 0)
	if n != 2 || string(buf[:n]) != "89" || (err != nil && err != io.EOF) {
		t.Errorf("ReadAt of the short last piece: %d %q %v", n, buf[:n], err)
	}
	if _, err := piece(ti, 0).ReadAt(buf, 5); err == nil {
		t.Error("ReadAt past the piece succeeded")
	}
	var out bytes.Buffer
	if n, err := piece(ti, 1).(io.WriterTo).WriteTo(&out); err != nil || n != 4 || out.String() != "4567" {
		t.Errorf("WriteTo = %d %q %v", n, out.String(), err)
	}
	// A file cut short under the torrent is an error, not a silently short piece.
	if err := f.Truncate(9); err != nil {
		t.Fatal(err)
	}
	if _, err := piece(ti, 2).(io.WriterTo).WriteTo(io.Discard); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("WriteTo on a truncated file: %v, want ErrUnexpectedEOF", err)
	}
}

// After the library dropped the torrent, reads give zeros and writes vanish instead of
// failing: v1.59.1 panics on read errors of a closed torrent.
func TestStorageAfterClose(t *testing.T) {
	_, f, ti := storageFixture(t, nil)
	if err := ti.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	buf := []byte("xxxx")
	if n, err := piece(ti, 1).ReadAt(buf, 0); n != 4 || err != nil || string(buf) != "\x00\x00\x00\x00" {
		t.Errorf("ReadAt after close = %d %q %v", n, buf, err)
	}
	if n, err := piece(ti, 1).WriteAt([]byte("ab"), 0); n != 2 || err != nil {
		t.Errorf("WriteAt after close = %d %v", n, err)
	}
}

// errAny stands for "some error" in tables.
var errAny = errors.New("any error")

func TestStorageOpenOtherInfo(t *testing.T) {
	s, _, _ := storageFixture(t, nil)
	other := &metainfo.Info{Name: "data", PieceLength: 4, Length: 11, Pieces: make([]byte, 3*20)}
	if _, err := s.OpenTorrent(context.Background(), other, metainfo.Hash{}); err == nil {
		t.Error("OpenTorrent accepted info of another length")
	}
	if _, err := (noStorage{}).OpenTorrent(context.Background(), other, metainfo.Hash{}); !errors.Is(err, errNoStorage) {
		t.Errorf("noStorage.OpenTorrent: %v", err)
	}
}

// einvalWriter refuses every write as a file system without O_DIRECT does.
type einvalWriter struct{ calls int }

func (w *einvalWriter) WriteAt([]byte, int64) (int, error) {
	w.calls++
	return 0, syscall.EINVAL
}

// writeWhole sends a piece through Package.Direct only where it is no shorter than
// directio.MinWrite and offset, length and memory are all aligned; anything else, and
// everything after O_DIRECT refused a write, goes through Data. The bytes land in the file
// either way.
func TestStorageWriteWhole(t *testing.T) {
	const a, m = directio.Align, directio.MinWrite
	tests := []struct {
		name       string
		off, n     int
		unaligned  bool // the buffer's memory starts one byte past an Align boundary
		refuse     bool // the direct descriptor answers EINVAL
		wantDirect bool
	}{
		{"aligned", m, m, false, false, true},
		{"aligned, longer", 0, 2 * m, false, false, true},
		{"shorter than MinWrite", m, m - a, false, false, false},
		{"offset not aligned", m + 512, m, false, false, false},
		{"length not aligned", 0, m + 100, false, false, false},
		{"memory not aligned", 0, m, true, false, false},
		{"O_DIRECT refused", 0, m, false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := os.Create(filepath.Join(dir, "data"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			const length = 4 * m
			if err := f.Truncate(length); err != nil {
				t.Fatal(err)
			}
			info := &metainfo.Info{Name: "data", PieceLength: m, Length: length, Pieces: make([]byte, 4*20)}
			s := newFileStorage(f, info, nil)
			var refuser *einvalWriter
			if tc.refuse {
				refuser = &einvalWriter{}
				s.direct.Direct = refuser
			} else {
				d, err := directio.Open(f.Name())
				if err != nil {
					t.Fatalf("opening %s with O_DIRECT: %v", f.Name(), err)
				}
				defer d.Close()
				s.direct.Direct = d
			}
			buf := directio.AlignedBuf(tc.n + 1)[:tc.n]
			if tc.unaligned {
				buf = directio.AlignedBuf(tc.n + 1)[1 : tc.n+1]
			}
			for i := range buf {
				buf[i] = byte(i*31 + 7)
			}
			for range 2 { // after a refusal the second write goes through Data without asking again
				var mu sync.Mutex
				if err := s.writeWhole(buf, int64(tc.off), &mu); err != nil {
					t.Fatalf("writeWhole: %v", err)
				}
			}
			got := make([]byte, tc.n)
			if _, err := f.ReadAt(got, int64(tc.off)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, buf) {
				t.Errorf("the file does not hold the bytes written at %d", tc.off)
			}
			direct := s.direct.Bytes()
			if want := int64(0); tc.wantDirect {
				want = int64(2 * tc.n)
				if direct != want {
					t.Errorf("%d bytes went direct, want %d", direct, want)
				}
			} else if direct != want {
				t.Errorf("%d bytes went direct, want none", direct)
			}
			if tc.refuse && refuser.calls != 1 {
				t.Errorf("the refusing descriptor was asked %d times, want once", refuser.calls)
			}
		})
	}
}
