package manifest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// The part file, what `pkgsync make --part I/N` writes and `--merge` reads, version 1:
//
//	pkgsync-make-part 1\n                  magic and format version, one line
//	{"package":"pkg.img",...}\n           the header: one line of JSON (partHeader)
//	pieces × 20 bytes                     the SHA-1 of each piece of the stretch, in order
//	blocks × (rsum_bytes+checksum_bytes)  the zsync record of each block of the stretch, as in
//	                                      the .zsync's table (Hash-Lengths' last two numbers)
//	32 bytes                              SHA-256 of every byte before it
//
// The header says how many pieces and blocks follow, so a reader knows the file's exact length
// from it; the trailing SHA-256 catches a file cut short or damaged on its way between hosts.
// A reader refuses a version it does not know.
const (
	partMagic   = "pkgsync-make-part"
	partVersion = 1
	// partHeaderMax bounds the header line; a few trackers and a URL take a few hundred bytes.
	partHeaderMax = 1 << 20
)

// partHeader is the JSON header of a part file.
type partHeader struct {
	Package     string   `json:"package"`      // base name: the torrent's name and the .zsync's Filename
	Source      string   `json:"source"`       // path or URL the stretch was read from; the merge reads it
	Size        int64    `json:"size"`         // bytes in the package
	MTime       string   `json:"mtime"`        // the package's mtime, RFC 3339 with nanoseconds, UTC; "" for none
	PieceLength int64    `json:"piece_length"` // torrent piece size
	BlockSize   int      `json:"block_size"`   // zsync block size
	Align       int64    `json:"align"`        // --align, 0 for none
	URL         string   `json:"url"`          // --url, "" for none
	Trackers    []string `json:"trackers"`     // --tracker, in order
	HashLengths string   `json:"hash_lengths"` // the .zsync's Hash-Lengths for this size and block size
	Part        int      `json:"part"`         // I of --part I/N
	Parts       int      `json:"parts"`        // N
	Offset      int64    `json:"offset"`       // the stretch's first byte
	End         int64    `json:"end"`          // the stretch's end (exclusive)
	Pieces      int      `json:"pieces"`       // piece hashes that follow
	Blocks      int      `json:"blocks"`       // block records that follow
}

// ErrPartFile is wrapped by every error about the content of a part file.
var ErrPartFile = errors.New("bad part file")

// PartFileName is the name `make --part I/N` gives the part file of the package named name.
func PartFileName(name string, i, n int) string {
	return fmt.Sprintf("%s.%d-of-%d.mkpart", name, i, n)
}

// WritePart writes p in the part file format.
func WritePart(w io.Writer, p *Part) error {
	if err := p.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrPartFile, err)
	}
	seq, rsum, checksum := zsyncfile.HashLengths(p.Size, p.BlockSize)
	h := partHeader{
		Package: p.Name, Source: p.Source, Size: p.Size, PieceLength: p.PieceSize, BlockSize: p.BlockSize,
		Align: p.Align, URL: p.URL, Trackers: append([]string{}, p.Trackers...), HashLengths: fmt.Sprintf("%d,%d,%d", seq, rsum, checksum),
		Part: p.Index, Parts: p.Count, Offset: p.Off, End: p.End, Pieces: len(p.Pieces) / sha1.Size, Blocks: len(p.Blocks),
	}
	if !p.ModTime.IsZero() {
		h.MTime = p.ModTime.UTC().Format(time.RFC3339Nano)
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding part header: %w", err)
	}
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, sum), 64<<10)
	fmt.Fprintf(bw, "%s %d\n%s\n", partMagic, partVersion, hj)
	bw.Write(p.Pieces)
	zh := zsyncfile.Header{RsumBytes: rsum, ChecksumBytes: checksum}
	rec := make([]byte, 0, rsum+checksum)
	for _, b := range p.Blocks {
		bw.Write(zh.AppendRecord(rec[:0], b))
	}
	if err := bw.Flush(); err != nil { // the first error of any write above
		return err
	}
	_, err = w.Write(sum.Sum(nil))
	return err
}

// ReadPart reads a part file that WritePart wrote and checks it: format version, checksum,
// settings a make would accept, and the stretch and hash counts that its part index implies.
// Errors about the content wrap ErrPartFile.
func ReadPart(r io.Reader) (*Part, error) {
	br := bufio.NewReader(r)
	h, head, err := readPartHeader(br)
	if err != nil {
		return nil, err
	}
	p, err := h.part()
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrPartFile, err)
	}
	if err := p.readTables(br, head); err != nil {
		return nil, err
	}
	return p, nil
}

