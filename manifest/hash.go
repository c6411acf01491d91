package manifest

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/pkgsync/pkgsync/internal/md4"
	"github.com/pkgsync/pkgsync/rollsum"
	"github.com/pkgsync/pkgsync/zsyncfile"
)

// Hashes are what one read of a package yields.
type Hashes struct {
	Pieces []byte            // concatenated SHA-1 of each piece; nil without HashOptions.PieceSize
	Blocks []zsyncfile.Block // zsync block records; nil without HashOptions.Zsync
	Whole  [sha1.Size]byte   // SHA-1 of the whole input; zero without HashOptions.Whole
}

// HashOptions say what Hash computes and how.
type HashOptions struct {
	Name      string            // names the input in errors
	Length    int64             // bytes to read: a reader that ends sooner or goes on is ErrChanged
	PieceSize int64             // >0: the SHA-1 of every PieceSize piece
	Zsync     *zsyncfile.Header // not nil: the record of every Zsync.Blocksize block (PieceSize a multiple of it)
	// Whole asks for the SHA-1 of all Length bytes. A caller whose reader yields only part of
	// the file's bytes yet (a delta update's reused pieces before the swarm brings the rest)
	// leaves it off: it would cost a core for a sum that cannot match.
	Whole bool
	// Workers is the number of goroutines hashing pieces and blocks; 0 means runtime.NumCPU().
	Workers int
	// OnProgress, when set, is called from the reading goroutine with the bytes read so far.
	OnProgress func(done int64)
	// Tee, when set, is handed every chunk, in file order, on a goroutine of its own while the
	// hashes run; the chunk's buffer is reused only once it returns, so the bytes can go on to
	// a file from where they are, with no copy. Its first error ends the read, and Hash returns
	// it.
	Tee func(off int64, buf []byte) error
	// NewBuffer, when set, allocates the chunk buffers (of n bytes each), for a Tee that needs
	// particular memory: O_DIRECT writes want it aligned (see internal/directio).
	NewBuffer func(n int) []byte
}

// hashChunk is the least a chunk holds, and hashBuffers about how much all chunks together
// hold: chunks small enough to stay in the CPU's caches between the read that fills them and
// the hashes that read them, large enough that a Tee writing each one with O_DIRECT keeps up.
const (
	hashChunk   = 1 << 20
	hashBuffers = 4 << 20
)

type chunk struct {
	off  int64
	buf  []byte
	refs sync.WaitGroup
}

// Hash reads opt.Length bytes of r sequentially, in chunks that hold whole pieces, and computes
// what opt asks for: piece SHA-1s, zsync block records, the whole-file SHA-1. Each chunk goes to
// up to three consumers: one of the workers (piece SHA-1s and block sums, any order, disjoint
// slots), the goroutine that feeds the whole-file SHA-1 (it must see bytes in order), and the
// Tee. A chunk's buffer is reused when all are done, so memory stays at a few chunks
// (hashBuffers, or Workers+2 pieces when pieces are larger) whatever the size. A reader that
// ends early or has bytes past Length is reported as ErrChanged.
func Hash(ctx context.Context, r io.Reader, opt HashOptions) (*Hashes, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := newPipeline(opt, cancel)
	whole := p.startWhole()
	teeErr := p.startTee()
	hashed := p.startWorkers()
	recycled := p.startRecycler()
	readErr := p.read(ctx, r)
	p.closeQueues()
	hashed.Wait()
	close(p.release)
	<-recycled
	p.out.Whole = <-whole
	if err := <-teeErr; err != nil {
		return nil, err // it, not the cancellation it caused
	}
	if readErr != nil {
		return nil, readErr
	}
	return p.out, nil
}

// pipeline is one Hash call: the queues between the reader and the consumers of its chunks.
type pipeline struct {
	opt       HashOptions
	cancel    context.CancelFunc // ends the read when the Tee fails
	out       *Hashes
	chunkSize int64
	free      chan []byte // buffers ready for the reader
	work      chan *chunk // to the workers
	ordered   chan *chunk // to the whole-file SHA-1; nil without opt.Whole
	tee       chan *chunk // to opt.Tee; nil without it
	release   chan *chunk // every chunk, to return its buffer to free once all consumers are done
}

func newPipeline(opt HashOptions, cancel context.CancelFunc) *pipeline {
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if opt.NewBuffer == nil {
		opt.NewBuffer = func(n int) []byte { return make([]byte, n) }
	}
	p := &pipeline{opt: opt, cancel: cancel, out: &Hashes{}, chunkSize: chunkSize(opt.PieceSize)}
	if opt.PieceSize > 0 {
		p.out.Pieces = make([]byte, int((opt.Length+opt.PieceSize-1)/opt.PieceSize)*sha1.Size)
	}
	if opt.Zsync != nil {
		p.out.Blocks = make([]zsyncfile.Block, zsyncfile.NumBlocks(opt.Length, opt.Zsync.Blocksize))
	}
	nbuf := max(int(hashBuffers/p.chunkSize), opt.Workers+2)
	p.free = make(chan []byte, nbuf)
	for i := 0; i < nbuf; i++ {
		p.free <- opt.NewBuffer(int(p.chunkSize))
	}
	p.work = make(chan *chunk, nbuf)
	p.release = make(chan *chunk, nbuf)
	if opt.Whole {
		p.ordered = make(chan *chunk, nbuf)
	}
	if opt.Tee != nil {
		p.tee = make(chan *chunk, nbuf)
	}
	return p
}

