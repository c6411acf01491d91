package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/report"
)

const reportSynopsis = `Usage: pkgsync report ANNOUNCE_LOG... [flags]

Sums up rollouts from the tracker's announce log (pkgsync tracker --announce-log, or the stderr of
pkgsync serve --tracker: lines that are not announces are skipped). For each package (info hash)
and rollout (announces with no pause longer than --gap), a Markdown table on stdout: each peer's
download and upload as a share of the package (F), the origin's share, each node's completion time
from its first announce, and their spread (min, median, p90, max); --png draws the same as a chart.

The origin's share comes from --access-log (pkgsync serve --access-log: the package's body bytes
during the rollout) or --stats (its /.pkgsync/stats, a file or URL, for a package with one
rollout), else from the peers' own counters (downloaded minus uploaded: the bytes that came from
outside the swarm). F is the largest "left" a peer announced unless --torrent gives the package's
.torrent, which also names the package and its path on the origin.

Examples:
  pkgsync report /var/log/pkgsync-tracker/announces.jsonl --png rollout.png
  pkgsync report origin.log --access-log access.log --torrent pkg.tar.torrent --md rollout.md`

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("report", reportSynopsis, stdout)
	var accessLog, stats, pngPath, mdPath, only string
	var torrents []string
	var gap time.Duration
	fs.StringVar(&accessLog, "access-log", "", "the origin's access log (pkgsync serve --access-log)")
	fs.StringVar(&stats, "stats", "", "the origin's /.pkgsync/stats JSON: a file, or the URL to fetch it from")
	fs.StringArrayVar(&torrents, "torrent", nil, "a package's .torrent: exact size, name and origin path (repeatable)")
	fs.StringVar(&pngPath, "png", "", "draw the chart to this PNG file")
	fs.StringVar(&mdPath, "md", "", "write the Markdown to this file too")
	fs.DurationVar(&gap, "gap", report.DefaultGap, "a pause longer than this between a package's announces starts a new rollout")
	fs.StringVar(&only, "info-hash", "", "only the package whose info hash starts with these hex digits")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: name at least one announce log", errUsage)
	}
	if gap <= 0 {
		return fmt.Errorf("%w: --gap %v: want a positive duration", errUsage, gap)
	}
	only = strings.ToLower(only)
	if _, err := hex.DecodeString(only + strings.Repeat("0", len(only)%2)); err != nil {
		return fmt.Errorf("%w: --info-hash %q: want hex digits", errUsage, only)
	}

	opt := report.Options{Gap: gap, Packages: map[[20]byte]report.Package{}}
	for _, t := range torrents {
		ih, pkg, err := report.LoadTorrent(t)
		if err != nil {
			return err
		}
		opt.Packages[ih] = pkg
	}
	var announces []report.Announce
	for _, name := range fs.Args() {
		l, err := readFile(name, func(r io.Reader) (*report.AnnounceLog, error) { return report.ReadAnnounceLog(r, name) })
		if err != nil {
			return err
		}
		if l.Other > 0 || l.Refused > 0 {
			fmt.Fprintf(stderr, "pkgsync report: %s: %d announces; skipped %d refused requests and %d other lines\n",
				name, len(l.Announces), l.Refused, l.Other)
		}
		for _, a := range l.Announces {
			if strings.HasPrefix(hex.EncodeToString(a.InfoHash[:]), only) {
				announces = append(announces, a)
			}
		}
	}
	if len(announces) == 0 {
		what := "no announce"
		if only != "" {
			what += " of info hash " + only + "..."
		}
		return fmt.Errorf("%s in %s", what, strings.Join(fs.Args(), ", "))
	}
	if accessLog != "" {
		var err error
		if opt.Access, err = readFile(accessLog, func(r io.Reader) ([]report.AccessEntry, error) { return report.ReadAccessLog(r, accessLog) }); err != nil {
			return err
		}
	}
	if stats != "" {
		var err error
		if opt.Stats, err = readStats(ctx, stats); err != nil {
			return err
		}
	}

	rollouts := report.Summarize(announces, opt)
	var md strings.Builder
	for i, r := range rollouts {
		if i > 0 {
			md.WriteString("\n")
		}
		md.WriteString(r.Markdown())
	}
	io.WriteString(stdout, md.String())
	if mdPath != "" {
		if err := os.WriteFile(mdPath, []byte(md.String()), 0o644); err != nil {
			return err
		}
	}
	if pngPath != "" {
		drawn := rollouts
		if len(drawn) > report.MaxChartRows {
			drawn = drawn[len(drawn)-report.MaxChartRows:]
			fmt.Fprintf(stderr, "pkgsync report: the chart shows the last %d of %d rollouts (--info-hash picks a package)\n", len(drawn), len(rollouts))
		}
		if err := writePNG(pngPath, drawn); err != nil {
			return err
		}
	}
	return nil
}

// readFile opens name and hands it to read.
func readFile[T any](name string, read func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(name)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return read(bufio.NewReaderSize(f, 256<<10))
}

// readStats reads --stats from a file, or from the origin when it is an http(s) URL.
func readStats(ctx context.Context, src string) (*origin.Stats, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return readFile(src, func(r io.Reader) (*origin.Stats, error) { return report.ReadStats(r, src) })
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("--stats %s: %w", src, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("--stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("--stats %s: %s", src, resp.Status)
	}
	return report.ReadStats(resp.Body, src)
}

func writePNG(path string, rollouts []*report.Rollout) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := report.WritePNG(w, rollouts); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
