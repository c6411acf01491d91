package tracker

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"

	"github.com/pkgsync/pkgsync/internal/testtool"
	"github.com/pkgsync/pkgsync/origin"
	"github.com/pkgsync/pkgsync/originplan"
)

// TestAria2cAnnounce has a stock BitTorrent client, aria2c, announce to the tracker. It proves
// three things: the tracker reads aria2c's announce (peer port, left), aria2c accepts the answer
// and decodes its compact peer list (it dials the one peer listed, a listener of this test on
// 127.0.0.1) with the origin role of the "pkgsync" key beside it, and aria2c's goodbye announce
// (event=stopped, sent on SIGINT) removes it.
// Everything stays on loopback: DHT, local peer discovery and PEX are off.
//
// It runs against the tracker served both ways: through net/http (Handler, as `pkgsync serve
// --tracker` serves it) and as `pkgsync tracker` serves it, announces on origin's lean path, where
// aria2c's announces must be answered on the lean path itself.
func TestAria2cAnnounce(t *testing.T) {
	aria2c := testtool.Need(t, "aria2c")[0]
	for _, lean := range []bool{false, true} {
		name := "net/http"
		if lean {
			name = "lean"
		}
		t.Run(name, func(t *testing.T) {
			var log syncBuffer
			opts := Options{Log: &log, OriginFetchers: originplan.DefaultFetchers}
			if !lean {
				aria2cAnnounce(t, aria2c, newEnv(t, opts), &log)
				return
			}
			e, answered := newLeanEnv(t, opts)
			aria2cAnnounce(t, aria2c, e, &log)
			if answered.Load() < 3 {
				t.Errorf("%d announces answered on the lean path, want the test's own and aria2c's started and stopped", answered.Load())
			}
		})
	}
}

func aria2cAnnounce(t *testing.T, aria2c string, e *env, log *syncBuffer) {
	dir := t.TempDir()

	// A torrent of a 64 KiB file announcing to our tracker.
	src := filepath.Join(dir, "pkg.bin")
	data := make([]byte, 64<<10)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	info := metainfo.Info{PieceLength: 16 << 10}
	if err := info.BuildFromFilePath(src); err != nil {
		t.Fatalf("building torrent info for %s: %v", src, err)
	}
	mi := metainfo.MetaInfo{Announce: e.srv.URL + "/announce"}
	var err error
	if mi.InfoBytes, err = bencode.Marshal(info); err != nil {
		t.Fatal(err)
	}
	ih := mi.HashInfoBytes()
	torrentPath := filepath.Join(dir, "pkg.torrent")
	var tb bytes.Buffer
	if err := mi.Write(&tb); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(torrentPath, tb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// A listed "seeder" that only records the first bytes each connection sends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	handshakes := make(chan []byte, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 68)
			n, _ := io.ReadFull(c, buf)
			c.Close()
			select {
			case handshakes <- buf[:n]:
			default:
			}
		}
	}()
	seederPort := ln.Addr().(*net.TCPAddr).Port
	e.rawGet(t, "/announce", announceQuery(ih, "fake-seeder", seederPort, "ip", "127.0.0.1", "left", "0"))

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, aria2c,
		"--no-conf", "--dir="+filepath.Join(dir, "dl"),
		"--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--bt-require-crypto=false", "--seed-time=0", "--summary-interval=0", "--console-log-level=notice",
		torrentPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting aria2c: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel()
		<-exited
		if t.Failed() {
			e.tr.flushLog()
			t.Logf("aria2c output:\n%s\ntracker log:\n%s", out.String(), log.String())
		}
	}()

	// Wait for aria2c's announce and for it to dial the peer it was given.
	var aria PeerInfo
	var hs []byte
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for aria.Addr.Port() == 0 || hs == nil {
		select {
		case <-ctx.Done():
			t.Fatalf("no announce from aria2c (%v) or no connection to the listed peer (%v) before the deadline", aria.Addr, hs != nil)
		case err := <-exited:
			t.Fatalf("aria2c exited early: %v", err)
		case hs = <-handshakes:
		case <-poll.C:
			for _, p := range e.tr.Peers(ih) {
				if p.Addr.Port() != uint16(seederPort) {
					aria = p
				}
			}
		}
	}
	if aria.Left != int64(len(data)) || aria.Addr.Addr().String() != "127.0.0.1" {
		t.Errorf("aria2c recorded as %+v, want 127.0.0.1 with left=%d", aria, len(data))
	}
	if len(hs) >= 48 && string(hs[:20]) == "\x13BitTorrent protocol" {
		if !bytes.Equal(hs[28:48], ih[:]) {
			t.Errorf("aria2c's handshake names info hash %x, want %x", hs[28:48], ih)
		}
	} else {
		t.Logf("aria2c opened with an encrypted (MSE) handshake of %d bytes", len(hs))
	}

	// SIGINT asks aria2c for a graceful shutdown (SIGTERM makes it skip the goodbye): it sends
	// event=stopped, and the tracker must drop it.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("signalling aria2c: %v", err)
	}
	select {
	case <-exited:
		exited <- nil // for the deferred wait
	case <-ctx.Done():
		t.Fatal("aria2c did not exit after SIGINT")
	}
	for _, p := range e.tr.Peers(ih) {
		if p.Addr == aria.Addr {
			t.Errorf("aria2c still listed after its stopped announce: %+v", p)
		}
	}
	e.tr.flushLog()
	if !bytes.Contains([]byte(log.String()), []byte(`"event":"stopped"`)) {
		t.Errorf("no stopped announce in the tracker log")
	}
}

// newLeanEnv is newEnv with the tracker served as `pkgsync tracker` serves it: announces on
// origin's lean path, anything else through net/http. answered counts the announces the lean path
// answered, the one before the test's own included.
func newLeanEnv(t *testing.T, opts Options) (e *env, answered *atomic.Int64) {
	t.Helper()
	e = &env{clock: &fakeClock{now: time.Date(2026, 11, 24, 23, 49, 2, 0, time.UTC)}}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	e.tr = New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answered = new(atomic.Int64)
	route := origin.LeanRoute{Path: "/announce", Answer: func(dst []byte, remote, query string) []byte {
		answered.Add(1)
		return e.tr.AnswerAnnounce(dst, remote, query)
	}}
	hs, hl := origin.NewLeanHTTPServer(ln, e.tr.Handler(), origin.DefaultLimits(), route)
	go hs.Serve(hl)
	e.srv = &httptest.Server{URL: "http://" + ln.Addr().String()}
	t.Cleanup(func() {
		hs.Close()
		e.tr.Close()
	})
	return e, answered
}
