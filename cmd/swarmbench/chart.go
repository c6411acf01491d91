package main

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
)

// The chart: one row per run. On the left, each node's completion time as a bar, with B as a
// dashed line (a node that never finished is a full-height red bar); on the right, each host's
// upload as a share of F (of the new bytes in delta), the origin first, with a line at 1. Runs
// of the same scenario and node count share their axes, so the clients compare at a glance.
const (
	chartW    = 1200
	headerH   = 40
	rowH      = 190
	panelTop  = 34 // below the row's title
	panelH    = 120
	leftX0    = 70
	leftX1    = 580
	rightX0   = 680
	rightX1   = 1190
	barGapMin = 1
)

var (
	colBG     = color.RGBA{255, 255, 255, 255}
	colText   = color.RGBA{30, 30, 30, 255}
	colAxis   = color.RGBA{120, 120, 120, 255}
	colNode   = color.RGBA{52, 101, 164, 255}
	colFailed = color.RGBA{204, 0, 0, 255}
	colBound  = color.RGBA{245, 121, 0, 255}
	colOrigin = color.RGBA{92, 53, 102, 255}
	colUpload = color.RGBA{78, 154, 6, 255}
	colGrid   = color.RGBA{220, 220, 220, 255}
)

// axes are the shared scales of a group of runs.
type axes struct{ tmax, upmax float64 }

func groupKey(r *Run) string { return fmt.Sprintf("%s/%d", r.Scenario, r.Nodes) }

// chartAxes finds the scales per scenario and node count: the slowest node or B, and the
// largest upload share or 1, whichever is larger.
func chartAxes(runs []*Run) map[string]axes {
	ax := map[string]axes{}
	for _, r := range runs {
		a := ax[groupKey(r)]
		a.tmax = max(a.tmax, r.B)
		a.upmax = max(a.upmax, 1)
		for _, h := range r.Hosts {
			if h.CompletionS != nil {
				a.tmax = max(a.tmax, *h.CompletionS)
			}
			a.upmax = max(a.upmax, h.UploadShare)
		}
		ax[groupKey(r)] = a
	}
	for k, a := range ax {
		a.tmax = niceCeil(a.tmax * 1.05)
		a.upmax = niceCeil(a.upmax * 1.05)
		ax[k] = a
	}
	return ax
}

// niceCeil rounds v up to a round number: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of
// ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*p >= v*(1-1e-12) {
			return m * p
		}
	}
	return 10 * p
}

// chart draws the runs.
func chart(runs []*Run) *image.RGBA {
	h := headerH + rowH*max(1, len(runs))
	img := image.NewRGBA(image.Rect(0, 0, chartW, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBG}, image.Point{}, draw.Src)
	drawText(img, 10, 8, "SWARMBENCH", 2, colText)
	legend := []struct {
		c color.Color
		s string
	}{{colNode, "node done (s)"}, {colFailed, "never done"}, {colBound, "B"}, {colOrigin, "origin upload / F"}, {colUpload, "node upload / F"}}
	x := 160
	for _, l := range legend {
		fill(img, x, 10, x+12, 22, l.c)
		drawText(img, x+18, 12, l.s, 1, colText)
		x += 18 + textWidth(l.s, 1) + 24
	}
	ax := chartAxes(runs)
	for i, r := range runs {
		drawRun(img, headerH+i*rowH, r, ax[groupKey(r)])
	}
	return img
}

