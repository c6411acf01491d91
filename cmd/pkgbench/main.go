// Command pkgbench measures pkgsync against the stock tools on this machine, in the same run, and
// prints Markdown tables of medians:
//
//	go run ./cmd/pkgbench make  [--size 1G] [--runs 5]   # pkgsync make vs zsyncmake + mktorrent (and sha1sum, the floor)
//	go run ./cmd/pkgbench delta [--runs 3] [--short]     # pkgsync update vs the stock zsync client, same .zsync, same origin
//	go run ./cmd/pkgbench pair  [--size 1G] [--runs 3]   # one seeder to one node on loopback: pkgsync, aria2, libtorrent vs curl from nginx
//	go run ./cmd/pkgbench idle  [--packages 100]         # the CPU of a seeder of 100 packages that nobody downloads
//
// Every figure is a ratio against a reference measured in the same run, because absolute times on
// shared machines drift. The tools run as subprocesses so that wall time and peak RSS
// (getrusage's ru_maxrss) are measured the same way for all of them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pkgbench make|delta|pair|idle [flags]  (pkgbench make --help)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "rss-wrap":
		os.Exit(rssWrap(os.Args[2], os.Args[3:]))
	case "make":
		err = benchMake(ctx, os.Args[2:])
	case "delta":
		err = benchDelta(ctx, os.Args[2:])
	case "pair":
		err = benchPair(ctx, os.Args[2:])
	case "idle":
		err = benchIdle(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q: want make, delta, pair or idle", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pkgbench:", err)
		os.Exit(1)
	}
}

// measurement is one subprocess run.
type measurement struct {
	wall  time.Duration
	rssKB int64
	out   []byte
}

// runCmd runs a command and measures its wall time and peak RSS. The command runs under a fresh
// copy of pkgbench (rss-wrap): a child's ru_maxrss starts at the RSS of the process it was
// forked from, and this process holds workloads of hundreds of MiB, so the tools are forked from
// the small wrapper instead and it reports their own peak.
func runCmd(ctx context.Context, dir string, name string, args ...string) (measurement, error) {
	self, err := os.Executable()
	if err != nil {
		return measurement{}, err
	}
	rssFile := filepath.Join(os.TempDir(), fmt.Sprintf("pkgbench-rss-%d", os.Getpid()))
	defer os.Remove(rssFile)
	cmd := exec.CommandContext(ctx, self, append([]string{"rss-wrap", rssFile, name}, args...)...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	m := measurement{wall: time.Since(start), out: out}
	if err != nil {
		return m, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	b, err := os.ReadFile(rssFile)
	if err != nil {
		return m, fmt.Errorf("peak RSS of %s: %w", name, err)
	}
	m.rssKB, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return m, err
}

// rssWrap runs a command with this process's standard streams and writes its peak RSS (KiB)
// to rssFile; it returns the command's exit status.
func rssWrap(rssFile string, args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "pkgbench rss-wrap:", err)
		return 1
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		os.WriteFile(rssFile, []byte(strconv.FormatInt(ru.Maxrss, 10)), 0o644)
	}
	return cmd.ProcessState.ExitCode()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// workdir makes a temporary folder for one benchmark (the caller removes it) and builds the
// pkgsync command into it.
func workdir(ctx context.Context, name string) (dir, bin string, err error) {
	dir, err = os.MkdirTemp("", "pkgbench-"+name+"-")
	if err != nil {
		return "", "", err
	}
	if bin, err = buildPkgsync(ctx, dir); err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	return dir, bin, nil
}

// buildPkgsync compiles the pkgsync command of this checkout into dir.
func buildPkgsync(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "pkgsync")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pkgsync")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building pkgsync (run pkgbench from the repository root): %w", err)
	}
	return bin, nil
}

func need(tools ...string) error {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install -y zsync mktorrent): %w", t, err)
		}
	}
	return nil
}

func newFlags(name string) *pflag.FlagSet {
	return pflag.NewFlagSet(name, pflag.ExitOnError)
}

// warm reads a file once so that every tool finds it in the page cache.
func warm(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for {
		if _, err := f.Read(buf); err != nil {
			return nil
		}
	}
}
