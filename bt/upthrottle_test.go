package bt

import (
	"math"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestUpThrottle(t *testing.T) {
	const num = 1000
	peers := []int{500, 510, 520, 900} // median 515
	type step struct {
		up, down   int64 // bytes per second over this second
		mine       int
		peers      []int
		wantLimit  float64
		wantChange bool
	}
	heavy := step{up: 1_200_000, down: 700_000, mine: 480, peers: peers} // behind by 35, down < 0.8 up
	// warm repeats st until the window is full: the next call decides.
	warm := func(st step) []step {
		n := int(upWindow / time.Second)
		out := make([]step, n)
		for i := range out {
			out[i] = st
		}
		return out
	}
	with := func(st step, mine int, limit float64, change bool) step {
		st.mine, st.wantLimit, st.wantChange = mine, limit, change
		return st
	}
	capped := with(heavy, 480, 1_020_000, true)
	pace := step{up: 1_200_000, down: 1_000_000, mine: 480, peers: peers}
	ahead := step{up: 1_200_000, down: 700_000, mine: 510, peers: peers} // behind by 5 only
	few := step{up: 1_200_000, down: 700_000, mine: 10, peers: []int{500, 600}}
	after := step{up: 1_020_000, down: 700_000, peers: peers}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a window is needed first", warm(heavy)},
		{"behind with the upload link full: capped at 0.85 of the upload", append(warm(heavy), capped)},
		{"behind but downloading at pace: not capped", append(warm(pace), pace, pace)},
		{"upload heavy but keeping pace: not capped", append(warm(ahead), ahead, ahead)},
		{"too few downloading peers", append(warm(few), few, few)},
		{"the cap does not ratchet down while behind", append(warm(heavy), capped,
			with(after, 485, 1_020_000, false), with(after, 490, 1_020_000, false),
			with(after, 495, 1_020_000, false), with(after, 495, 1_020_000, false))},
		{"lifted after upCapMax even if still behind, then a new window before the next cap", append(append(append(warm(heavy), capped,
			with(after, 481, 1_020_000, false), with(after, 482, 1_020_000, false), with(after, 483, 1_020_000, false),
			with(after, 484, 1_020_000, false), with(heavy, 485, 0, true)), warm(with(heavy, 486, 0, false))[1:]...), // the lift opened the window
			with(heavy, 487, 1_020_000, true))},
		{"the cap is set from the average upload, not the window's (socket buffers inflate it)", []step{
			{up: 1_000_000, down: 1_000_000, mine: 480, peers: peers}, {up: 1_000_000, down: 1_000_000, mine: 480, peers: peers},
			{up: 1_400_000, down: 700_000, mine: 480, peers: peers},
			{mine: 480, peers: peers, wantLimit: 0.85 * 3_400_000 / 3, wantChange: true}}},
		{"lifted once caught up with the median", append(warm(heavy), capped,
			step{up: 1_020_000, down: 1_200_000, mine: 515, peers: peers, wantLimit: 0, wantChange: true})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u upThrottle
			at := time.Unix(1000, 0)
			var up, down int64
			for i, st := range tt.steps {
				if !u.due(at) {
					t.Fatalf("step %d: no sample due a second after the last", i)
				}
				limit, changed := u.update(at, up, down, st.mine, st.peers, num)
				if math.Abs(limit-st.wantLimit) > 1e-6 || changed != st.wantChange {
					t.Fatalf("step %d: limit %v changed %v, want %v %v", i, limit, changed, st.wantLimit, st.wantChange)
				}
				at = at.Add(time.Second)
				up += st.up
				down += st.down
			}
		})
	}
}

func TestUpThrottleDue(t *testing.T) {
	var u upThrottle
	at := time.Unix(1000, 0)
	if !u.due(at) {
		t.Fatal("the first sample is not due")
	}
	u.update(at, 0, 0, 0, nil, 10)
	if u.due(at.Add(upSampleEvery - time.Millisecond)) {
		t.Fatal("a sample is due before upSampleEvery")
	}
	if !u.due(at.Add(upSampleEvery)) {
		t.Fatal("no sample due after upSampleEvery")
	}
}

func TestMedianOf(t *testing.T) {
	for _, tt := range []struct {
		v    []int
		want float64
	}{{[]int{3}, 3}, {[]int{5, 1, 3}, 3}, {[]int{4, 1, 3, 2}, 2.5}} {
		if got := medianOf(tt.v); got != tt.want {
			t.Errorf("medianOf(%v) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestSetUploadCap: the Node's upload limiter follows the lowest cap its torrents set, with a
// burst small enough for the cap to bind, and goes back to the configured limit and burst
// when the caps are lifted.
func TestSetUploadCap(t *testing.T) {
	for _, configured := range []int64{0, 4 << 20} {
		cfg := DefaultConfig()
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.MaxUploadRate = configured
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		base, baseBurst := n.upLimit.Limit(), n.upLimit.Burst()
		if configured == 0 && base != rate.Inf {
			t.Fatalf("limit %v without a configured rate", base)
		}
		a, b := &Torrent{}, &Torrent{}
		for _, step := range []struct {
			t         *Torrent
			cap       float64
			wantLimit rate.Limit
			wantBurst int
		}{
			{a, 1e6, 1e6, capBurst},
			{b, 2e6, 1e6, capBurst},
			{a, 0, 2e6, capBurst},
			{b, 8e6, min(8e6, base), capBurst}, // never above the configured rate
			{b, 0, base, baseBurst},
		} {
			n.setUploadCap(step.t, step.cap)
			if step.wantLimit == base {
				step.wantBurst = baseBurst
			}
			if l, bu := n.upLimit.Limit(), n.upLimit.Burst(); l != step.wantLimit || bu != step.wantBurst {
				t.Fatalf("configured %d, after cap %v: limit %v burst %d, want %v %d", configured, step.cap, l, bu, step.wantLimit, step.wantBurst)
			}
		}
	}
}
