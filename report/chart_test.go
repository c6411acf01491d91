package report

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
)

// TestWritePNG draws two rollouts (one with a node that never completed, one of a package
// nobody completed) and checks that the result is a PNG of the expected size with something on
// it.
func TestWritePNG(t *testing.T) {
	as := append(fanout(), ann('b', 1, 3, "started", 0, 0, 500))
	rs := Summarize(as, Options{})
	var buf bytes.Buffer
	if err := WritePNG(&buf, rs); err != nil {
		t.Fatal(err)
	}
	if buf.Len() < 20<<10 {
		t.Errorf("the PNG is only %d bytes", buf.Len())
	}
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 2*360 {
		t.Errorf("the chart is %v, want 1200x720", b)
	}
	colours := map[string]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			for name, c := range map[string]struct{ r, g, b uint8 }{"download": {52, 101, 164}, "upload": {78, 154, 6}, "origin": {92, 53, 102}} {
				if uint8(r>>8) == c.r && uint8(g>>8) == c.g && uint8(b>>8) == c.b {
					colours[name] = true
				}
			}
		}
	}
	if len(colours) != 3 {
		t.Errorf("the chart shows only the colours %v of download, upload and origin", colours)
	}

	if err := WritePNG(&buf, nil); err == nil {
		t.Error("WritePNG of no rollout: no error")
	}
	many := make([]*Rollout, MaxChartRows+1)
	for i := range many {
		many[i] = rs[0]
	}
	if err := WritePNG(&buf, many); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("WritePNG of %d rollouts: %v", len(many), err)
	}
}

func TestNiceTicks(t *testing.T) {
	var labels []string
	for _, tk := range (niceTicks{8}).Ticks(0, 26.25) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got := strings.Join(labels, " "); got != "0 5 10 15 20 25" {
		t.Errorf("labels %q", got)
	}
	if tk := (niceTicks{8}).Ticks(3, 3); len(tk) != 1 {
		t.Errorf("ticks of an empty range: %v", tk)
	}
}
