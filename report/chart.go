package report

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The chart has one row per rollout, each of two panels: on the left each peer's download and
// upload as a share of the package, the origin's upload first (bars numbered as the table's
// rows), with a line at 1 F; on the right the share of nodes done against the time since their
// first announce (a CDF, which tops out below 1 when nodes never completed), with the median
// and p90 marked.
const (
	chartDPI   = 96
	chartW     = 900 * vg.Length(1) // points: 1200 pixels at chartDPI
	chartRowH  = 270 * vg.Length(1) // 360 pixels
	barsShare  = 0.6                // of the width, for the bar panel
	maxLabeled = 40                 // peers labelled one by one; beyond, every k-th
)

// MaxChartRows bounds the rollouts drawn in one chart.
const MaxChartRows = 12

var (
	colDownload = color.RGBA{52, 101, 164, 255}
	colUpload   = color.RGBA{78, 154, 6, 255}
	colOrigin   = color.RGBA{92, 53, 102, 255}
	colRef      = color.RGBA{120, 120, 120, 255}
	colMedian   = color.RGBA{245, 121, 0, 255}
	colP90      = color.RGBA{204, 0, 0, 255}
)

// WritePNG draws the rollouts (at most MaxChartRows) as a PNG.
func WritePNG(w io.Writer, rollouts []*Rollout) error {
	if len(rollouts) == 0 {
		return errors.New("no rollout to draw")
	}
	if len(rollouts) > MaxChartRows {
		return fmt.Errorf("%d rollouts: a chart holds at most %d", len(rollouts), MaxChartRows)
	}
	rows := make([][]*plot.Plot, len(rollouts))
	for i, r := range rollouts {
		bars, err := sharesPlot(r)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Title(), err)
		}
		cdf, err := cdfPlot(r)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Title(), err)
		}
		rows[i] = []*plot.Plot{bars, cdf}
	}
	img := vgimg.NewWith(vgimg.UseWH(chartW, chartRowH*vg.Length(len(rollouts))), vgimg.UseDPI(chartDPI),
		vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	for i, row := range rows {
		top := dc.Max.Y - chartRowH*vg.Length(i)
		cell := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: dc.Min.X, Y: top - chartRowH}, Max: vg.Point{X: dc.Max.X, Y: top}}}
		cell = draw.Crop(cell, 6, -6, 6, -6)
		split := cell.Min.X + (cell.Max.X-cell.Min.X)*barsShare
		left, right := cell, cell
		left.Max.X, right.Min.X = split-12, split+12
		row[0].Draw(left)
		row[1].Draw(right)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("encoding the chart: %w", err)
	}
	return nil
}

// sharesPlot is the left panel: download and upload per peer over F, the origin first.
func sharesPlot(r *Rollout) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: traffic per peer / F (F = %s)", r.Title(), sizeString(r.Size))
	p.Y.Label.Text = "share of F"
	p.X.Label.Text = "peer (0 = origin, others as in the table)"
	n := len(r.Peers)
	down, up := make(plotter.Values, n), make(plotter.Values, n)
	for i, peer := range r.Peers {
		down[i], up[i] = r.Share(peer.Downloaded), r.Share(peer.Uploaded)
	}
	width := min(vg.Points(12), chartW*barsShare*0.8/vg.Length(2*(n+1)))
	var charts []*plotter.BarChart
	for _, b := range []struct {
		vals   plotter.Values
		xmin   float64
		offset vg.Length
		c      color.Color
		label  string
	}{
		{plotter.Values{r.Share(r.Origin.Bytes)}, 0, width / 2, colOrigin, "origin upload (" + r.Origin.From + ")"},
		{down, 1, -width / 2, colDownload, "download"},
		{up, 1, width / 2, colUpload, "upload"},
	} {
		if len(b.vals) == 0 {
			continue
		}
		bc, err := plotter.NewBarChart(b.vals, width)
		if err != nil {
			return nil, err
		}
		bc.XMin, bc.Offset, bc.Color = b.xmin, b.offset, b.c
		bc.LineStyle.Width = 0
		p.Add(bc)
		p.Legend.Add(b.label, bc)
		charts = append(charts, bc)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 1}, {X: float64(n) + 0.5, Y: 1}})
	if err != nil {
		return nil, err
	}
	one.Color, one.Dashes = colRef, []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	legendAbove(p)
	p.Add(plotter.NewGrid())
	top := 1.0
	for _, bc := range charts {
		for i := range bc.Values {
			top = max(top, bc.Values[i])
		}
	}
	p.Y.Min, p.Y.Max = 0, top*1.45 // room for the legend above the bars
	p.Y.Tick.Marker = niceTicks{6}
	labels := make([]string, n+1)
	step := (n + maxLabeled - 1) / maxLabeled
	for i := range labels {
		if i%max(step, 1) == 0 {
			labels[i] = fmt.Sprint(i)
		}
	}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.6, float64(n)+0.6
	return p, nil
}

// cdfPlot is the right panel: the share of nodes done against the time since their first
// announce.
func cdfPlot(r *Rollout) (*plot.Plot, error) {
	p := plot.New()
	s := r.Spread
	p.Title.Text = fmt.Sprintf("completion: %d of %d nodes, min %s, max %s", s.Done, s.Nodes, seconds(s.Min), seconds(s.Max))
	p.X.Label.Text = "seconds since the node's first announce"
	p.Y.Label.Text = "share of nodes done"
	p.Y.Min, p.Y.Max = 0, 1.02
	p.X.Min = 0
	p.X.Tick.Marker = niceTicks{8}
	p.Add(plotter.NewGrid())
	var took []float64
	for _, peer := range r.Peers {
		if !peer.Seed && peer.Done {
			took = append(took, peer.Took.Seconds())
		}
	}
	slices.Sort(took)
	pts := plotter.XYs{{X: 0, Y: 0}}
	for i, t := range took {
		pts = append(pts, plotter.XY{X: t, Y: float64(i+1) / float64(max(s.Nodes, 1))})
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	line.StepStyle = plotter.PostStep
	line.Color, line.Width = colDownload, vg.Points(2)
	p.Add(line)
	p.Legend.Add("nodes done", line)
	if s.Done > 0 {
		for _, m := range []struct {
			label string
			v     float64
			c     color.Color
		}{{"median " + seconds(s.Median), s.Median.Seconds(), colMedian}, {"p90 " + seconds(s.P90), s.P90.Seconds(), colP90}} {
			l, err := plotter.NewLine(plotter.XYs{{X: m.v, Y: 0}, {X: m.v, Y: 1}})
			if err != nil {
				return nil, err
			}
			l.Color, l.Dashes = m.c, []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
			p.Legend.Add(m.label, l)
		}
		p.X.Max = s.Max.Seconds() * 1.05
	} else {
		p.X.Max = 1
	}
	legendAbove(p)
	return p, nil
}

// legendAbove puts p's legend in its top left corner, small and on white, so that it stays
// legible over bars and lines.
func legendAbove(p *plot.Plot) {
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(4), -vg.Points(2)
}

// niceTicks marks about n round values (1, 2 or 5 times a power of ten apart) between min and
// max; plot's default marks too few for a panel this size.
type niceTicks struct{ n int }

func (t niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	raw := (hi - lo) / float64(t.n)
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*step >= raw {
			step *= m
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		v = math.Round(v/step) * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 4, 64)})
		if mid := v + step/2; mid <= hi {
			ticks = append(ticks, plot.Tick{Value: mid}) // a minor tick
		}
	}
	return ticks
}
