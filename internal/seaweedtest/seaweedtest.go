// Package seaweedtest starts a real S3-compatible object store for tests: SeaweedFS's `weed
// server -s3` (master, volume server, filer and S3 gateway in one process), on free loopback ports
// with its data in a temporary directory, and kills it when the test ends. The S3 gateway checks
// SigV4 signatures against one identity made for the test, so tests see the same authentication,
// ranged GETs, ETags and error codes a deployment does.
//
// The `weed` binary comes from scripts/build-seaweedfs, which .ci/run runs before the tests. It is
// found through $PKGSYNC_WEED, then PATH, then the script's cache directories. A missing binary
// skips the test, or fails it under CI (CI set), like internal/testtool.Need.
package seaweedtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Version is the SeaweedFS module version scripts/build-seaweedfs builds (its cache directory is
// seaweedfs-Version); a test checks that the two agree.
const Version = "v0.0.0-20261109003541-7506e5f91cd6"

// Test credentials of the one identity the gateway accepts.
const (
	AccessKey = "pkgsync-test-access"
	SecretKey = "pkgsync-test-secret-0123456789"
	Region    = "us-east-1"
)

// Server is a running SeaweedFS S3 gateway.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT, no trailing slash
	Dir      string // the data directory
	log      string // weed's combined output
}

// Weed returns the path of the weed binary, skipping the test (failing it under CI) when there
// is none.
func Weed(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PKGSYNC_WEED"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("seaweedtest: PKGSYNC_WEED=%s: %v", p, err)
		}
		return p
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p
	}
	for _, p := range cachePaths() {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("SeaweedFS's weed is not built (looked at $PKGSYNC_WEED, PATH and %v): run scripts/build-seaweedfs", cachePaths())
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; .ci/run must build it", msg)
	}
	t.Skip(msg)
	return ""
}

// cachePaths are where scripts/build-seaweedfs puts weed, in the order it chooses a directory.
func cachePaths() []string {
	var dirs []string
	if d := os.Getenv("PKGSYNC_CACHE"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "/var/cache/pkgsync-ci")
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "pkgsync"))
	}
	paths := make([]string, len(dirs))
	for i, d := range dirs {
		paths[i] = filepath.Join(d, "seaweedfs-"+Version, "weed")
	}
	return paths
}

// Start runs weed server with its S3 gateway and returns once the gateway takes a signed write.
// The server is killed and its directory removed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Weed(t)
	var lastErr error
	for range 3 { // another process may take a port between picking and binding it
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("seaweedtest: %v", lastErr)
	return nil
}

// flagPorts are weed server's port flags; each gets its own free port, so that none falls back to
// its default (8333, 9333, 18080, ...) or to port+10000 for gRPC.
var flagPorts = []string{
	"master.port", "master.port.grpc",
	"volume.port", "volume.port.grpc",
	"filer.port", "filer.port.grpc",
	"s3.port", "s3.port.grpc",
}

func start(t testing.TB, bin string) (*Server, error) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, []byte(identities), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(len(flagPorts))
	if err != nil {
		return nil, err
	}
	args := []string{"server", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-s3", "-s3.config=" + conf, "-master.volumeSizeLimitMB=64", "-volume.max=16",
		// The Iceberg and Lance catalogs beside the gateway would take fixed ports.
		"-s3.port.iceberg=0", "-s3.port.lance=0"}
	for i, f := range flagPorts {
		args = append(args, "-"+f+"="+strconv.Itoa(ports[i]))
	}
	s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(ports[6]), Dir: data, log: filepath.Join(dir, "weed.log")}
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// SIGKILL, not SIGTERM: weed's graceful stop flushes filer logs and takes seconds more, for
	// data that is thrown away with the test's directory.
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its own process group
		<-exited
	}
	if err := s.waitReady(exited); err != nil {
		stop()
		return nil, fmt.Errorf("weed server %v: %w\n%s", args, err, s.tail())
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("seaweedtest: weed's log:\n%s", s.tail())
		}
	})
	return s, nil
}

// identities is the gateway's identity file: one admin identity with the test keys.
var identities = fmt.Sprintf(`{"identities": [{"name": "pkgsync-test",
  "credentials": [{"accessKey": %q, "secretKey": %q}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}`, AccessKey, SecretKey)

// waitReady returns once the gateway takes a write, weed exits, or two minutes pass. The
// gateway answers reads within seconds, but the first write waits for the master to allocate
// volumes and for the filer to join the master's lock ring; a test's first Put should not.
// The write goes to a bucket of its own, removed again.
func (s *Server) waitReady(exited <-chan error) error {
	c := s.Client()
	bucket, key := "seaweedtest-ready", "probe"
	steps := []struct {
		what string
		do   func(context.Context) error
	}{
		{"ListBuckets", func(ctx context.Context) error {
			_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		}},
		{"CreateBucket", func(ctx context.Context) error {
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
			var owned *types.BucketAlreadyOwnedByYou
			if errors.As(err, &owned) { // an earlier try went through after its timeout
				return nil
			}
			return err
		}},
		{"PutObject", func(ctx context.Context) error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("ready")})
			return err
		}},
		{"DeleteObject", func(ctx context.Context) error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
			return err
		}},
		{"DeleteBucket", func(ctx context.Context) error {
			_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
			return err
		}},
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, step := range steps {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := step.do(ctx)
			cancel()
			if err == nil {
				break
			}
			select {
			case werr := <-exited:
				return fmt.Errorf("exited before its S3 gateway took a write: %v", werr)
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("S3 gateway at %s: %s still failing after two minutes: %w", s.Endpoint, step.what, err)
			}
		}
	}
	return nil
}

// tail returns the end of weed's log.
func (s *Server) tail() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// Client returns an S3 client of the gateway with the test credentials, path-style.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		Credentials:                credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		UsePathStyle:               true,
		HTTPClient:                 &http.Client{Timeout: time.Minute},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket makes a bucket, failing the test if it cannot.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("seaweedtest: create bucket %s: %v", name, err)
	}
}

// Env is the environment that points the AWS SDK (pkgsync's s3:// store) at this server with the
// test credentials, and away from the user's ~/.aws files and the EC2 metadata service.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=" + Region,
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv sets Env in this process for the rest of the test (t.Setenv: not with t.Parallel).
func (s *Server) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	// Unset, not empty: t.Setenv restores them when the test ends.
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_S3_USE_PATH_STYLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// freePorts returns n distinct free loopback ports, held open together while picking so that
// none repeats.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
