package manifest

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"unsafe"

	"github.com/pkgsync/pkgsync/internal/md4"
	"github.com/pkgsync/pkgsync/rollsum"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// Hashes are what one read of a package yields.
type Hashes struct {
	Pieces []byte            // concatenated SHA-1 of each piece
	Blocks []zsyncfile.Block // zsync block records; nil when Hash was given no header
	Whole  [sha1.Size]byte   // SHA-1 of the whole file
}

// hashChunk is the least a chunk holds, and hashBuffers about how much all chunks together hold.
// Small chunks stay in the CPU's caches between the read that fills them and the hashes that
// read them: on an earlier test machine (a VM), reading 256 MiB from the page cache into 4 MiB
// chunks and SHA-1-ing it took 0.6 s, against 0.18 s with 256 KiB chunks. But a Sink writes
// each chunk to the disk with O_DIRECT, one write at a time, and there 256 KiB writes ran at
// 1.1-1.3 GB/s against 2.2 GB/s for 1 MiB ones (dd oflag=direct on the current test machine),
// slower than the SHA-1: with 1 MiB chunks the 256 MiB update of cmd/pkgbench delta's identical
// workload went from 0.24-0.31 s to 0.22-0.27 s, the 40 MiB gosrc one from 0.05-0.06 to
// 0.04-0.06 s, and pkgsync make of 256 MiB stayed at 0.25 s. 512 KiB and 2 MiB measured no better.
const (
	hashChunk   = 1 << 20
	hashBuffers = 4 << 20
)

type chunk struct {
	off  int64
	buf  []byte
	refs sync.WaitGroup
}

// Hash reads length bytes of r sequentially, in chunks that hold whole pieces, and computes the
// SHA-1 of each pieceSize piece (none when pieceSize <= 0), the SHA-1 of the whole, and, when zh is
// not nil, the zsync block
// record of each zh.Blocksize block (pieceSize must then be a multiple of it). name is used in
// errors. Each chunk goes to two consumers: one goroutine that feeds the whole-file SHA-1 (it must
// see bytes in order) and one of the workers (piece SHA-1s and block sums, any order, disjoint
// slots). A chunk's buffer is reused when both are done, so memory stays at a few chunks
// (hashBuffers, or workers+2 pieces when pieces are larger) whatever the size. A reader that ends early or has bytes past length is reported as ErrChanged.
func Hash(ctx context.Context, r io.Reader, name string, length, pieceSize int64, zh *zsyncfile.Header, workers int, onProgress func(int64)) (*Hashes, error) {
	return hash(ctx, r, name, length, pieceSize, zh, workers, onProgress, true, nil)
}

// A Sink is handed every chunk Hash reads, in file order, on a goroutine of its own while the
// hashes run, and the chunk's buffer is reused only once it returns: the bytes can go on to a
// file from where they are, with no copy. buf starts on a ChunkAlign boundary of memory and off
// is a multiple of ChunkAlign, so an aligned stretch of the file is an aligned stretch of
// memory too, as O_DIRECT wants. An error ends the read; Hash returns it.
type Sink func(off int64, buf []byte) error

// ChunkAlign is the alignment of the chunks a Sink is handed: a page, the most O_DIRECT asks of
// memory and of file offsets on the file systems pkgsync writes to.
const ChunkAlign = 4096

// HashTo is Hash without block records that also hands every chunk to sink (nil: none); with
// whole false it skips the whole-file SHA-1, as HashPieces does.
func HashTo(ctx context.Context, r io.Reader, name string, length, pieceSize int64, whole bool, sink Sink, onProgress func(int64)) (*Hashes, error) {
	return hash(ctx, r, name, length, pieceSize, nil, 0, onProgress, whole, sink)
}

// HashPieces is Hash without the whole-file SHA-1 (Whole stays zero) and without block records:
// for a reader whose bytes are only partly the file's yet (a delta update's reused pieces, before
// the swarm brings the rest), where the whole-file SHA-1 would be a waste of a core.
func HashPieces(ctx context.Context, r io.Reader, name string, length, pieceSize int64, workers int, onProgress func(int64)) (*Hashes, error) {
	return hash(ctx, r, name, length, pieceSize, nil, workers, onProgress, false, nil)
}

