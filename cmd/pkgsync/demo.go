package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/internal/progress"
	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/manifest"
	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/tracker"
	"github.com/pkgsync/pkgsync/updater"
)

const demoSynopsis = `Usage: pkgsync demo [flags]

Runs the whole thing on loopback, with nothing to set up: it writes two versions of a package
(v2 = v1 with scattered edits), makes v2's .torrent and .zsync, starts an origin with the embedded
tracker (pkgsync serve --tracker), and updates several nodes from v1 to v2 at once. Each node then
holds a verified v2; the table shows for each what it reused from v1, got from peers and fetched
from the origin, and how many bytes the origin sent in all.`

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", demoSynopsis, stdout)
	var (
		nodes   int
		size    int64
		edits   int
		dir     string
		jsonOut bool
	)
	fs.IntVar(&nodes, "nodes", 4, "nodes updating at once")
	fs.Int64Var(&size, "size", 32<<20, "package size in bytes")
	fs.IntVar(&edits, "edits", 20, "scattered edits between v1 and v2")
	fs.StringVar(&dir, "dir", "", "work folder (default: a temporary one, removed afterwards)")
	fs.BoolVar(&jsonOut, "json", false, "print the per-node results as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if nodes < 1 || size < 1<<20 {
		return fmt.Errorf("%w: want --nodes >= 1 and --size >= 1 MiB", errUsage)
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "pkgsync-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	pub := filepath.Join(dir, "origin")
	if err := os.MkdirAll(pub, 0o755); err != nil {
		return err
	}
	v1, v2 := demoVersions(size, edits)
	pkg := filepath.Join(pub, "pkg.tar")
	if err := os.WriteFile(pkg, v2, 0o644); err != nil {
		return err
	}
	o, err := startDemoOrigin(pub)
	if err != nil {
		return err
	}
	defer o.close()
	if _, err := manifest.Make(ctx, pkg, manifest.MakeOptions{URL: o.base + "pkg.tar", Trackers: []string{o.base + "announce"}}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "demo: origin and tracker at %s, package %s, %d nodes holding v1\n", o.base, progress.Bytes(size), nodes)

	start := time.Now()
	results, err := runDemoNodes(ctx, dir, o.base, v1, nodes)
	if err != nil {
		return err
	}
	return printDemo(stdout, jsonOut, results, o.srv.Stats().BodyBytes, time.Since(start))
}

// demoOrigin is the demo's origin: pkgsync serve --tracker over pub, on a loopback port.
type demoOrigin struct {
	base  string // http://127.0.0.1:PORT/
	srv   *origin.Server
	close func()
}

func startDemoOrigin(pub string) (*demoOrigin, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tr := tracker.New(tracker.Options{})
	srv, err := origin.New(pub, origin.Options{Tracker: tr.Handler()})
	if err != nil {
		ln.Close()
		tr.Close()
		return nil, err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	return &demoOrigin{
		base: "http://" + ln.Addr().String() + "/",
		srv:  srv,
		close: func() {
			hs.Close()
			srv.Close()
			tr.Close()
		},
	}, nil
}

// runDemoNodes gives each of n nodes a folder holding v1 and updates them all at once from
// base's pkg.tar.torrent, each with the swarm on.
func runDemoNodes(ctx context.Context, dir, base string, v1 []byte, n int) ([]*updater.Result, error) {
	results := make([]*updater.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		nd := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(nd, 0o755); err != nil {
			wg.Wait()
			return nil, err
		}
		old := filepath.Join(nd, "v1.tar")
		if err := os.WriteFile(old, v1, 0o644); err != nil {
			wg.Wait()
			return nil, err
		}
		opt := updater.Options{
			Source:   base + "pkg.tar.torrent",
			Olds:     []string{old},
			Out:      filepath.Join(nd, "pkg.tar"),
			Swarm:    true,
			SeedTime: 0,
		}
		opt.BT = bt.DefaultConfig()
		// Each node on its own loopback address, as on its own host: the tracker, bans and
		// closeness then see one address per node.
		opt.BT.ListenAddr = fmt.Sprintf("127.0.0.%d:0", 2+i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = updater.Run(ctx, opt)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
	}
	return results, nil
}

// printDemo prints the nodes' results as a table or JSON, with what the origin sent in all
// (originBody: every body byte, the .torrent and .zsync included).
func printDemo(stdout io.Writer, jsonOut bool, results []*updater.Result, originBody int64, elapsed time.Duration) error {
	nodes := len(results)
	var fromOrigin int64
	for _, r := range results {
		fromOrigin += r.BytesFromOrigin
	}
	missing := results[0].BytesTotal - results[0].BytesReused
	if jsonOut {
		return json.NewEncoder(stdout).Encode(map[string]any{"nodes": results, "missing_bytes_per_node": missing,
			"origin_package_bytes": fromOrigin, "origin_body_bytes": originBody, "seconds": elapsed.Seconds()})
	}
	fmt.Fprintf(stdout, "%-6s %12s %12s %12s %12s %8s\n", "node", "total", "reused", "from peers", "from origin", "seconds")
	for i, r := range results {
		fmt.Fprintf(stdout, "%-6d %12s %12s %12s %12s %8.2f\n", i, progress.Bytes(r.BytesTotal), progress.Bytes(r.BytesReused),
			progress.Bytes(r.BytesFromPeers), progress.Bytes(r.BytesFromOrigin), r.Seconds)
	}
	fmt.Fprintf(stdout, "each node missed %s of v2; the origin sent %s of package data in all (%.2fx the missing bytes, not %dx); all %d nodes verified v2 in %.1fs\n",
		progress.Bytes(missing), progress.Bytes(fromOrigin), float64(fromOrigin)/float64(max(missing, 1)), nodes, nodes, elapsed.Seconds())
	return nil
}

// demoVersions makes a pseudo-random v1 and a v2 with scattered edits, deterministically.
func demoVersions(size int64, edits int) (v1, v2 []byte) {
	v1 = versions.Random(1, int(size))
	return v1, versions.Edit(v1, 2, edits, 1000, 9000)
}
