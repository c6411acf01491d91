package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/pkgsync/pkgsync/httprange"
)

// S3PathStyleEnv names the environment variable that chooses path-style addressing
// (http://ENDPOINT/BUCKET/KEY) over virtual-hosted style (http://BUCKET.ENDPOINT/KEY): "true" or
// "false". Unset, path style is used whenever an endpoint URL is configured
// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or endpoint_url in the AWS config file), because
// self-hosted stores (SeaweedFS, MinIO, Ceph RGW) rarely have a DNS name per bucket, and
// virtual-hosted style otherwise, as AWS itself prefers.
const S3PathStyleEnv = "AWS_S3_USE_PATH_STYLE"

// s3DefaultRegion signs requests when no region is configured: self-hosted stores accept any
// region, and AWS answers a wrong one with a redirect that names the right one.
const s3DefaultRegion = "us-east-1"

// s3PutMemoryLimit is the largest object Put buffers in memory when its reader cannot seek;
// larger ones go through a temporary file. S3 signs the payload's SHA-256 over plain HTTP, so
// the SDK needs to read the body twice.
const s3PutMemoryLimit = 16 << 20

func init() { Register("s3", openS3) }

// s3Store is one bucket of an S3-compatible object store. Keys are object keys in the bucket.
type s3Store struct {
	client   *s3.Client
	bucket   string
	pageSize int32 // keys per ListObjectsV2 page; 0 is the service's default (1000 on S3)
}

// openS3 opens s3://BUCKET/KEY with the credentials, region and endpoint of the standard AWS
// environment variables and shared files (config.LoadDefaultConfig).
func openS3(ctx context.Context, u *url.URL, opt Options) (Store, string, error) {
	if u.Host == "" {
		return nil, "", fmt.Errorf("store: %s: no bucket (the form is s3://BUCKET/KEY)", u.Redacted())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, "", fmt.Errorf("store: %s: an s3 URL has no user, query or fragment (credentials come from the AWS environment variables and files)", u.Redacted())
	}
	client, err := newS3Client(ctx, opt)
	if err != nil {
		return nil, "", fmt.Errorf("store: s3://%s: %w", u.Host, err)
	}
	return &s3Store{client: client, bucket: u.Host}, strings.TrimPrefix(u.Path, "/"), nil
}

// newS3Client loads the AWS configuration and applies pkgsync's HTTP options and addressing.
func newS3Client(ctx context.Context, opt Options) (*s3.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = s3DefaultRegion
	}
	// Only replace the SDK's HTTP client when pkgsync's options ask for something: the SDK's own
	// client carries AWS_CA_BUNDLE.
	if opt.CAFile != "" || opt.ClientCert != "" || opt.ClientKey != "" || opt.Timeout > 0 {
		conf, err := httprange.TLSFiles{CAFile: opt.CAFile, CertFile: opt.ClientCert, KeyFile: opt.ClientKey}.Config()
		if err != nil {
			return nil, err
		}
		cfg.HTTPClient = httprange.NewTLSClient(conf, opt.Timeout)
	}
	pathStyle, pathStyleSet, err := s3PathStyle()
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		custom := o.BaseEndpoint != nil
		o.UsePathStyle = pathStyle || (!pathStyleSet && custom)
		// A ranged GET carries no whole-object checksum to check; the SDK would log that on
		// stderr for every range. Piece hashes verify the bytes.
		o.DisableLogOutputChecksumValidationSkipped = true
		// Self-hosted stores often reject or ignore the flexible checksums the SDK sends by
		// default; send them only where S3 requires them, unless the configuration says otherwise.
		if custom && cfg.RequestChecksumCalculation == aws.RequestChecksumCalculationUnset {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}
		if custom && cfg.ResponseChecksumValidation == aws.ResponseChecksumValidationUnset {
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	return client, nil
}

// s3PathStyle reads S3PathStyleEnv: the choice, and whether one was made.
func s3PathStyle() (on, set bool, err error) {
	v, ok := os.LookupEnv(S3PathStyleEnv)
	if !ok || v == "" {
		return false, false, nil
	}
	on, err = strconv.ParseBool(v)
	if err != nil {
		return false, false, fmt.Errorf("%s=%q: want true or false", S3PathStyleEnv, v)
	}
	return on, true, nil
}

func (s *s3Store) String() string { return "s3://" + s.bucket }

func (s *s3Store) name(key string) string { return "s3://" + s.bucket + "/" + key }

// Stat is HeadObject; the ETag is the object's identity.
func (s *s3Store) Stat(ctx context.Context, key string) (Info, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Info{}, s.error("HeadObject", key, err)
	}
	info := Info{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag)}
	if out.LastModified != nil {
		info.ModTime = *out.LastModified
	}
	if out.ContentLength == nil {
		return Info{}, fmt.Errorf("%s: HeadObject: the reply has no Content-Length", s.name(key))
	}
	return info, nil
}

