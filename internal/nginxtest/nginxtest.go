// Package nginxtest starts the stock nginx as a static file origin for tests, so that pkgsync's
// HTTP code is checked against a real server's Range, If-Range and multipart/byteranges handling
// and not only against Go's http.ServeContent.
package nginxtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/internal/testtool"
)

// Start runs nginx in the foreground serving the directory root on a free 127.0.0.1 port, and
// returns its base URL ("http://127.0.0.1:PORT", no trailing slash). nginx is stopped when the test
// ends. A missing nginx skips the test (fails it under CI, see testtool.Need).
//
// The configuration lives in a temporary directory of its own, with the pid file and both logs;
// when run as root, `user root root;` lets the workers read the test's 0700 temporary directories.
func Start(t testing.TB, root string) string {
	t.Helper()
	return startWith(t, root, nil)
}

// startWith is Start, serving https as tc says when it is not nil.
func startWith(t testing.TB, root string, tc *TLS) string {
	t.Helper()
	bin := testtool.Need(t, "nginx")[0]
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatalf("nginxtest: root %s: %v", root, err)
	}
	var lastErr error
	for range 3 { // another process may take the port between picking and binding it
		url, err := start(t, bin, abs, tc)
		if err == nil {
			return url
		}
		lastErr = err
	}
	t.Fatalf("nginxtest: %v", lastErr)
	return ""
}

func start(t testing.TB, bin, root string, tc *TLS) (string, error) {
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	listen, scheme := addr, "http"
	if tc != nil {
		listen, scheme = addr+" ssl", "https"
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;"
	}
	conf := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 256; }
http {
	access_log %[2]s/access.log;
	client_body_temp_path %[2]s/client_body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	default_type application/octet-stream;
	sendfile on;
	keepalive_requests 10000;
	server {
		listen %[3]s;
		root %[4]s;
		location / { }
		%[5]s
	}
}
`, user, dir, listen, root, tc.directives())
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", confPath, err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = &out, &out
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// SIGTERM is nginx's fast shutdown: the master stops its workers and exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			killGroup(cmd)
			<-exited
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			t.Cleanup(stop)
			return scheme + "://" + addr, nil
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return "", fmt.Errorf("nginx exited (%v): %s%s", werr, out.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return "", fmt.Errorf("nginx did not listen on %s within 10s: %s%s", addr, out.String(), log)
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
