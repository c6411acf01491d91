package report

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Title names a rollout: its info hash's first 12 hex digits, the package's name when known,
// and which rollout of the package it is when there are several.
func (r *Rollout) Title() string {
	s := hex.EncodeToString(r.InfoHash[:6])
	if r.Name != "" {
		s += " " + r.Name
	}
	if r.Of > 1 {
		s += fmt.Sprintf(", rollout %d of %d", r.N, r.Of)
	}
	return s
}

// Markdown renders a rollout: a heading, what the figures are relative to, the spread of
// completion times, the origin's share and a table with a row per peer, numbered as in the chart.
func (r *Rollout) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", r.Title())
	size := "from its .torrent"
	if !r.SizeExact {
		size = `the largest "left" announced`
	}
	fmt.Fprintf(&b, "Info hash %x. %s to %s (%s). %d peers, %d of %d nodes completed. F = %s (%d bytes, %s).\n\n",
		r.InfoHash, r.Start.UTC().Format("2006-01-02 15:04:05"), r.End.UTC().Format("15:04:05 MST"), seconds(r.End.Sub(r.Start)),
		len(r.Peers), r.Spread.Done, r.Spread.Nodes, sizeString(r.Size), r.Size, size)
	if r.Spread.Done > 0 {
		s := r.Spread
		fmt.Fprintf(&b, "Completion, from a node's first announce: min %s, median %s, p90 %s, max %s.\n\n",
			seconds(s.Min), seconds(s.Median), seconds(s.P90), seconds(s.Max))
	}
	fmt.Fprintf(&b, "Origin: %.2f F (%s)", r.Share(r.Origin.Bytes), r.Origin.From)
	if r.Origin.From != fromCounters {
		fmt.Fprintf(&b, "; by the peers' counters (downloaded - uploaded, a lower bound) %.2f F", r.Share(r.Origin.Diff))
	}
	b.WriteString(".")
	if r.Origin.Note != "" {
		fmt.Fprintf(&b, " (%s.)", r.Origin.Note)
	}
	b.WriteString("\n\n| # | peer | first announce | completed after | downloaded / F | uploaded / F | last event |\n")
	b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | --- |\n")
	fmt.Fprintf(&b, "| 0 | origin | – | – | – | %.2f | – |\n", r.Share(r.Origin.Bytes))
	for i, p := range r.Peers {
		done := "–"
		switch {
		case p.Seed:
			done = "seed"
		case p.Done:
			done = seconds(p.Took)
		case p.Left > 0 && r.Size > 0:
			done = fmt.Sprintf("no (%.0f%% left)", 100*r.Share(p.Left))
		}
		fmt.Fprintf(&b, "| %d | %s | +%s | %s | %.2f | %.2f | %s |\n", i+1, p.Addr, seconds(p.First.Sub(r.Start)), done,
			r.Share(p.Downloaded), r.Share(p.Uploaded), cmp.Or(p.LastEvent, "(re-announce)"))
	}
	return b.String()
}

// seconds prints a duration in seconds: two decimals below 10 s, one below 1000 s.
func seconds(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	case s < 1000:
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

// sizeString prints a byte count in binary units.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