// readPartHeader reads the magic line and the JSON header; head is both lines as read, for the
// checksum.
func readPartHeader(br *bufio.Reader) (h *partHeader, head []byte, err error) {
	magic, err := readLine(br, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: first line: %w", ErrPartFile, err)
	}
	name, ver, ok := bytes.Cut(magic, []byte(" "))
	if !ok || string(name) != partMagic {
		return nil, nil, fmt.Errorf("%w: does not start with %q", ErrPartFile, partMagic)
	}
	if v, err := strconv.Atoi(string(ver)); err != nil || v != partVersion {
		return nil, nil, fmt.Errorf("%w: format version %q, this pkgsync reads version %d", ErrPartFile, ver, partVersion)
	}
	line, err := readLine(br, partHeaderMax)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: header: %w", ErrPartFile, err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	h = new(partHeader)
	if err := dec.Decode(h); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %w", ErrPartFile, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: header: more than one JSON value", ErrPartFile)
	}
	head = append(append(append(magic, '\n'), line...), '\n')
	return h, head, nil
}

// readLine returns the next line of br without its "\n", refusing one longer than max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > max+1 {
			return nil, fmt.Errorf("line longer than %d bytes", max)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, errors.New("ends before the end of the line")
		default:
			return nil, err
		}
	}
}

// part returns the Part the header describes, without its tables, once the header's own
// fields agree with each other.
func (h *partHeader) part() (*Part, error) {
	p := &Part{
		Name: h.Package, Source: h.Source, Size: h.Size, PieceSize: h.PieceLength, BlockSize: h.BlockSize,
		Align: h.Align, URL: h.URL, Trackers: h.Trackers, Index: h.Part, Count: h.Parts, Off: h.Offset, End: h.End,
	}
	if h.MTime != "" {
		t, err := time.Parse(time.RFC3339Nano, h.MTime)
		if err != nil {
			return nil, fmt.Errorf("mtime %q: %w", h.MTime, err)
		}
		p.ModTime = t.UTC()
	}
	if len(p.Trackers) == 0 {
		p.Trackers = nil // [] and null alike
	}
	// The settings first: the counts below are computed from them, and stay far from overflow
	// only with the bounds that checkSettings enforces.
	if err := p.checkSettings(); err != nil {
		return nil, err
	}
	seq, rsum, checksum := zsyncfile.HashLengths(h.Size, h.BlockSize)
	if want := fmt.Sprintf("%d,%d,%d", seq, rsum, checksum); h.HashLengths != want {
		return nil, fmt.Errorf("hash_lengths %q, want %q for %d bytes in blocks of %d", h.HashLengths, want, h.Size, h.BlockSize)
	}
	if want := numPieces(h.End-h.Offset, h.PieceLength); h.Pieces != want {
		return nil, fmt.Errorf("pieces %d, want %d for bytes %d to %d", h.Pieces, want, h.Offset, h.End)
	}
	if want := zsyncfile.NumBlocks(h.End-h.Offset, h.BlockSize); h.Blocks != want {
		return nil, fmt.Errorf("blocks %d, want %d for bytes %d to %d", h.Blocks, want, h.Offset, h.End)
	}
	return p, nil
}

// readTables reads the piece hashes and block records the header announced, then the trailing
// SHA-256, which must be that of head (the header lines) and the tables. Memory follows the
// bytes actually there, not the counts a header claims.
func (p *Part) readTables(br *bufio.Reader, head []byte) error {
	_, rsum, checksum := zsyncfile.HashLengths(p.Size, p.BlockSize)
	rec := rsum + checksum
	npieces := numPieces(p.End-p.Off, p.PieceSize)
	nblocks := zsyncfile.NumBlocks(p.End-p.Off, p.BlockSize)
	want := int64(npieces)*sha1.Size + int64(nblocks)*int64(rec) + sha256.Size
	body, err := io.ReadAll(io.LimitReader(br, want+1))
	if err != nil {
		return err
	}
	if int64(len(body)) != want {
		return fmt.Errorf("%w: %d bytes after the header, want %d (%d piece hashes, %d block records of %d bytes, the SHA-256)",
			ErrPartFile, len(body), want, npieces, nblocks, rec)
	}
	tables, trailer := body[:len(body)-sha256.Size], body[len(body)-sha256.Size:]
	s := sha256.New()
	s.Write(head)
	s.Write(tables)
	if !bytes.Equal(s.Sum(nil), trailer) {
		return fmt.Errorf("%w: SHA-256 does not match: the file is damaged", ErrPartFile)
	}
	p.Pieces = tables[: npieces*sha1.Size : npieces*sha1.Size]
	zh := zsyncfile.Header{RsumBytes: rsum, ChecksumBytes: checksum}
	p.Blocks = make([]zsyncfile.Block, nblocks)
	for i := range p.Blocks {
		k := npieces*sha1.Size + i*rec
		p.Blocks[i] = zh.DecodeRecord(tables[k : k+rec])
	}
	return nil
}

// WritePartFile writes p to path atomically: a reader sees the whole file or none.
func WritePartFile(path string, p *Part) error {
	f, err := newAtomicFile(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := WritePart(bw, p); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Commit()
}

// ReadPartFile reads the part file at path (see ReadPart); errors name the file, and so does
// the Part's File.
func ReadPartFile(path string) (*Part, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := ReadPart(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.File = path
	return p, nil
}
