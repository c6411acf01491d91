// Package logging makes the one structured logger (log/slog) that pkgsync's commands hand to
// every package that logs: the updater's steps, the swarm's events (bt, and the BitTorrent
// library under it), sync's decisions and the origin's requests. One logger for all of them
// makes the lines of an update and of its swarm read alike, with the same keys for the same
// things (torrent, piece, peer, bytes), in one of two formats: "text" (slog's key=value lines,
// for a person) or "json" (one object a line with time, level and msg, for a log shipper).
//
// A nil *slog.Logger means quiet wherever pkgsync takes one; OrDiscard turns it into a logger
// that drops everything, so that code logs without checking.
package logging

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Formats are the values New accepts (the --log-format flag's), the default first.
var Formats = []string{"text", "json"}

// New returns a logger that writes records of level and above to w in format: "text" or "json".
// Each record is one line, written with one Write.
func New(w io.Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		opts.ReplaceAttr = stringers
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want %s", format, strings.Join(Formats, " or "))
}

// stringers writes a value that can only print itself (a fmt.Stringer that is no error and
// marshals neither to JSON nor to text) as its string, as the text format does. The JSON
// handler would marshal its exported fields instead: for the BitTorrent library's connections
// that walks the whole client, and fails.
func stringers(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	switch v := a.Value.Any().(type) {
	case error, json.Marshaler, encoding.TextMarshaler:
	case fmt.Stringer:
		a.Value = slog.StringValue(fmt.Sprint(v)) // Sprint survives a nil receiver: "<nil>"
	}
	return a
}

// OrDiscard returns l, or a logger that drops everything when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// AtLeast returns a handler that passes h only the records of min and above, whatever h's own
// level: for a library whose Debug records would flood a logger the caller set to Debug.
func AtLeast(h slog.Handler, min slog.Level) slog.Handler {
	return floor{h, min}
}

type floor struct {
	slog.Handler
	min slog.Level
}

func (f floor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f floor) WithAttrs(as []slog.Attr) slog.Handler { return floor{f.Handler.WithAttrs(as), f.min} }
func (f floor) WithGroup(name string) slog.Handler    { return floor{f.Handler.WithGroup(name), f.min} }
