// Command pkgsync fans packages out across a data center: `make` describes a package once
// (.torrent + .zsync from one read), `update` rebuilds a new version from an old one and fetches
// only what changed, from peers first and the origin last, `serve` is an origin, `tracker` an
// embedded tracker and `seed` keeps complete packages available to peers.
//
// The command stays thin: flags and output here, the work in the packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/internal/logging"
	"github.com/pkgsync/pkgsync/internal/procs"
)

const usage = `pkgsync: fan packages out across a data center, fetching only what changed.

Usage:
  pkgsync make FILE [flags]              write FILE.torrent and FILE.zsync in one read of FILE
                                         (and FILE.sig with --sign-key)
  pkgsync update --old OLD [flags] SRC   rebuild the new version from OLD, fetch the rest
  pkgsync serve DIR [flags]              serve DIR as an origin (web seed, zsync, tracker)
  pkgsync tracker [flags]                run the embedded BitTorrent tracker
  pkgsync seed FILE.torrent... [flags]   seed complete packages to peers
  pkgsync sync INDEX_URL DIR [flags]     keep DIR current with an origin's index of packages
  pkgsync keygen -o KEY                  make an ed25519 key pair for signing: KEY and KEY.pub
  pkgsync report ANNOUNCE_LOG... [flags]  per package and rollout: who sent what, completion times
  pkgsync demo [flags]                   run origin, tracker and nodes on loopback: v1 -> v2
  pkgsync version                        print the version

Run 'pkgsync COMMAND --help' for the flags of a command.
Exit status: 0 on success (also when already up to date), 1 on failure, 2 on bad usage,
3 when another update of the same output holds its lock (OUT.lock; see update --lock-wait);
sync: 0 everything current, 4 something updated, 1 something failed (see sync --help).
`

// version is set at build time with -ldflags "-X main.version=..." (the release script does);
// when it is empty, versionLine takes the module version from the build info.
var version = ""

type command struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	// network: the command waits on the network most of its run, and starts on one of Go's
	// Ps (procs.Start).
	network bool
	// quiet: the command ends once its work is done, and runs with Go's system monitor kept
	// from polling at every wake-up (procs.QuietMonitor); long-lived commands sleep when idle.
	quiet bool
}

var commands = []command{
	{"make", runMake, false, false},
	{"update", runUpdate, true, true},
	{"serve", runServe, true, false},
	{"tracker", runTracker, true, false},
	{"seed", runSeed, true, false},
	{"sync", runSync, true, true},
	{"keygen", runKeygen, false, false},
	{"report", runReport, false, false},
	{"demo", runDemo, false, false},
}

// findCommand returns the command of the command line's first word, if it names one.
func findCommand(args []string) (command, bool) {
	if len(args) > 0 {
		for _, c := range commands {
			if c.name == args[0] {
				return c, true
			}
		}
	}
	return command{}, false
}

// networkBound reports whether the command line runs a command that waits on the network.
func networkBound(args []string) bool {
	c, _ := findCommand(args)
	return c.network
}

// errUsage marks errors in the command line: exit status 2.
var errUsage = errors.New("usage")

// exitError carries an exit status other than 1 for a failure (3: the output is locked).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

func main() {
	if c, _ := findCommand(os.Args[1:]); c.quiet {
		procs.QuietMonitor() // starts the process again, as itself, if it takes
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile()
	// One of Go's Ps while the work needs less than a core, all once it needs more.
	stopProcs := procs.Start(ctx, networkBound(os.Args[1:]))
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProcs()
	stopProfile()
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status; tests call it with their own writers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		bi, _ := debug.ReadBuildInfo()
		fmt.Fprintln(stdout, versionLine(version, bi))
		return 0
	}
	if c, ok := findCommand(args); ok {
		err := c.run(ctx, args[1:], stdout, stderr)
		var coded exitError
		switch {
		case err == nil, errors.Is(err, pflag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "pkgsync %s: %v\nRun 'pkgsync %s --help' for usage.\n", c.name, err, c.name)
			return 2
		case errors.As(err, &coded):
			if coded.err != nil { // a status that is not a failure (sync's "updated") says nothing
				reportFailure(stderr, c.name, args[1:], err)
			}
			return coded.code
		default:
			reportFailure(stderr, c.name, args[1:], err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "pkgsync: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// reportFailure writes the line a failed command ends with: "pkgsync CMD: ERR" for a person, or,
// under --log-format json, one more JSON record (level ERROR, the command and the error), so
// that every line a log shipper reads on stderr is JSON, the last one too.
func reportFailure(stderr io.Writer, cmd string, args []string, err error) {
	if logFormatIn(args) == "json" {
		if l, lerr := logging.New(stderr, "json", slog.LevelInfo); lerr == nil {
			l.Error("pkgsync "+cmd+" failed", "command", cmd, "err", err.Error())
			return
		}
	}
	fmt.Fprintf(stderr, "pkgsync %s: %v\n", cmd, err)
}

// logFormatIn returns the value of --log-format among a command's arguments ("" when absent),
// read by a flag set that knows only that flag and steps over the others.
func logFormatIn(args []string) string {
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.ParseErrorsAllowlist.UnknownFlags = true
	format := fs.String("log-format", "", "")
	_ = fs.Parse(args)
	return *format
}

// newFlags returns a flag set that prints help to stdout and reports errors without exiting.
func newFlags(name, synopsis string, stdout io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "%s\n\nFlags:\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses args, turning flag errors into errUsage; --help prints the help (pflag calls
// Usage) and returns pflag.ErrHelp.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err // pflag has printed the help
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// versionLine says which build this is: "pkgsync VERSION commit REVISION GOVERSION". VERSION is
// the -ldflags value when set, else the module version that `go install ...@VERSION` records,
// else "devel"; REVISION is the VCS commit the go command stamped (with "-modified" for a
// tree with uncommitted changes), else the one a pseudo-version names, else "unknown".
func versionLine(ldflags string, bi *debug.BuildInfo) string {
	ver, rev, goVer := ldflags, "", "unknown-go"
	if bi != nil {
		goVer = bi.GoVersion
		if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			ver = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev == "" {
			rev = pseudoRevision(bi.Main.Version)
		}
		if rev != "" && modified {
			rev += "-modified"
		}
	}
	if ver == "" {
		ver = "devel"
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("pkgsync %s commit %s %s", ver, rev, goVer)
}

// pseudoRevision returns the commit prefix that ends a pseudo-version, "-" + 14-digit UTC
// time + "-" + 12 hex digits (v0.0.0-20261206191200-0276348e1234, v1.2.4-0.20261206191200-…),
// or "" for any other version.
func pseudoRevision(v string) string {
	v, _, _ = strings.Cut(v, "+") // +incompatible
	rest, rev, ok := cutLast(v, "-")
	if !ok || len(rev) != 12 || strings.Trim(rev, "0123456789abcdef") != "" {
		return ""
	}
	i := strings.LastIndexAny(rest, "-.")
	if i < 0 || len(rest)-i-1 != 14 || strings.Trim(rest[i+1:], "0123456789") != "" {
		return ""
	}
	return rev
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
