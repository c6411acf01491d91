package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// report is the JSON file: the mode, when it started, the machine's CPU count and the runs.
type report struct {
	Mode string    `json:"mode"`
	Date time.Time `json:"date"`
	CPUs int       `json:"cpus"`
	// Seed is the first run's seed (--seed); Args the command line, to run it again.
	Seed uint64   `json:"seed"`
	Args []string `json:"args,omitempty"`
	Runs []*Run   `json:"runs"`
}

func writeJSON(path string, rep *report) error {
	if rep.Runs == nil {
		rep.Runs = []*Run{}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the JSON: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the JSON: %w", err)
	}
	return nil
}

// unit names what a run's ratios are relative to: F, or the changed bytes in delta.
func (r *Run) unit() string {
	if r.ChangedBytes != nil {
		return "new"
	}
	return "F"
}

// summary is one line for the progress log.
func (r *Run) summary() string {
	if r.A == nil {
		return fmt.Sprintf("FAILED: %s", r.Error)
	}
	s := fmt.Sprintf("A=%ss B=%ss B/A=%.2f, origin sent %.2f %s (package %s, metadata %s in %s requests), max upload %.0f%% of %s (%.1fx the mean), "+
		"CPU %.0f%% (peak %.0f%%), nodes used %.1f CPU s (%.2f each), load average %s at the start",
		secs(*r.A), secs(r.B), *r.Efficiency, r.OriginBytesRatio, r.unit(), optF(r.OriginPackageRatio, "%.3f "+r.unit()),
		optI(r.OriginMetaBytes), optI(r.OriginMetaRequests), 100*r.MaxUploadShare, r.unit(), r.UploadMaxOverMean,
		r.CPUPercent, r.CPUPeakPercent, r.ClientsCPUS, r.ClientsCPUSPerNode, loadString(r.LoadAvgStart))
	if r.SplayS > 0 {
		s += fmt.Sprintf(", (A-D)/B=%s, median transfer %ss", optF(r.AMinusSplayOverB, "%.2f"), optSecs(r.MedianTransferS))
	}
	if r.StartDelayMaxS != nil {
		s += fmt.Sprintf(", process start to first log line median %ss, max %ss", optSecs(r.StartDelayMedianS), optSecs(r.StartDelayMaxS))
	}
	if r.Churn > 0 {
		s += fmt.Sprintf(", %d nodes killed and restarted, %d of them verified", r.Killed, r.RestartedVerified)
	}
	if r.InterDCBytesRatio != nil {
		s += fmt.Sprintf(", inter-DC %.2f F", *r.InterDCBytesRatio)
	}
	if len(r.OriginHTTPFiles) > 0 {
		paths := make([]string, 0, len(r.OriginHTTPFiles))
		for p := range r.OriginHTTPFiles {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		var parts []string
		for _, p := range paths {
			parts = append(parts, fmt.Sprintf("%s %d", p, r.OriginHTTPFiles[p]))
		}
		s += "; origin HTTP body bytes: " + strings.Join(parts, ", ")
	}
	if r.Error != "" {
		s += "; " + r.Error
	}
	return s
}

// markdown renders the runs as a table with its legend, and the medians of repeated runs.
func markdown(rep *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## swarmbench %s, %s, %d CPUs, seed %d\n\n", rep.Mode, rep.Date.UTC().Format("2006-01-02 15:04 MST"), rep.CPUs, rep.Seed)
	if len(rep.Args) > 0 {
		fmt.Fprintf(&b, "`swarmbench %s`\n\n", strings.Join(rep.Args, " "))
	}
	b.WriteString("| scenario | client | N | F | swarm | A s | median s | B s | B/A | (A-D)/B | origin sent | of it, package | origin meta/node | inter-DC | max upload | max/mean upload | CPU % mean/peak | CPU s/node | load avg | nodes ok |\n")
	b.WriteString("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	var rates, notes []string
	for _, r := range rep.Runs {
		b.WriteString(runRow(r))
		if r.NodeRateMbit > 0 {
			rate := fmt.Sprintf("nodes %g Mbit/s up and down, origin %g", r.NodeRateMbit, r.OriginRateMbit)
			if r.InterDCRateMbit != nil {
				rate += fmt.Sprintf(", inter-DC link %g each way", *r.InterDCRateMbit)
			}
			rates = appendUnique(rates, rate)
		}
		for _, n := range r.Notes {
			notes = appendUnique(notes, fmt.Sprintf("%s, %s: %s.", r.Scenario, r.Client, n))
		}
		if r.Error != "" {
			notes = append(notes, fmt.Sprintf("%s, %s, N=%d: **%s**", r.Scenario, r.Client, r.Nodes, r.Error))
		}
	}
	b.WriteString("\n")
	for _, rate := range rates {
		fmt.Fprintf(&b, "Shaped links (tc tbf): %s.\n", rate)
	}
	b.WriteString(legend)
	for _, n := range notes {
		b.WriteString("\n- " + n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(mediansTable(rep.Runs))
	return b.String()
}

const legend = `Swarm: the tracker (embedded: pkgsync serve --tracker; opentracker: Debian's), K its cap on a peer list, ` +
	`D the splay (each node starts at a uniform random offset in [0, D)), P the share of nodes killed with SIGKILL once mid-download and started again 5 s later. ` +
	`A: seconds from the start until the last node held the verified package; median: the median node. ` +
	`B = max(F/u_origin, F/d_node, N*F/(u_origin + N*u_node)) for the shaped rates (and F/inter-DC rate with two data centers); ` +
	`B/A is the efficiency (TCP/IP framing takes about 4% of a shaped link); (A-D)/B: the last node is done within D + this many B. ` +
	`Origin sent and upload: bytes the host put on its link (veth counters), over F, or over the bytes of v2 that are new ("new") in delta; "of it, package" is the package's own HTTP body bytes as the origin's server wrote them (the rest: the .torrent per node, the .zsync, HTTP headers, tracker answers, TCP/IP framing; a client that drops a response midway, as aria2 does with its web-seed requests, leaves written bytes unsent, so this can exceed what went out). ` +
	`Origin meta/node: the HTTP body bytes of everything but the package (.torrent, .zsync, index) over N (origin_meta_bytes in the JSON; headers and the tracker's answers not included). ` +
	`Inter-DC: bytes over the link in the busier direction, over F. CPU: the whole machine's busy share during the run, 100 = every core (other load on the machine included); ` +
	`CPU s/node: user + system seconds of the node processes, per node; load avg: the machine's 1-minute load average when the run started. ` +
	`Nodes ok: nodes whose file matched the package's SHA-1 at the end, and of the killed ones, those that did.` + "\n"

// runRow is one run's line of the table.
func runRow(r *Run) string {
	f := sizeString(r.Bytes)
	if r.ChangedBytes != nil {
		f += fmt.Sprintf(" (%s new)", sizeString(*r.ChangedBytes))
	}
	interDC := "–"
	if r.InterDCBytesRatio != nil {
		interDC = fmt.Sprintf("%.2f F", *r.InterDCBytesRatio)
	}
	pkgPart := "–"
	if r.OriginPackageRatio != nil {
		pkgPart = fmt.Sprintf("%.2f %s", *r.OriginPackageRatio, r.unit())
	}
	ok := fmt.Sprintf("%d/%d", r.Verified, r.Nodes)
	if r.Killed > 0 {
		ok += fmt.Sprintf(" (killed %d/%d)", r.RestartedVerified, r.Killed)
	}
	return fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %.2f %s | %s | %s | %s | %.0f%% %s | %.2f | %.0f/%.0f | %.2f | %s | %s |\n",
		r.Scenario, r.Client, r.Nodes, f, swarmString(r.Tracker, r.MaxPeers, r.OriginFetchers, r.SplayS, r.Churn),
		optSecs(r.A), optSecs(r.MedianS), secs(r.B), optF(r.Efficiency, "%.2f"), optF(r.AMinusSplayOverB, "%.2f"),
		r.OriginBytesRatio, r.unit(), pkgPart, perNode(r.OriginMetaBytes, r.Nodes), interDC,
		100*r.MaxUploadShare, r.unit(), r.UploadMaxOverMean, r.CPUPercent, r.CPUPeakPercent, r.ClientsCPUSPerNode,
		loadString(r.LoadAvgStart), ok)
}

// swarmString names the swarm's settings: the tracker, then K, R (origin fetchers), D and P
// when set.
func swarmString(tracker string, maxPeers, fetchers int, splayS, churn float64) string {
	parts := []string{cmp.Or(tracker, trackerEmbedded)}
	if maxPeers > 0 {
		parts = append(parts, fmt.Sprintf("K=%d", maxPeers))
	}
	if fetchers != defaultFetchers(cmp.Or(tracker, trackerEmbedded), maxPeers) {
		parts = append(parts, fmt.Sprintf("R=%d", fetchers)) // R=0: roles off
	}
	if splayS > 0 {
		parts = append(parts, fmt.Sprintf("D=%gs", splayS))
	}
	if churn > 0 {
		parts = append(parts, fmt.Sprintf("P=%g%%", 100*churn))
	}
	return strings.Join(parts, " ")
}

// perNode prints bytes over n nodes in KiB, "–" when unknown.
func perNode(bytes *int64, n int) string {
	if bytes == nil || n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f KiB", float64(*bytes)/float64(n)/kib)
}

// loadString prints the 1-minute load average, "–" when unknown.
func loadString(la *[3]float64) string {
	if la == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f", la[0])
}

func optI(v *int64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprint(*v)
}

func optF(v *float64, format string) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf(format, *v)
}

// secs prints seconds with two decimals below 10 s and one above.
func secs(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func optSecs(v *float64) string {
	if v == nil {
		return "–"
	}
	return secs(*v)
}

func appendUnique(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(list, s)
}

// sizeString prints a byte count in binary units.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 10<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
