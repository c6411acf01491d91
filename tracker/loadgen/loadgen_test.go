package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadHead(t *testing.T) {
	for _, c := range []struct {
		name, in       string
		status, length int
		err            string
	}{
		{"ok", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n", 200, 12, ""},
		{"lower-case header", "HTTP/1.1 503 Busy\r\ncontent-length:  0 \r\n\r\n", 503, 0, ""},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", 200, 3, ""},
		{"no length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 0, "no Content-Length"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 0, 0, "bad Content-Length"},
		{"empty length", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", 0, 0, "bad Content-Length"},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", 0, 0, "bad Content-Length"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0, 0, "bad status line"},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", 0, 0, "bad status line"},
		{"cut short", "HTTP/1.1 200 OK\r\nContent-Len", 0, 0, "EOF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, length, err := readHead(bufio.NewReader(strings.NewReader(c.in)))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil || status != c.status || length != c.length {
				t.Fatalf("got %d, %d, %v; want %d, %d", status, length, err, c.status, c.length)
			}
		})
	}
}

func TestPeersListed(t *testing.T) {
	for _, c := range []struct {
		name, body string
		n          int
		err        string
	}{
		{"two peers", "d8:completei1e10:incompletei1e8:intervali30e5:peers12:abcdefghijkle", 2, ""},
		{"none", "d8:intervali30e5:peers0:e", 0, ""},
		{"failure", "d14:failure reason9:bad querye", 0, "refused the announce"},
		{"no peers key", "d8:intervali30ee", 0, "has no peers"},
		{"peers not a string", "d5:peersle", 0, "not a compact string"},
		{"length not whole entries", "d5:peers5:abcdee", 0, "bad compact peers length"},
		{"length past the end", "d5:peers12:abcdefe", 0, "bad compact peers length"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := peersListed([]byte(c.body))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one saying %q", err, c.err)
				}
				return
			}
			if err != nil || n != c.n {
				t.Fatalf("got %d, %v; want %d", n, err, c.n)
			}
		})
	}
}

// FuzzAnswer feeds the two parsers of what a tracker sends back arbitrary bytes: they must not
// panic, and what they accept must be consistent with the input.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\nd8:intervali30e5:peers6:abcdefe"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nd14:failure reason3:bade"))
	f.Add([]byte("HTTP/1.1 200\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReaderSize(strings.NewReader(string(b)), 16)
		status, length, err := readHead(br)
		if err == nil && (status < 0 || status > 999 || length < 0 || length > 1<<20) {
			t.Fatalf("status %d, length %d accepted", status, length)
		}
		if n, err := peersListed(b); err == nil && 6*n > len(b) {
			t.Fatalf("%d peers listed in %d bytes", n, len(b))
		}
	})
}

// stallingTracker answers every announce with no peers, but holds announce number stallAt (from
// 0) for stall first.
func stallingTracker(t *testing.T, stallAt int64, stall time.Duration) string {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)-1 == stallAt {
			time.Sleep(stall)
		}
		fmt.Fprint(w, "d8:intervali30e5:peers0:e")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/announce"
}

// TestOpenLoopCountsStalls: a server that stalls once, for longer than the whole schedule of the
// announces after it, delays every one of them. The open loop counts that delay against each
// (their latency runs from when they were due), so that most announces are slow; a closed loop
// would record one slow announce. Only lower bounds are checked, which a slow machine cannot
// break: the stall lasts at least 200 ms from the moment announce 10 arrives, no earlier than
// 10 ms after the start, and announces 11 to 49 are due in the first 49 ms, on the one
// connection that waits for it.
func TestOpenLoopCountsStalls(t *testing.T) {
	const announces, stall = 50, 200 * time.Millisecond
	load, err := New(Config{
		URL: stallingTracker(t, 10, stall), Peers: 100, Packages: 1, Conns: 1,
		Announces: announces, Rate: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := load.Replay(context.Background())
	if err != nil || r.Announces != announces {
		t.Fatalf("%v (%v), want %d announces", r, err, announces)
	}
	// Announces 11..49, 39 of 50, waited for the stall's end (>= 210 ms) from their due time
	// (<= 49 ms): more than half took over 150 ms.
	if r.P50 < 150*time.Millisecond {
		t.Errorf("p50 %v: the announces the stall delayed were not counted from when they were due", r.P50)
	}
	if r.LagP99 < 150*time.Millisecond {
		t.Errorf("p99 lag %v: the announces were sent after the stall, at least 150 ms late", r.LagP99)
	}
	if r.Offered != 1000 || !strings.Contains(r.String(), "open loop at 1000/s") {
		t.Errorf("result %q does not say it is an open loop at 1000/s", r)
	}
}

// TestOpenLoopKeepsSchedule: announce k is never sent before k/Rate, so the last of 20 at 200/s
// goes out no earlier than 95 ms after the start.
func TestOpenLoopKeepsSchedule(t *testing.T) {
	load, err := New(Config{URL: stallingTracker(t, -1, 0), Peers: 10, Packages: 1, Conns: 4, Announces: 20, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	r, err := load.Replay(context.Background())
	if err != nil || r.Announces != 20 {
		t.Fatalf("%v (%v), want 20 announces", r, err)
	}
	if r.Elapsed < 95*time.Millisecond {
		t.Errorf("20 announces at 200/s took %v, want at least 95 ms", r.Elapsed)
	}
}

func TestNewRefuses(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:1/announce", Peers: 1, Packages: 1, Conns: 1}
	for _, c := range []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"https", func(c *Config) { c.URL = "https://h/announce" }, "want http://host:port/path"},
		{"no peers", func(c *Config) { c.Peers = 0 }, "must be positive"},
		{"too many peers", func(c *Config) { c.Peers = 1<<24 + 1 }, "fit in 10.0.0.0/8"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate -1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := ok
			c.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err %v, want one saying %q", err, c.err)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}