// ReadRange is a ranged GetObject, conditional on etag with If-Match: a 412 is ErrChanged.
func (s *s3Store) ReadRange(ctx context.Context, key string, off, n int64, etag string) (io.ReadCloser, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("%s: range of %d bytes at %d: negative", s.name(key), n, off)
	}
	if n == 0 {
		// No ranged GET names zero bytes; a HEAD still reports a missing or changed object.
		in := &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key}
		if etag != "" {
			in.IfMatch = &etag
		}
		if _, err := s.client.HeadObject(ctx, in); err != nil {
			return nil, s.error("HeadObject", key, err)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	rng := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: &rng}
	if etag != "" {
		in.IfMatch = &etag
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, s.error("GetObject "+rng, key, err)
	}
	if got := aws.ToInt64(out.ContentLength); got != n {
		out.Body.Close()
		return nil, fmt.Errorf("%s: GetObject %s: %d bytes in the reply (Content-Range %q), want %d: the object is shorter",
			s.name(key), rng, got, aws.ToString(out.ContentRange), n)
	}
	return &sizedBody{r: out.Body, left: n, what: s.name(key) + ": GetObject " + rng}, nil
}

// List is ListObjectsV2 over every page.
func (s *s3Store) List(ctx context.Context, prefix string) ([]Info, error) {
	var infos []Info
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix}
	if s.pageSize > 0 {
		in.MaxKeys = &s.pageSize
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.error("ListObjectsV2", prefix, err)
		}
		for _, o := range page.Contents {
			info := Info{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag)}
			if o.LastModified != nil {
				info.ModTime = *o.LastModified
			}
			infos = append(infos, info)
		}
	}
	// S3 lists in UTF-8 byte order, which is Go's string order; some compatible stores do not.
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	return infos, nil
}

// Put is PutObject of exactly size bytes of r.
func (s *s3Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if size < 0 {
		return fmt.Errorf("%s: PutObject: negative size %d", s.name(key), size)
	}
	body, done, err := s.seekableBody(key, r, size)
	if err != nil {
		return err
	}
	defer done()
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: body, ContentLength: &size})
	if err != nil {
		return s.error("PutObject", key, err)
	}
	return nil
}

// seekableBody returns exactly size bytes of r as a ReadSeeker, which the SDK needs to sign the
// payload: r itself when it seeks, else a copy in memory or in a temporary file. done releases it.
func (s *s3Store) seekableBody(key string, r io.Reader, size int64) (io.ReadSeeker, func(), error) {
	if rs, ok := r.(io.ReadSeeker); ok {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err == nil {
			return io.NewSectionReader(readerAtSeeker{rs}, start, size), func() {}, nil
		}
	}
	short := func(got int64) error {
		return fmt.Errorf("%s: PutObject: the source gave %d bytes, want %d: %w", s.name(key), got, size, io.ErrUnexpectedEOF)
	}
	if size <= s3PutMemoryLimit {
		buf := make([]byte, size)
		if got, err := io.ReadFull(r, buf); err != nil {
			return nil, nil, short(int64(got))
		}
		return bytes.NewReader(buf), func() {}, nil
	}
	f, err := os.CreateTemp("", "pkgsync-s3-put-*")
	if err != nil {
		return nil, nil, fmt.Errorf("%s: PutObject: %w", s.name(key), err)
	}
	done := func() { f.Close(); os.Remove(f.Name()) }
	got, err := io.Copy(f, io.LimitReader(r, size))
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("%s: PutObject: copying the source to %s: %w", s.name(key), f.Name(), err)
	}
	if got != size {
		done()
		return nil, nil, short(got)
	}
	return io.NewSectionReader(f, 0, size), done, nil
}

// readerAtSeeker reads at an offset by seeking; the SDK reads the body from one goroutine.
type readerAtSeeker struct{ rs io.ReadSeeker }

func (r readerAtSeeker) ReadAt(p []byte, off int64) (int, error) {
	if _, err := r.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(r.rs, p)
}

// s3Error is a failed request: the object, the operation, and what the service said.
type s3Error struct {
	name, op   string
	status     int
	code, msg  string
	kind, err  error // kind: ErrNotExist, ErrChanged or nil
	requestErr bool  // the service answered (status, code and message are its own)
}

func (e *s3Error) Error() string {
	if !e.requestErr {
		return fmt.Sprintf("%s: %s: %v", e.name, e.op, e.err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: HTTP %d", e.name, e.op, e.status)
	if e.code != "" {
		b.WriteString(" " + e.code)
	}
	if e.msg != "" {
		b.WriteString(": " + e.msg)
	}
	if e.kind != nil {
		fmt.Fprintf(&b, " (%v)", e.kind)
	}
	return b.String()
}

func (e *s3Error) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.err}
}

// error classifies err from op on key: a 404 (NoSuchKey, NoSuchBucket, HEAD's bare NotFound) is
// ErrNotExist and a 412 ErrChanged. Neither the message nor the wrapped error holds credentials:
// the SDK reports the status, the service's code and message, and request IDs.
func (s *s3Store) error(op, key string, err error) error {
	e := &s3Error{name: s.name(key), op: op, err: err}
	var he interface{ HTTPStatusCode() int }
	if errors.As(err, &he) {
		e.requestErr = true
		e.status = he.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		e.code, e.msg = ae.ErrorCode(), ae.ErrorMessage()
	}
	switch {
	case e.status == http.StatusNotFound || e.code == "NoSuchKey":
		e.kind = ErrNotExist
	case e.status == http.StatusPreconditionFailed || e.code == "PreconditionFailed":
		e.kind = ErrChanged
	}
	return e
}
