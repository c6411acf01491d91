package seaweedtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestVersionMatchesScript keeps Version and the version scripts/build-seaweedfs builds equal:
// otherwise tests look for a binary under a directory the script never fills.
func TestVersionMatchesScript(t *testing.T) {
	b, err := os.ReadFile("../../scripts/build-seaweedfs")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nversion="+Version+"\n") {
		t.Fatalf("scripts/build-seaweedfs does not build version=%s", Version)
	}
}

// TestStart starts the gateway and checks that it is ready and stops with the test: the bucket
// is made, and a request with the test keys lists it while one with a wrong secret is refused.
func TestStart(t *testing.T) {
	s := Start(t)
	s.CreateBucket(t, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := s.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Buckets) != 1 || *out.Buckets[0].Name != "ready" {
		t.Fatalf("buckets: %+v", out.Buckets)
	}
	bad := s3.New(s.Client().Options(), func(o *s3.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(AccessKey, "not-the-secret", "")
	})
	if _, err := bad.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Fatal("the gateway accepted a wrong secret: it checks no signatures")
	}
}