// chunkSize is the smallest multiple of pieceSize (of 1, without pieces) that is at least
// hashChunk: a chunk holds whole pieces, so a worker hashes each piece from one buffer.
func chunkSize(pieceSize int64) int64 {
	n := max(pieceSize, hashChunk)
	if pieceSize > 0 && n%pieceSize != 0 {
		n += pieceSize - n%pieceSize
	}
	return n
}

// startWhole feeds the chunks to the whole-file SHA-1 in order and sends the sum when the
// ordered queue closes (a zero sum at once without opt.Whole).
func (p *pipeline) startWhole() <-chan [sha1.Size]byte {
	sum := make(chan [sha1.Size]byte, 1)
	if p.ordered == nil {
		sum <- [sha1.Size]byte{}
		return sum
	}
	go func() {
		w := sha1.New()
		for c := range p.ordered {
			w.Write(c.buf)
			c.refs.Done()
		}
		var s [sha1.Size]byte
		w.Sum(s[:0])
		sum <- s
	}()
	return sum
}

// startTee hands the chunks to opt.Tee in order. After its first error it only lets them go,
// and cancels the read, which stops at the next chunk.
func (p *pipeline) startTee() <-chan error {
	errc := make(chan error, 1)
	if p.tee == nil {
		errc <- nil
		return errc
	}
	go func() {
		var first error
		for c := range p.tee {
			if first == nil {
				if err := p.opt.Tee(c.off, c.buf); err != nil {
					first = err
					p.cancel()
				}
			}
			c.refs.Done()
		}
		errc <- first
	}()
	return errc
}

// startWorkers starts opt.Workers goroutines that hash the pieces and blocks of the chunks on
// the work queue into their slots of out.
func (p *pipeline) startWorkers() *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < p.opt.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var strong [][md4.Size]byte
			for c := range p.work {
				p.hashPieces(c)
				if zh := p.opt.Zsync; zh != nil {
					strong = blockSums(zh, c.buf, p.out.Blocks[c.off/int64(zh.Blocksize):], strong)
				}
				c.refs.Done()
			}
		}()
	}
	return &wg
}

// hashPieces writes the SHA-1 of each piece of c into its slot of out.Pieces.
func (p *pipeline) hashPieces(c *chunk) {
	ps := p.opt.PieceSize
	n := int64(len(c.buf))
	for off := int64(0); ps > 0 && off < n; off += ps {
		s := sha1.Sum(c.buf[off:min(off+ps, n)])
		copy(p.out.Pieces[(c.off+off)/ps*sha1.Size:], s[:])
	}
}

// startRecycler returns each chunk's buffer to the free list once every consumer is done with
// it, in the order the chunks were read; the returned channel closes after the last.
func (p *pipeline) startRecycler() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for c := range p.release {
			c.refs.Wait()
			p.free <- c.buf[:cap(c.buf)]
		}
		close(done)
	}()
	return done
}

// read fills chunks from r and queues each to its consumers until opt.Length bytes are read,
// then checks that r has nothing more.
func (p *pipeline) read(ctx context.Context, r io.Reader) error {
	name, length := p.opt.Name, p.opt.Length
	var off int64
	for off < length {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf := <-p.free
		n := min(p.chunkSize, length-off)
		m, err := io.ReadFull(r, buf[:n])
		if err != nil {
			p.free <- buf
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: %w (only %d of %d bytes could be read)", name, ErrChanged, off+int64(m), length)
			}
			return fmt.Errorf("%s: read at offset %d: %w", name, off, err)
		}
		p.queue(&chunk{off: off, buf: buf[:n]})
		off += n
		if p.opt.OnProgress != nil {
			p.opt.OnProgress(off)
		}
	}
	var one [1]byte
	if n, _ := r.Read(one[:]); n > 0 {
		return fmt.Errorf("%s: %w (it grew past %d bytes)", name, ErrChanged, length)
	}
	return nil
}

// queue hands c to every consumer, counting each in c.refs before it can finish.
func (p *pipeline) queue(c *chunk) {
	c.refs.Add(1)
	if p.ordered != nil {
		c.refs.Add(1)
		p.ordered <- c
	}
	if p.tee != nil {
		c.refs.Add(1)
		p.tee <- c
	}
	p.work <- c
	p.release <- c
}

// closeQueues tells the consumers that no chunk follows.
func (p *pipeline) closeQueues() {
	close(p.work)
	if p.ordered != nil {
		close(p.ordered)
	}
	if p.tee != nil {
		close(p.tee)
	}
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
