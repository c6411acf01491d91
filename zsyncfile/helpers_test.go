package zsyncfile_test

import (
	"crypto/sha1"
	"math/rand/v2"
	"time"

	"github.com/pkgsync/pkgsync/zsyncfile"
)

// testData returns n pseudo-random bytes that depend only on seed (PCG's output is fixed by the
// math/rand/v2 docs). They never start with the gzip magic, which would make zsyncmake look inside.
func testData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x706b6773796e63))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if n >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		b[0] = 0
	}
	return b
}

// makeFile builds the control file zsyncmake would write for data, block by block with Header.Sum.
func makeFile(name string, data []byte, blocksize int, mtime time.Time, urls ...string) *zsyncfile.File {
	f := &zsyncfile.File{Header: zsyncfile.NewHeader(name, int64(len(data)), blocksize, mtime)}
	f.URLs = urls
	f.SHA1 = sha1.Sum(data)
	for off := 0; off < len(data); off += f.Blocksize {
		f.Blocks = append(f.Blocks, f.Sum(data[off:min(off+f.Blocksize, len(data))]))
	}
	return f
}
