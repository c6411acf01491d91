// Package directio holds what a write with O_DIRECT asks of the memory it writes from: a
// buffer that starts on an Align boundary, so that an aligned stretch of a file is an aligned
// stretch of memory too.
//
// It has its own home because packages meet here that should not know each other's business:
// updater writes the bytes of an update straight to the disk from the buffers that
// manifest.Hash reads them into (manifest.HashOptions.NewBuffer and Tee), and manifest only
// hashes; bt's fast path writes the pieces it receives from its aligned piece buffers through
// the descriptor updater opens (Open, bt.Package.Direct). The alignment, the shortest write
// worth sending direct (MinWrite) and the fall back to the page cache where O_DIRECT is
// refused (Writer) are the write path's needs, not the hashing's or the swarm's.
package directio

import "unsafe"

// Align is the alignment O_DIRECT asks of memory and of file offsets on the file systems
// pkgsync writes to: a page. The chunks of manifest.Hash start at multiples of it in the file
// when the piece size is a multiple of it (every power of two from 16 KiB is) or zero.
const Align = 4096

// MinWrite is the shortest write worth sending direct. Each O_DIRECT write is a request to the
// device, waited for, with a fixed cost in CPU (about 0.1 ms on this project's virtual machines)
// and in time; the page cache takes a short write at memory speed, and the fsync before the
// rename writes many of them out together. Measured: the version-bump delta (thousands of short
// stretches) built in 1.05 s all direct and 0.33 s with stretches under MinWrite buffered; in
// the swarm benchmark's fan-out, 32 KiB pieces written direct cost 3 CPU s per GiB, through the
// page cache about 1.
const MinWrite = 256 << 10

// AlignedBuf returns n bytes that start on an Align boundary of memory.
func AlignedBuf(n int) []byte {
	b := make([]byte, n+Align)
	skip := int((Align - uintptr(unsafe.Pointer(&b[0]))%Align) % Align)
	return b[skip : skip+n : skip+n]
}
