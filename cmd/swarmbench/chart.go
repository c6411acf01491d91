package main

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The chart: one row per run, under the run's figures. On the left, each node's completion time
// as a bar, with B as a dashed line (a node that never finished is a full-height red bar); on the
// right, each host's upload as a share of F (of the new bytes in delta), the origin first, with a
// line at 1. Runs of the same scenario and node count share their axes, so the clients compare at
// a glance. Sizes are in pixels; gonum/plot draws in points, 72 to the inch, at chartDPI.
const (
	chartW   = 1200
	headerH  = 40
	rowH     = 300
	titleH   = 30 // the run's figures, above its panels
	chartDPI = 96
)

// px is a length in pixels of the chart as a vg.Length.
func px(n int) vg.Length { return vg.Length(n) * vg.Inch / chartDPI }

var (
	colText   = color.RGBA{30, 30, 30, 255}
	colAxis   = color.RGBA{120, 120, 120, 255}
	colNode   = color.RGBA{52, 101, 164, 255}
	colFailed = color.RGBA{204, 0, 0, 255}
	colBound  = color.RGBA{245, 121, 0, 255}
	colOrigin = color.RGBA{92, 53, 102, 255}
	colUpload = color.RGBA{78, 154, 6, 255}
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
func chart(runs []*Run) (image.Image, error) {
	h := headerH + rowH*max(1, len(runs))
	img := vgimg.NewWith(vgimg.UseWH(px(chartW), px(h)), vgimg.UseDPI(chartDPI), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	title := plot.New().Title.TextStyle
	title.Color, title.Font.Size = colText, vg.Points(14)
	title.XAlign, title.YAlign = draw.XLeft, draw.YTop
	dc.FillText(title, vg.Point{X: px(10), Y: dc.Max.Y - px(8)},
		"swarmbench: completion time per node (left), upload per host (right)")
	ax := chartAxes(runs)
	for i, r := range runs {
		top := dc.Max.Y - px(headerH+i*rowH)
		sub := title
		sub.Font.Size = vg.Points(11)
		dc.FillText(sub, vg.Point{X: px(10), Y: top - px(4)}, runTitle(r))
		left, err := completionPlot(r, ax[groupKey(r)])
		if err != nil {
			return nil, err
		}
		right, err := uploadPlot(r, ax[groupKey(r)])
		if err != nil {
			return nil, err
		}
		cell := vg.Rectangle{Min: vg.Point{X: dc.Min.X + px(6), Y: top - px(rowH-6)}, Max: vg.Point{X: dc.Max.X - px(6), Y: top - px(titleH)}}
		mid := (cell.Min.X + cell.Max.X) / 2
		left.Draw(draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{Min: cell.Min, Max: vg.Point{X: mid - px(15), Y: cell.Max.Y}}})
		right.Draw(draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{Min: vg.Point{X: mid + px(15), Y: cell.Min.Y}, Max: cell.Max}})
	}
	return img.Image(), nil
}

// runTitle is a run's figures, above its panels.
func runTitle(r *Run) string {
	s := fmt.Sprintf("%s, %s: N=%d, F=%s, A=%s s, B=%s s, B/A=%s, origin sent %.2f %s",
		r.Scenario, r.Client, r.Nodes, sizeString(r.Bytes), optSecs(r.A), secs(r.B), optF(r.Efficiency, "%.2f"), r.OriginBytesRatio, r.unit())
	if r.InterDCBytesRatio != nil {
		s += fmt.Sprintf(", inter-DC %.2f F", *r.InterDCBytesRatio)
	}
	return s
}

// completionPlot is the left panel: each node's completion time, B dashed.
func completionPlot(r *Run, a axes) (*plot.Plot, error) {
	var done, failed plotter.Values
	for _, h := range r.Hosts {
		if h.Role != "node" {
			continue
		}
		if c := h.CompletionS; c != nil {
			done, failed = append(done, *c), append(failed, 0)
		} else {
			done, failed = append(done, 0), append(failed, a.tmax)
		}
	}
	p := newPanel("node", "completion time, s", a.tmax)
	if err := addBars(p, len(done), []barSet{{done, 0, colNode, "node done"}, {failed, 0, colFailed, "never done"}}); err != nil {
		return nil, err
	}
	if err := addLevel(p, r.B, len(done), colBound, "B"); err != nil {
		return nil, err
	}
	return p, nil
}

