package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer that a running command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeLimitFlags runs `pkgsync serve` with a 300 ms header timeout and one connection:
// a connection that sends nothing is dropped, a second one meanwhile is answered 503, and bad
// values are usage errors.
func TestServeLimitFlags(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/pkg.tar", []byte("the package"))
	for _, bad := range [][]string{{"--max-conns", "0"}, {"--send-timeout", "-1s"}, {"--header-timeout", "0"}} {
		code, _, errs := pkgsync(t, append([]string{"serve", dir}, bad...)...)
		if code != 2 || !strings.Contains(errs, "must be positive") {
			t.Errorf("serve %q: exit %d, %q; want 2 and a usage error", bad, code, errs)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{dir, "--listen", "127.0.0.1:0", "--no-make", "--header-timeout", "300ms", "--max-conns", "1"}, io.Discard, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	listening := regexp.MustCompile(`listening on http://([0-9.:]+)/`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(10 * time.Millisecond) {
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %q", stderr.String())
		}
	}

	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	time.Sleep(50 * time.Millisecond)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /pkg.tar HTTP/1.1\r\nHost: origin\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("second connection with --max-conns 1: status %d, want 503", resp.StatusCode)
	}
	start := time.Now()
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := held.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("a connection that sent nothing: read %d bytes, %v; want it closed", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a connection that sent nothing was dropped after %v, with --header-timeout 300ms", d)
	}
}
