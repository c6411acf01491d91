package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/origin"
)

// workload is an old/new pair.
type workload struct {
	name, what string
	old, new   []byte
}

func benchDelta(ctx context.Context, args []string) error {
	fs := newFlags("delta")
	runs := fs.Int("runs", 3, "runs of each client; medians are reported")
	short := fs.Bool("short", false, "small sizes (32 MiB) for a quick check")
	keep := fs.Bool("keep", false, "keep the work folder (the old and new files, their .torrent and .zsync) to rerun a client by hand, e.g. with -v")
	real := fs.String("real", "", "also run the real version pairs in this folder (testdata/corpus/fetch fills ~/.cache/pkgsync-corpus)")
	fs.Parse(args)
	if err := need("zsync"); err != nil {
		return err
	}
	dir, bin, err := workdir(ctx, "delta")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	big := 256 << 20
	if *short {
		big = 32 << 20
	}
	loads, err := deltaWorkloads(ctx, big, *real)
	if err != nil {
		return err
	}

	pub := filepath.Join(dir, "pub")
	os.Mkdir(pub, 0o755)
	srv, err := origin.New(pub, origin.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + "/"
	if *keep {
		// The .zsync files name this origin: serving pub/ at the same address lets a client
		// be rerun by hand.
		defer fmt.Printf("\nwork folder kept: %s\nrerun a client by hand: %s serve %s --listen %s &\n  then e.g. %s update --no-swarm -v --old %s -o /tmp/out %sscattered.tar.zsync\n",
			dir, bin, filepath.Join(dir, "pub"), ln.Addr(), bin, filepath.Join(dir, "scattered.old"), url)
	}

	b := &deltaBench{dir: dir, pub: pub, bin: bin, url: url, srv: srv, runs: *runs, keep: *keep}
	fmt.Printf("update: pkgsync update --no-swarm vs stock zsync, same .zsync, same origin (pkgsync serve), %d runs, medians\n\n", *runs)
	var floors []string // the durable-write floor of each workload, printed after the table
	fmt.Println("| workload | client | bytes fetched | requests | wall s | peak RSS MiB | scan MB/s | time vs zsync | vs zsync + fsync |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for i := range loads {
		floor, err := b.workload(ctx, &loads[i])
		if err != nil {
			return err
		}
		floors = append(floors, floor)
	}
	printDeltaNotes(floors)
	return nil
}

// deltaWorkloads makes the workloads: a Go module's source tars (skipped when the module
// proxy cannot be reached), synthetic edits of big bytes, versions.Shapes at a quarter of
// that, and the version pairs in the folder real if it is set.
func deltaWorkloads(ctx context.Context, big int, real string) ([]workload, error) {
	var loads []workload
	if w, err := goModuleTars(ctx, "golang.org/x/text", "v0.20.0", "v0.21.0"); err != nil {
		fmt.Fprintf(os.Stderr, "pkgbench: skipping the source-tree workload: %v\n", err)
	} else {
		loads = append(loads, w)
	}
	base := versions.Random(1, big)
	loads = append(loads,
		workload{"scattered", fmt.Sprintf("%d MiB, 100 scattered insertions/deletions/overwrites", big>>20), base, versions.Edit(base, 2, 100, 100, 8192)},
		workload{"identical", fmt.Sprintf("%d MiB, old == new (scan only)", big>>20), base, base},
		workload{"unrelated", fmt.Sprintf("%d MiB, old unrelated (every byte rolled)", (big/8)>>20), versions.Random(3, big/8), versions.Random(4, big/8)},
	)
	for _, sh := range versions.Shapes {
		v1, v2 := sh.Make(uint64(len(sh.Name)), big/4)
		loads = append(loads, workload{sh.Name, fmt.Sprintf("%d MiB, %s", len(v2)>>20, sh.What), v1, v2})
	}
	if real != "" {
		pairs, err := realPairs(real)
		if err != nil {
			return nil, err
		}
		loads = append(loads, pairs...)
	}
	return loads, nil
}

// deltaBench is what every workload of pkgbench delta shares: the work folder, the origin
// serving pub/ at url, and the pkgsync binary.
type deltaBench struct {
	dir, pub, bin, url string
	srv                *origin.Server
	runs               int
	keep               bool
}

// clientRuns gathers one client's figures, one entry per run.
type clientRuns struct{ bytes, reqs, wall, rss, scan, durable []float64 }

// deltaCase is one workload on disk: the old version at old, the new one in pub/ as name
// with its .zsync, and the new version's size and SHA-1.
type deltaCase struct {
	name, old, work string
	oldSize         int64
	newSize         int64
	want            [sha1.Size]byte
}

// workload writes w to disk and drops its bytes from memory, runs both clients b.runs times
// on it, prints its two table rows and returns its row of the durable-write floor table.
func (b *deltaBench) workload(ctx context.Context, w *workload) (string, error) {
	name := w.name + ".tar"
	if err := os.WriteFile(filepath.Join(b.pub, name), w.new, 0o644); err != nil {
		return "", err
	}
	if _, err := runCmd(ctx, b.dir, b.bin, "make", filepath.Join(b.pub, name), "--url", b.url+name); err != nil {
		return "", err
	}
	old := filepath.Join(b.dir, w.name+".old")
	if err := os.WriteFile(old, w.old, 0o644); err != nil {
		return "", err
	}
	c := deltaCase{name: name, old: old, work: filepath.Join(b.dir, "work"), oldSize: int64(len(w.old)), newSize: int64(len(w.new)), want: sha1.Sum(w.new)}
	// Drop the workload's bytes from memory once they are on disk.
	w.old, w.new = nil, nil
	debug.FreeOSMemory()
	warm(old)
	warm(filepath.Join(b.pub, name))
	var zs, ps clientRuns
	var ratios, durableRatios []float64
	var floor, floorZsync, floorPkgsync []float64 // durableWrite's time, and over each client's in the same pair
	// Each run is a pair, one client right after the other, the order alternating; the
	// ratio is taken within each pair and the median of the pairs reported, so that a
	// slow spell of this shared machine weighs on both sides of a ratio.
	for i := 0; i < b.runs; i++ {
		first, second := func() error { return b.zsync(ctx, c, &zs) }, func() error { return b.pkgsync(ctx, c, &ps) }
		if i%2 == 1 {
			first, second = second, first
		}
		if err := first(); err != nil {
			return "", err
		}
		if err := second(); err != nil {
			return "", err
		}
		ratios = append(ratios, ps.wall[i]/zs.wall[i])
		durableRatios = append(durableRatios, ps.wall[i]/zs.durable[i])
		// The floor, timed within each pair: this disk's write and flush times drift by
		// half from one minute to the next.
		quiesce()
		d, err := durableWrite(filepath.Join(b.dir, "floor"), c.newSize)
		if err != nil {
			return "", fmt.Errorf("timing the durable write: %w", err)
		}
		floor = append(floor, d.Seconds())
		floorZsync = append(floorZsync, d.Seconds()/zs.wall[i])
		floorPkgsync = append(floorPkgsync, d.Seconds()/ps.wall[i])
	}
	fmt.Printf("| %s: %s | zsync | %.0f | %.0f | %.2f (%.2f) | %.0f | | 1 | 1 |\n", w.name, w.what, median(zs.bytes), median(zs.reqs), median(zs.wall), median(zs.durable), median(zs.rss))
	fmt.Printf("| | pkgsync | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %.2f |\n", median(ps.bytes), median(ps.reqs), median(ps.wall), median(ps.rss), median(ps.scan), median(ratios), median(durableRatios))
	if !b.keep { // 256 MiB each: keep only what was asked for
		os.Remove(filepath.Join(b.pub, name))
		os.Remove(old)
	}
	return fmt.Sprintf("| %s | %.2f | %.2f | %.2f |", w.name, median(floor), median(floorZsync), median(floorPkgsync)), nil
}

// zsync runs the stock zsync client on c once and adds its figures to zs.
func (b *deltaBench) zsync(ctx context.Context, c deltaCase, zs *clientRuns) error {
	os.RemoveAll(c.work)
	os.Mkdir(c.work, 0o755)
	quiesce()
	before := b.srv.Stats()
	out := filepath.Join(c.work, "z.out")
	m, err := runCmd(ctx, c.work, "zsync", "-q", "-i", c.old, "-o", out, b.url+c.name+".zsync")
	if err != nil {
		return err
	}
	after := b.srv.Stats()
	// zsync renames its output into place without an fsync, so its wall time leaves the
	// disk write to the kernel; pkgsync fsyncs before its rename (a cron job must not
	// leave a file that a crash empties). The fsync that makes zsync's output as durable
	// is timed apart, before anything else reads the file.
	fsyncT, err := fsyncFile(out)
	if err != nil {
		return fmt.Errorf("stock zsync's output: %w", err)
	}
	if err := sameContent(out, c.want); err != nil {
		return fmt.Errorf("stock zsync: %w", err)
	}
	zs.durable = append(zs.durable, (m.wall + fsyncT).Seconds())
	zs.bytes = append(zs.bytes, float64(after.BodyBytes-before.BodyBytes))
	zs.reqs = append(zs.reqs, float64(after.Requests-before.Requests))
	zs.wall = append(zs.wall, m.wall.Seconds())
	zs.rss = append(zs.rss, float64(m.rssKB)/1024)
	return nil
}

// pkgsync runs pkgsync update --no-swarm on c once and adds its figures to ps.
func (b *deltaBench) pkgsync(ctx context.Context, c deltaCase, ps *clientRuns) error {
	os.RemoveAll(c.work)
	os.Mkdir(c.work, 0o755)
	quiesce()
	before := b.srv.Stats()
	out := filepath.Join(c.work, "p.out")
	m, err := runCmd(ctx, c.work, b.bin, "update", "--no-swarm", "--json", "--old", c.old, "-o", out, b.url+c.name+".zsync")
	if err != nil {
		return err
	}
	after := b.srv.Stats()
	if err := sameContent(out, c.want); err != nil {
		return fmt.Errorf("pkgsync: %w", err)
	}
	var res struct {
		ScanSeconds float64 `json:"scan_seconds"`
	}
	json.Unmarshal(m.out, &res)
	ps.bytes = append(ps.bytes, float64(after.BodyBytes-before.BodyBytes))
	ps.reqs = append(ps.reqs, float64(after.Requests-before.Requests))
	ps.wall = append(ps.wall, m.wall.Seconds())
	ps.rss = append(ps.rss, float64(m.rssKB)/1024)
	ps.scan = append(ps.scan, float64(c.oldSize)/1e6/max(res.ScanSeconds, 1e-9))
	return nil
}

// printDeltaNotes prints the durable-write floor table and what the columns mean.
func printDeltaNotes(floors []string) {
	fmt.Println("\nThe floor: writing the new version's bytes with O_DIRECT and fsyncing them (once per pair, right after it; medians, the ratios taken within each pair), what any durable update of it pays on this disk:")
	fmt.Println("\n| workload | write + fsync s | of zsync's time | of pkgsync's time |\n| --- | ---: | ---: | ---: |")
	for _, f := range floors {
		fmt.Println(f)
	}
	fmt.Println("\nbytes fetched and requests are counted by the origin and include the .zsync itself (the same for both clients).")
	fmt.Println("time vs zsync is the median over the runs of pkgsync's time over zsync's in the same run (one right after the other, the order alternating).")
	fmt.Println("zsync renames its output into place without an fsync; pkgsync fsyncs before its rename, so that a crash cannot leave an empty or torn file under the package's name.")
	fmt.Println("In brackets, zsync's wall time plus an fsync of its output, timed right after it; \"vs zsync + fsync\" is pkgsync's time over that sum, the cost of the same guarantee.")
}

// realPairs loads the version pairs of a corpus folder (NAME/old, NAME/new, NAME/what).
func realPairs(dir string) ([]workload, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--real: %w", err)
	}
	var out []workload
	for _, e := range ents {
		old, err1 := os.ReadFile(filepath.Join(dir, e.Name(), "old"))
		nw, err2 := os.ReadFile(filepath.Join(dir, e.Name(), "new"))
		if err1 != nil || err2 != nil {
			continue
		}
		what, _ := os.ReadFile(filepath.Join(dir, e.Name(), "what"))
		out = append(out, workload{e.Name(), strings.TrimSpace(string(what)), old, nw})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--real: no version pairs (NAME/old and NAME/new) in %s: run testdata/corpus/fetch", dir)
	}
	return out, nil
}