// uploadPlot is the right panel: each host's upload over F, the origin first, a line at 1.
func uploadPlot(r *Run, a axes) (*plot.Plot, error) {
	origin, nodes := make(plotter.Values, len(r.Hosts)), make(plotter.Values, len(r.Hosts))
	for i, h := range r.Hosts {
		if h.Role == "origin" {
			origin[i] = h.UploadShare
		} else {
			nodes[i] = h.UploadShare
		}
	}
	unit := r.unit()
	p := newPanel("host (origin first)", "upload / "+unit, a.upmax)
	if err := addBars(p, len(r.Hosts), []barSet{{origin, 0, colOrigin, "origin upload / " + unit}, {nodes, 0, colUpload, "node upload / " + unit}}); err != nil {
		return nil, err
	}
	if err := addLevel(p, 1, len(r.Hosts), colAxis, "1 "+unit); err != nil {
		return nil, err
	}
	return p, nil
}

func newPanel(x, y string, ymax float64) *plot.Plot {
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = x, y
	p.Y.Min, p.Y.Max = 0, ymax*1.3 // room for the legend above the bars
	p.X.Tick.Marker, p.Y.Tick.Marker = roundTicks{n: 8, integers: true}, roundTicks{n: 6}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())
	return p
}

type barSet struct {
	vals  plotter.Values
	xmin  float64
	c     color.Color
	label string
}

// addBars draws bar sets over n slots, each bar filling most of its slot.
func addBars(p *plot.Plot, n int, sets []barSet) error {
	p.X.Min, p.X.Max = -0.6, float64(n)-0.4
	width := max(px(1), px(chartW/2-90)*0.8/vg.Length(max(n, 1)))
	for _, s := range sets {
		if len(s.vals) == 0 {
			continue
		}
		bc, err := plotter.NewBarChart(s.vals, width)
		if err != nil {
			return err
		}
		bc.XMin, bc.Color = s.xmin, s.c
		bc.LineStyle.Width = 0
		p.Add(bc)
		p.Legend.Add(s.label, bc)
	}
	return nil
}

// addLevel draws a dashed horizontal line at y across n slots.
func addLevel(p *plot.Plot, y float64, n int, c color.Color, label string) error {
	l, err := plotter.NewLine(plotter.XYs{{X: -0.6, Y: y}, {X: float64(n) - 0.4, Y: y}})
	if err != nil {
		return err
	}
	l.Color, l.Width, l.Dashes = c, vg.Points(1.5), []vg.Length{vg.Points(5), vg.Points(3)}
	p.Add(l)
	p.Legend.Add(label, l)
	return nil
}

func writeChart(path string, runs []*Run) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the chart: %w", err)
	}
	w := bufio.NewWriter(f)
	img, err := chart(runs)
	if err != nil {
		f.Close()
		return fmt.Errorf("drawing the chart %s: %w", path, err)
	}
	if err := png.Encode(w, img); err != nil {
		f.Close()
		return fmt.Errorf("encoding the chart %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing the chart %s: %w", path, err)
	}
	return f.Close()
}

// roundTicks marks about n round values (1, 2 or 5 times a power of ten apart, whole numbers
// only when integers is set) between min and max: plot's default ticks mark too few values for
// these panels, and marks hosts at -0.5.
type roundTicks struct {
	n        int
	integers bool
}

func (t roundTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return nil
	}
	raw := (hi - lo) / float64(t.n)
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*step >= raw {
			step *= m
			break
		}
	}
	if t.integers {
		step = max(step, 1)
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo / step); i*step <= hi; i++ {
		v := i * step
		if v == 0 {
			v = 0 // not -0, which Ceil gives for a small negative lo
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 4, 64)})
	}
	return ticks
}