func hash(ctx context.Context, r io.Reader, name string, length, pieceSize int64, zh *zsyncfile.Header, workers int, onProgress func(int64), whole bool, sink Sink) (*Hashes, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	chunkSize := max(pieceSize, hashChunk)
	if pieceSize > 0 {
		for chunkSize%pieceSize != 0 {
			chunkSize += pieceSize - chunkSize%pieceSize
		}
	}
	nbuf := int(hashBuffers / chunkSize)
	if nbuf < workers+2 {
		nbuf = workers + 2
	}
	out := &Hashes{}
	if pieceSize > 0 {
		out.Pieces = make([]byte, int((length+pieceSize-1)/pieceSize)*sha1.Size)
	}
	var bs int64
	if zh != nil {
		bs = int64(zh.Blocksize)
		out.Blocks = make([]zsyncfile.Block, zsyncfile.NumBlocks(length, zh.Blocksize))
	}
	free := make(chan []byte, nbuf)
	for i := 0; i < nbuf; i++ {
		free <- alignedBuf(int(chunkSize))
	}
	work := make(chan *chunk, nbuf)
	ordered := make(chan *chunk, nbuf)
	release := make(chan *chunk, nbuf)

	wholeSum := make(chan [sha1.Size]byte, 1)
	if !whole {
		wholeSum <- [sha1.Size]byte{}
		close(ordered)
	}
	go func() {
		if !whole {
			return
		}
		w := sha1.New()
		for c := range ordered {
			w.Write(c.buf)
			c.refs.Done()
		}
		var s [sha1.Size]byte
		w.Sum(s[:0])
		wholeSum <- s
	}()
	// The sink sees every chunk in order; after its first error it only lets them go, and the
	// read stops at the next chunk.
	var sinkCh chan *chunk
	sinkErr := make(chan error, 1)
	if sink == nil {
		sinkErr <- nil
	} else {
		sinkCh = make(chan *chunk, nbuf)
		go func() {
			var first error
			for c := range sinkCh {
				if first == nil {
					if err := sink(c.off, c.buf); err != nil {
						first = err
						cancel()
					}
				}
				c.refs.Done()
			}
			sinkErr <- first
		}()
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var strong [][md4.Size]byte
			for c := range work {
				n := int64(len(c.buf))
				for p := int64(0); pieceSize > 0 && p < n; p += pieceSize {
					s := sha1.Sum(c.buf[p:min(p+pieceSize, n)])
					copy(out.Pieces[(c.off+p)/pieceSize*sha1.Size:], s[:])
				}
				if zh != nil {
					strong = blockSums(zh, c.buf, out.Blocks[c.off/bs:], strong)
				}
				c.refs.Done()
			}
		}()
	}
	recycled := make(chan struct{})
	go func() {
		for c := range release {
			c.refs.Wait()
			free <- c.buf[:cap(c.buf)]
		}
		close(recycled)
	}()

	var readErr error
	var off int64
	for off < length {
		if err := ctx.Err(); err != nil {
			readErr = err
			break
		}
		buf := <-free
		n := min(chunkSize, length-off)
		m, err := io.ReadFull(r, buf[:n])
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				readErr = fmt.Errorf("%s: %w (only %d of %d bytes could be read)", name, ErrChanged, off+int64(m), length)
			} else {
				readErr = fmt.Errorf("%s: read at offset %d: %w", name, off, err)
			}
			break
		}
		c := &chunk{off: off, buf: buf[:n]}
		c.refs.Add(1)
		if whole {
			c.refs.Add(1)
			ordered <- c
		}
		if sink != nil {
			c.refs.Add(1)
			sinkCh <- c
		}
		work <- c
		release <- c
		off += n
		if onProgress != nil {
			onProgress(off)
		}
	}
	if readErr == nil {
		var one [1]byte
		if n, _ := r.Read(one[:]); n > 0 {
			readErr = fmt.Errorf("%s: %w (it grew past %d bytes)", name, ErrChanged, length)
		}
	}
	close(work)
	if whole {
		close(ordered)
	}
	if sink != nil {
		close(sinkCh)
	}
	wg.Wait()
	close(release)
	<-recycled
	out.Whole = <-wholeSum
	if err := <-sinkErr; err != nil {
		return nil, err // it, not the cancellation it caused
	}
	if readErr != nil {
		return nil, readErr
	}
	return out, nil
}

// alignedBuf returns n bytes that start on a ChunkAlign boundary.
func alignedBuf(n int) []byte {
	b := make([]byte, n+ChunkAlign)
	skip := int((ChunkAlign - uintptr(unsafe.Pointer(&b[0]))%ChunkAlign) % ChunkAlign)
	return b[skip : skip+n : skip+n]
}

// blockSums writes the zsync records of the blocks of buf (which starts on a block boundary) into
// dst. The MD4s are computed two blocks at a time (md4.AppendBlockSums), the fastest path here;
// the last, partial block of a file goes through zh.Sum, which pads it with zeros. strong is a
// scratch buffer, returned for reuse.
func blockSums(zh *zsyncfile.Header, buf []byte, dst []zsyncfile.Block, strong [][md4.Size]byte) [][md4.Size]byte {
	bs := zh.Blocksize
	full := len(buf) / bs * bs
	strong = md4.AppendBlockSums(strong[:0], buf[:full], bs)
	mask := rollsum.Mask(zh.RsumBytes)
	for k, s := range strong {
		b := &dst[k]
		b.Weak = rollsum.Sum32(buf[k*bs:(k+1)*bs]) & mask
		b.Strong = [16]byte{}
		copy(b.Strong[:zh.ChecksumBytes], s[:])
	}
	if full < len(buf) {
		dst[len(strong)] = zh.Sum(buf[full:])
	}
	return strong
}