// durableWrite writes size bytes to a new file at path, with O_DIRECT where the file system has
// it (as pkgsync update does), fsyncs it, removes it and returns how long the write and the
// fsync took: the least a durable update of that many bytes costs on this disk.
func durableWrite(path string, size int64) (time.Duration, error) {
	os.Remove(path)
	defer os.Remove(path)
	const bufSize, align = 1 << 20, 4096
	raw := make([]byte, bufSize+align)
	skip := int((align - uintptr(unsafe.Pointer(&raw[0]))%align) % align)
	buf := raw[skip : skip+bufSize]
	for i := range buf {
		buf[i] = byte(i*131 + i>>9)
	}
	start := time.Now()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_DIRECT, 0o644)
	if err != nil { // no O_DIRECT here (tmpfs): through the page cache
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
			return 0, err
		}
	}
	var off int64
	for ; off+bufSize <= size; off += bufSize {
		if _, err := f.WriteAt(buf, off); err != nil {
			f.Close()
			return 0, err
		}
	}
	f.Close()
	g, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	if _, err := g.WriteAt(buf[:size-off], off); err != nil { // the unaligned tail
		return 0, err
	}
	if err := g.Sync(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// fsyncFile flushes path's data to the disk and returns how long that took.
func fsyncFile(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// quiesce writes out every dirty page and lets the file system finish the work a deletion
// leaves (on a file system mounted with discard, the commit that frees the blocks), so that each
// client starts from the same quiet disk and none pays for the previous one's output.
func quiesce() {
	syscall.Sync()
}

func sameContent(path string, want [sha1.Size]byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if [sha1.Size]byte(h.Sum(nil)) != want {
		return fmt.Errorf("%s differs from the new version", path)
	}
	return nil
}

// goModuleTars makes uncompressed tars of two releases of a Go module's source tree, as a release
// engineer would ship them: files in name order, fixed times and owners, so they are the same on
// every machine. The module zips come from the Go module proxy (checksummed, immutable).
func goModuleTars(ctx context.Context, mod, v1, v2 string) (workload, error) {
	a, err := moduleTar(ctx, mod, v1)
	if err != nil {
		return workload{}, err
	}
	b, err := moduleTar(ctx, mod, v2)
	if err != nil {
		return workload{}, err
	}
	return workload{"gosrc", fmt.Sprintf("%s %s -> %s source tars (%.1f MiB)", mod, v1, v2, float64(len(b))/(1<<20)), a, b}, nil
}

func moduleTar(ctx context.Context, mod, ver string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod+"@"+ver)
	cmd.Dir = os.TempDir() // outside any module: a plain download
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download %s@%s: %w", mod, ver, err)
	}
	var info struct{ Zip string }
	if err := json.Unmarshal(out, &info); err != nil || info.Zip == "" {
		return nil, fmt.Errorf("go mod download %s@%s: no zip in %q", mod, ver, out)
	}
	zr, err := zip.OpenReader(info.Zip)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	files := append([]*zip.File(nil), zr.File...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, f := range files {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Name: path.Base(mod) + "/" + strings.TrimPrefix(f.Name, mod+"@"+ver+"/"), Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes(), nil
}