func drawRun(img *image.RGBA, y0 int, r *Run, a axes) {
	title := fmt.Sprintf("%s  %s  N=%d  F=%s  A=%s S  B=%s S  B/A=%s  ORIGIN %.2f %s",
		r.Scenario, r.Client, r.Nodes, sizeString(r.Bytes), optSecs(r.A), secs(r.B), optF(r.Efficiency, "%.2f"), r.OriginBytesRatio, r.unit())
	if r.InterDCBytesRatio != nil {
		title += fmt.Sprintf("  INTER-DC %.2f F", *r.InterDCBytesRatio)
	}
	drawText(img, 10, y0+8, title, 2, colText)
	top, bottom := y0+panelTop, y0+panelTop+panelH

	// Left: completion time per node.
	var nodes []HostResult
	for _, h := range r.Hosts {
		if h.Role == "node" {
			nodes = append(nodes, h)
		}
	}
	frame(img, leftX0, top, leftX1, bottom, fmt.Sprintf("%gS", a.tmax), "0")
	bars(img, leftX0, leftX1, top, bottom, len(nodes), func(i int) (float64, color.Color) {
		if c := nodes[i].CompletionS; c != nil {
			return *c / a.tmax, colNode
		}
		return 1, colFailed
	})
	by := bottom - int(r.B/a.tmax*float64(panelH))
	for x := leftX0; x < leftX1; x += 8 {
		fill(img, x, by-1, min(x+5, leftX1), by+1, colBound)
	}
	drawText(img, leftX1+4, by-3, "B", 1, colBound)
	drawText(img, leftX0, bottom+6, "completion time per node", 1, colAxis)

	// Right: upload share per host, origin first.
	unit := r.unit()
	frame(img, rightX0, top, rightX1, bottom, fmt.Sprintf("%g%s", a.upmax, unit), "0")
	bars(img, rightX0, rightX1, top, bottom, len(r.Hosts), func(i int) (float64, color.Color) {
		if r.Hosts[i].Role == "origin" {
			return r.Hosts[i].UploadShare / a.upmax, colOrigin
		}
		return r.Hosts[i].UploadShare / a.upmax, colUpload
	})
	oy := bottom - int(1/a.upmax*float64(panelH))
	fill(img, rightX0, oy, rightX1, oy+1, colAxis)
	if oy > top+10 && oy < bottom-10 { // clear of the axis labels
		drawText(img, rightX0-6-textWidth("1"+unit, 1), oy-3, "1"+unit, 1, colAxis)
	}
	drawText(img, rightX0, bottom+6, "upload per host, origin first, / "+unit, 1, colAxis)
}

// frame draws a panel's axes with its top and bottom labels to its left.
func frame(img *image.RGBA, x0, top, x1, bottom int, topLabel, bottomLabel string) {
	fill(img, x0, top, x1, top+1, colGrid)
	fill(img, x0, (top+bottom)/2, x1, (top+bottom)/2+1, colGrid)
	fill(img, x0-1, top, x0, bottom+1, colAxis)
	fill(img, x0-1, bottom, x1, bottom+1, colAxis)
	drawText(img, x0-6-textWidth(topLabel, 1), top, topLabel, 1, colText)
	drawText(img, x0-6-textWidth(bottomLabel, 1), bottom-7, bottomLabel, 1, colText)
}

// bars draws n vertical bars between x0 and x1; value(i) is bar i's height as a fraction of the
// panel (clipped to 1) and its colour.
func bars(img *image.RGBA, x0, x1, top, bottom, n int, value func(int) (float64, color.Color)) {
	if n == 0 {
		return
	}
	slot := float64(x1-x0) / float64(n)
	gap := max(barGapMin, int(slot/5))
	for i := 0; i < n; i++ {
		v, c := value(i)
		v = min(max(v, 0), 1)
		bx0 := x0 + int(float64(i)*slot) + gap/2
		bx1 := x0 + int(float64(i+1)*slot) - (gap+1)/2
		fill(img, bx0, bottom-int(v*float64(bottom-top)), max(bx1, bx0+1), bottom, c)
	}
}

func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), &image.Uniform{c}, image.Point{}, draw.Src)
}

func writeChart(path string, runs []*Run) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the chart: %w", err)
	}
	w := bufio.NewWriter(f)
	if err := png.Encode(w, chart(runs)); err != nil {
		f.Close()
		return fmt.Errorf("encoding the chart %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing the chart %s: %w", path, err)
	}
	return f.Close()
}
