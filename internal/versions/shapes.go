package versions

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"time"
)

// The version pairs below model what real releases do to a package, which scattered edits of
// random data do not: the same content at several alignments (a file bundled twice in a tar, the
// same code in several bundles), a version string that changes length in every file (every file
// shifts by a byte or two), tar members added, removed and reordered, and long runs of zeros and
// of repeated patterns (disk images, data sets). Each is deterministic for its seed.

// member is one file of a tar.
type member struct {
	name string
	data []byte
}

// tarOf packs members into an uncompressed tar with fixed times and owners, as a reproducible
// release build does.
func tarOf(ms []member) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		hdr := &tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), ModTime: time.Unix(0, 0), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(err) // names and sizes here are always valid
		}
		tw.Write(m.data)
	}
	tw.Close()
	return buf.Bytes()
}

// Repeats returns a tar of about n bytes that holds one large file three times, each copy at
// another alignment (as npm packages bundle the same code in several builds), and its next
// release, where that file changed in a few places in every copy and the other members in some.
func Repeats(seed uint64, n int) (v1, v2 []byte) {
	r := rand.New(rand.NewPCG(seed, 11))
	shared := Random(seed, n/5)
	sharedNew := Edit(shared, seed+1, 12, 20, 400)
	var old, nw []member
	for i := range 3 {
		// Members of odd sizes between the copies put each copy at another offset mod 512 and
		// mod any block size.
		filler := Random(seed+10+uint64(i), n/20+r.IntN(4096)+i*777)
		old = append(old, member{fmt.Sprintf("dist/other%d.js", i), filler}, member{fmt.Sprintf("dist/build%d.js", i), shared})
		nw = append(nw, member{fmt.Sprintf("dist/other%d.js", i), Edit(filler, seed+20+uint64(i), 3, 10, 200)}, member{fmt.Sprintf("dist/build%d.js", i), sharedNew})
	}
	return tarOf(old), tarOf(nw)
}

// VersionBump returns a tar of about n bytes of files of 4 to 60 KiB, each naming the package's
// version a few times, and the next release, where only the version changed, from 1.9.9 to
// 1.10.0: every file grows by a byte per mention, so everything after the first mention shifts.
func VersionBump(seed uint64, n int) (v1, v2 []byte) {
	r := rand.New(rand.NewPCG(seed, 12))
	var old, nw []member
	for i, total := 0, 0; total < n; i++ {
		size := 4096 + r.IntN(56<<10)
		body := Random(seed+uint64(i)*7919, size)
		var a, b []byte
		mentions := 1 + r.IntN(4)
		for k := range mentions {
			part := body[k*size/mentions : (k+1)*size/mentions]
			a = append(append(a, part...), "version 1.9.9"...)
			b = append(append(b, part...), "version 1.10.0"...)
		}
		name := fmt.Sprintf("pkg/src/file%04d.js", i)
		old, nw = append(old, member{name, a}), append(nw, member{name, b})
		total += len(a) + 512
	}
	return tarOf(old), tarOf(nw)
}

// Reshuffle returns a tar of about n bytes of files of 8 to 512 KiB and its next release, where
// a tenth of the files were removed, as many new ones added, a tenth edited, and the order of
// the members changed (a build that lists its outputs in another order).
func Reshuffle(seed uint64, n int) (v1, v2 []byte) {
	r := rand.New(rand.NewPCG(seed, 13))
	var old []member
	for i, total := 0, 0; total < n; i++ {
		size := 8<<10 + r.IntN(504<<10)
		old = append(old, member{fmt.Sprintf("lib/mod%04d.so", i), Random(seed+uint64(i)*104729, size)})
		total += size + 512
	}
	var nw []member
	for i, m := range old {
		switch r.IntN(10) {
		case 0: // removed
		case 1:
			nw = append(nw, member{m.name, Edit(m.data, seed+uint64(i), 2, 10, 300)})
		default:
			nw = append(nw, m)
		}
		if r.IntN(10) == 0 {
			nw = append(nw, member{fmt.Sprintf("lib/new%04d.so", i), Random(seed+uint64(i)*31+5, 8<<10+r.IntN(120<<10))})
		}
	}
	// Move a third of the members elsewhere.
	for k := 0; k < len(nw)/3; k++ {
		i, j := r.IntN(len(nw)), r.IntN(len(nw))
		nw[i], nw[j] = nw[j], nw[i]
	}
	return tarOf(old), tarOf(nw)
}

// Sparse returns an image of about n bytes that is half runs of zeros and a tenth runs of a
// repeated 4 KiB record, between stretches of data, and its next release, where some stretches
// of data grew or shrank by a few bytes and some zero runs changed length, so that the data
// after them moved off its alignment.
func Sparse(seed uint64, n int) (v1, v2 []byte) {
	r := rand.New(rand.NewPCG(seed, 14))
	record := Random(seed+99, 4096)
	for len(v1) < n {
		data := Random(seed+uint64(len(v1)), 16<<10+r.IntN(240<<10))
		zeros := r.IntN(400 << 10)
		reps := 0
		if r.IntN(4) == 0 {
			reps = 1 + r.IntN(40)
		}
		v1 = append(v1, data...)
		v1 = append(v1, make([]byte, zeros)...)
		switch r.IntN(8) {
		case 0:
			data = Edit(data, seed+uint64(len(v2)), 1, 1, 40)
		case 1:
			zeros += r.IntN(3000) - 1500
		}
		v2 = append(v2, data...)
		v2 = append(v2, make([]byte, max(zeros, 0))...)
		for range reps {
			v1 = append(v1, record...)
			v2 = append(v2, record...)
		}
	}
	return v1, v2
}

// Shape names one of the pair makers above, for the benchmarks and tests that run them all.
type Shape struct {
	Name, What string
	Make       func(seed uint64, n int) (v1, v2 []byte)
}

// Shapes lists the pair makers that model real releases.
var Shapes = []Shape{
	{"repeats", "one file bundled three times at three alignments, edited in each", Repeats},
	{"version-bump", "a version string one byte longer in every file of a tar", VersionBump},
	{"reshuffle", "tar members removed, added, edited and reordered", Reshuffle},
	{"sparse", "runs of zeros and of a repeated record; some moved by a few bytes", Sparse},
}
