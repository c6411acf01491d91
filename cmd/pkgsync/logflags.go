package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/internal/logging"
)

// logFlags is --log-format, the same on every command that logs on stderr: one logger
// (internal/logging) for the command and every package under it, so that an update's steps and
// its swarm's events read alike, as text for a person or as JSON lines for a log shipper.
type logFlags struct {
	format string
}

func (l *logFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&l.format, "log-format", logging.Formats[0],
		"format of the log on stderr: "+strings.Join(logging.Formats, " or ")+" (one JSON object a line, for a log shipper)")
}

// forPeople reports whether stderr is for a person to read (text), not only for a log shipper
// (json): a progress bar there would break the JSON lines.
func (l *logFlags) forPeople() bool { return l.format == "text" }

// loggers returns the command's loggers on stderr: notice for what a person running it is told
// in any case (where it listens, what it waits for, warnings), and verbose for the records of -v:
// notice itself when verbose (-v) is set, nil (quiet) otherwise. A --log-format that is not one
// of logging.Formats is a usage error.
//
// With -v and PKGSYNC_DEBUG set (to anything but empty), debug records come too: each origin
// run and its result, for working out after a benchmark which node fetched what and why.
func (l *logFlags) loggers(stderr io.Writer, verbose bool) (notice, verboseLog *slog.Logger, err error) {
	level := slog.LevelInfo
	if verbose && os.Getenv("PKGSYNC_DEBUG") != "" {
		level = slog.LevelDebug
	}
	notice, err = logging.New(stderr, l.format, level)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --log-format %q: want %s", errUsage, l.format, strings.Join(logging.Formats, " or "))
	}
	if verbose {
		verboseLog = notice
	}
	return notice, verboseLog, nil
}
