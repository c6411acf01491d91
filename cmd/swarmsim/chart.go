package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/pkgsync/pkgsync/swarmsim"
)

// The chart: one row per node count and package size. On the left, each run's completion-time
// CDF (the share of nodes done against seconds from their start); on the right, each run's
// origin bytes and inter-site bytes over F, side by side. Runs are named by what differs
// within the row: sites, splay, churn and tracker.

const (
	rowHeight = 5 * vg.Inch
	width     = 16 * vg.Inch
	chartDPI  = 96
)

// groups splits runs by node count and size, in order of first appearance.
func groups(runs []*swarmsim.Result) [][]*swarmsim.Result {
	var out [][]*swarmsim.Result
	index := map[string]int{}
	for _, r := range runs {
		k := fmt.Sprintf("%d/%d", r.Nodes, r.Bytes)
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], r)
	}
	return out
}

func label(r *swarmsim.Result) string {
	return fmt.Sprintf("%d site, splay %gs, churn %g%%, %s", r.Sites, r.SplayS, 100*r.Churn, r.Tracker)
}

func drawChart(path string, runs []*swarmsim.Result) error {
	gs := groups(runs)
	img := vgimg.NewWith(vgimg.UseWH(width, rowHeight*vg.Length(len(gs))), vgimg.UseDPI(chartDPI))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(gs), Cols: 2, PadX: vg.Inch / 4, PadY: vg.Inch / 4,
		PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	for i, g := range gs {
		cdf, err := cdfPlot(g)
		if err != nil {
			return err
		}
		cdf.Draw(tiles.At(dc, 0, i))
		bars, err := bytesPlot(g)
		if err != nil {
			return err
		}
		bars.Draw(tiles.At(dc, 1, i))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cdfPlot draws the completion-time CDF of each run of a group.
func cdfPlot(g []*swarmsim.Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%d nodes, %s: share of nodes done", g[0].Nodes, swarmsim.SizeString(g[0].Bytes))
	p.X.Label.Text = "seconds from the node's start"
	p.Y.Label.Text = "share of nodes"
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	for i, r := range g {
		pts := make(plotter.XYs, 0, 2*len(r.NodeTimes)+1)
		pts = append(pts, plotter.XY{X: 0, Y: 0})
		for k, t := range r.NodeTimes {
			pts = append(pts, plotter.XY{X: t, Y: float64(k) / float64(r.Nodes)},
				plotter.XY{X: t, Y: float64(k+1) / float64(r.Nodes)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
		l.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(label(r), l)
	}
	return p, nil
}

// bytesPlot draws each run's origin and inter-site bytes over F.
func bytesPlot(g []*swarmsim.Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "origin and inter-site bytes / F"
	origin := make(plotter.Values, len(g))
	inter := make(plotter.Values, len(g))
	names := make([]string, len(g))
	for i, r := range g {
		origin[i] = r.OriginBytesRatio
		if r.InterDCBytesRatio != nil {
			inter[i] = *r.InterDCBytesRatio
		}
		names[i] = fmt.Sprintf("%d", i+1)
	}
	w := vg.Points(8)
	bo, err := plotter.NewBarChart(origin, w)
	if err != nil {
		return nil, err
	}
	bo.Color = color.RGBA{92, 53, 102, 255}
	bo.Offset = -w / 2
	bi, err := plotter.NewBarChart(inter, w)
	if err != nil {
		return nil, err
	}
	bi.Color = color.RGBA{245, 121, 0, 255}
	bi.Offset = w / 2
	p.Add(bo, bi)
	p.Legend.Add("origin / F", bo)
	p.Legend.Add("inter-site / F", bi)
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Label.Text = "run (legend order on the left)"
	return p, nil
}
