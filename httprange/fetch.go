package httprange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/pkgsync/pkgsync/internal/byterange"
)

// Fetch writes the bytes of ranges to w at their own offsets, and nothing else. Ranges may overlap
// and come in any order. Fetch returns nil only when every requested byte has been written; on
// error some of them may have been written. Concurrent calls are safe and share the pinned version;
// w must accept parallel WriteAt calls on disjoint ranges (as io.WriterAt allows).
func (f *Fetcher) Fetch(ctx context.Context, ranges []Range, w io.WriterAt) error {
	if f.optErr != nil {
		return &Error{URL: f.safeURL, Err: f.optErr}
	}
	for _, r := range ranges {
		if r.Off < 0 || r.Len < 0 || r.Off > math.MaxInt64-r.Len {
			return &Error{URL: f.safeURL, Err: fmt.Errorf("invalid range: offset %d, length %d", r.Off, r.Len)}
		}
	}
	rs := Coalesce(ranges)
	if len(rs) == 0 {
		return nil
	}
	if err := f.checkBounds(rs); err != nil {
		return &Error{URL: f.safeURL, Range: hull(rs), Err: err}
	}
	j := &fetchCall{f: f, w: w, all: rs}
	f.mu.Lock()
	mode := f.mode
	f.mu.Unlock()
	if mode == modeFull {
		j.full = true
		return j.run(ctx, rs, false)
	}
	batches := split(rs, f.opts.MaxRangesPerRequest, f.opts.MaxRequestBytes)
	if mode == modeUnknown {
		// Probe with one request so that a server which ignores Range sends the file once, and
		// the version and length are pinned before requests run in parallel.
		if err := j.run(ctx, batches[0], true); err != nil || j.full {
			return err
		}
		batches = batches[1:]
		if err := f.checkBounds(rs); err != nil {
			return &Error{URL: f.safeURL, Range: hull(rs), Err: err}
		}
	}
	return j.parallel(ctx, batches)
}

// fetchCall is one Fetch call: its ranges, where they go, and whether the server ignores Range.
type fetchCall struct {
	f    *Fetcher
	w    io.WriterAt
	all  []Range // every range of the call, coalesced
	full bool    // the server ignores Range: all is served from plain GETs
}

// parallel runs the batches on up to Parallel workers and returns the first failure.
func (j *fetchCall) parallel(ctx context.Context, batches [][]Range) error {
	if len(batches) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.f.opts.Parallel)
	var done atomic.Int64
	for _, b := range batches {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil
			}
			if err := j.run(gctx, b, false); err != nil {
				return err
			}
			done.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if done.Load() < int64(len(batches)) {
		// The caller's context ended between batches.
		return &Error{URL: j.f.safeURL, Err: context.Cause(ctx)}
	}
	return nil
}

// run fetches want (sorted, disjoint) until all of it is written, retrying failures that may pass.
// A reply that delivers some but not all of want is followed at once by a request for the rest;
// failures, including bodies that broke off, count against Retries.
func (j *fetchCall) run(ctx context.Context, want []Range, probe bool) error {
	f := j.f
	for failures := 0; ; failures++ {
		var err error
		for {
			if j.full {
				err = j.fullAttempt(ctx)
				if err == nil {
					return nil
				}
				break
			}
			before := byterange.Sum(want)
			var rem []Range
			rem, err = j.rangeAttempt(ctx, want, probe)
			if err == nil && j.full {
				return nil
			}
			if err == nil && len(rem) == 0 {
				return nil
			}
			progressed := byterange.Sum(rem) < before
			want = rem
			if err != nil {
				break
			}
			if !progressed {
				err = &Error{URL: f.safeURL, Range: hull(want), Status: http.StatusPartialContent,
					Err: fmt.Errorf("%w: reply held none of the %d requested bytes", ErrShort, before), retry: true}
				break
			}
		}
		if !retryable(err) || failures >= f.opts.Retries {
			return err
		}
		if werr := sleep(ctx, backoff(f.opts.RetryDelay, failures)); werr != nil {
			return stopped(werr, err)
		}
	}
}

// rangeAttempt sends one range request for want and writes what the reply delivers. It returns the
// part of want still missing. probe marks the first request of a Fetch on a server not yet known to
// honour Range: a 200 to it switches the call (and the Fetcher) to whole-file GETs.
func (j *fetchCall) rangeAttempt(ctx context.Context, want []Range, probe bool) (_ []Range, err error) {
	f := j.f
	span := hull(want)
	fail := func(status int, err error, retry bool) *Error {
		return &Error{URL: f.safeURL, Range: span, Status: status, Err: err, retry: retry}
	}
	ifRange := f.ifRange()
	resp, err := f.send(ctx, span, func(h http.Header) {
		h.Set("Range", rangeHeader(want))
		if ifRange != "" {
			h.Set("If-Range", ifRange)
		}
	})
	if err != nil {
		return want, err
	}
	body := &countingReader{r: resp.Body, n: &f.bytes}
	defer func() { closeBodyAfter(body, err) }()

	switch resp.StatusCode {
	case http.StatusPartialContent:
		if err := f.checkVersion(resp.Header); err != nil {
			return want, fail(resp.StatusCode, err, false)
		}
		if err := checkEncoding(resp.Header); err != nil {
			return want, fail(resp.StatusCode, err, false)
		}
		f.setMode(modeRanges)
		mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		var rem []Range
		if mt == "multipart/byteranges" {
			rem, err = j.readMultipart(body, params["boundary"], want)
		} else {
			rem, err = j.readSingle(resp, body, want)
		}
		if err != nil {
			return rem, fail(resp.StatusCode, err, isRetryableBody(err))
		}
		return rem, nil

	case http.StatusOK:
		// A 200 is the whole file: either the server ignores Range, or If-Range did not match.
		// Only the first request to a server not yet seen answering 206 may get one.
		if !probe || f.modeIs(modeRanges) {
			why := "after 206 replies"
			if ifRange != "" {
				why = "with If-Range " + ifRange
			}
			return want, fail(resp.StatusCode, fmt.Errorf("%w: 200 OK (whole file) to a range request %s", ErrChanged, why), false)
		}
		if err := f.checkVersion(resp.Header); err != nil {
			return want, fail(resp.StatusCode, err, false)
		}
		if err := checkEncoding(resp.Header); err != nil {
			return want, fail(resp.StatusCode, err, false)
		}
		// The server ignores Range: serve every range of this call from this one body.
		f.setMode(modeFull)
		j.full = true
		if err := j.readFull(resp, body); err != nil {
			return want, fail(resp.StatusCode, err, isRetryableBody(err))
		}
		return nil, nil

	case http.StatusRequestedRangeNotSatisfiable:
		why := ErrNoRange
		if cr, err := ParseContentRange(resp.Header.Get("Content-Range")); err == nil && cr.Total >= 0 {
			why = fmt.Errorf("%w: the file has %d bytes", ErrNoRange, cr.Total)
		}
		return want, fail(resp.StatusCode, why, false)

	default:
		return want, statusError(f.where(resp), span, resp)
	}
}

// fullAttempt fetches every range of the call from one plain GET of the whole file.
func (j *fetchCall) fullAttempt(ctx context.Context) (err error) {
	f := j.f
	fail := func(status int, err error, retry bool) *Error {
		return &Error{URL: f.safeURL, Status: status, Err: err, retry: retry}
	}
	resp, err := f.send(ctx, Range{}, nil)
	if err != nil {
		return err
	}
	body := &countingReader{r: resp.Body, n: &f.bytes}
	defer func() { closeBodyAfter(body, err) }()
	if resp.StatusCode != http.StatusOK {
		return statusError(f.where(resp), Range{}, resp)
	}
	if err := f.checkVersion(resp.Header); err != nil {
		return fail(resp.StatusCode, err, false)
	}
	if err := checkEncoding(resp.Header); err != nil {
		return fail(resp.StatusCode, err, false)
	}
	if err := j.readFull(resp, body); err != nil {
		return fail(resp.StatusCode, err, isRetryableBody(err))
	}
	return nil
}

// readFull reads a whole-file body once, writing the call's ranges and checking the length.
func (j *fetchCall) readFull(resp *http.Response, body io.Reader) error {
	f := j.f
	if resp.ContentLength >= 0 {
		if err := f.checkTotal(resp.ContentLength); err != nil {
			return err
		}
		if err := f.checkBounds(j.all); err != nil {
			return err
		}
	}
	var pos int64
	for _, r := range j.all {
		if err := discard(body, r.Off-pos); err != nil {
			return j.fullShort(pos, err)
		}
		pos = r.Off
		n, err := j.copyAt(body, r.Off, r.Len)
		pos += n
		if err != nil {
			return j.fullShort(pos, err)
		}
	}
	n, err := io.Copy(io.Discard, body)
	pos += n
	if err != nil {
		return j.fullShort(pos, err)
	}
	switch total := f.Length(); {
	case total < 0:
		if err := f.checkTotal(pos); err != nil {
			return err
		}
		return f.checkBounds(j.all)
	case pos > total:
		return fmt.Errorf("%w: body has more than the %d bytes of the file", ErrChanged, total)
	case pos < total:
		return fmt.Errorf("%w: body ended after %d of %d bytes", ErrShort, pos, total)
	}
	return nil
}

// fullShort explains a whole-file body that ended (or failed) at pos.
func (j *fetchCall) fullShort(pos int64, err error) error {
	if isWriteError(err) {
		return err
	}
	if errors.Is(err, errEarlyEOF) && j.f.Length() < 0 {
		// No Content-Length and the file ended before a requested range did.
		if cerr := j.f.checkTotal(pos); cerr != nil {
			return cerr
		}
		return j.f.checkBounds(j.all)
	}
	return fmt.Errorf("%w after %d bytes: %w", ErrShort, pos, err)
}

// readSingle handles a 206 reply with a Content-Range header and the bytes in the body.
func (j *fetchCall) readSingle(resp *http.Response, body io.Reader, want []Range) ([]Range, error) {
	cr, err := j.f.checkPart(resp.Header.Get("Content-Range"), want)
	if err != nil {
		return want, err
	}
	got := cr.Range()
	if len(want) == 1 && got != want[0] {
		return want, fmt.Errorf("%w: reply is for %s/%d, not the %s asked for", ErrBadContentRange, got, cr.Total, want[0])
	}
	if resp.ContentLength >= 0 && resp.ContentLength != got.Len {
		return want, fmt.Errorf("%w: %s/%d but Content-Length %d", ErrBadContentRange, got, cr.Total, resp.ContentLength)
	}
	rem, err := j.copyPart(body, got, want)
	if err != nil {
		return rem, err
	}
	if err := expectEOF(body, got); err != nil {
		return rem, err
	}
	return rem, nil
}

// readMultipart handles a multipart/byteranges reply. Parts may come in any order, overlap, cover
// more than one requested range or leave some out; the bytes that are still wanted are written and
// the rest is returned.
func (j *fetchCall) readMultipart(body io.Reader, boundary string, want []Range) ([]Range, error) {
	if boundary == "" {
		return want, fmt.Errorf("%w: multipart/byteranges without a boundary", ErrBadContentRange)
	}
	mr := multipart.NewReader(body, boundary)
	rem := want
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return rem, nil
		}
		if err != nil {
			return rem, fmt.Errorf("%w: multipart: %w", ErrShort, err)
		}
		cr, err := j.f.checkPart(p.Header.Get("Content-Range"), want)
		if err != nil {
			return rem, fmt.Errorf("part: %w", err)
		}
		got := cr.Range()
		rem, err = j.copyPart(p, got, rem)
		if err != nil {
			return rem, fmt.Errorf("part %s: %w", got, err)
		}
		if err := expectEOF(p, got); err != nil {
			return rem, err
		}
	}
}

// checkPart parses and checks the Content-Range of a reply or part against the pinned length and
// the requested ranges.
func (f *Fetcher) checkPart(header string, want []Range) (ContentRange, error) {
	if header == "" {
		return ContentRange{}, fmt.Errorf("%w: missing", ErrBadContentRange)
	}
	cr, err := ParseContentRange(header)
	if err != nil {
		return cr, err
	}
	if !cr.Satisfied() {
		return cr, fmt.Errorf("%w %q in a 206 reply", ErrBadContentRange, header)
	}
	if cr.Total < 0 {
		return cr, fmt.Errorf("%w %q: unknown complete length, cannot pin the version", ErrBadContentRange, header)
	}
	if err := f.checkTotal(cr.Total); err != nil {
		return cr, err
	}
	if err := f.checkBounds(want); err != nil {
		return cr, err
	}
	got := cr.Range()
	for _, w := range want {
		if w.Off < got.End() && got.Off < w.End() {
			return cr, nil
		}
	}
	return cr, fmt.Errorf("%w: %q holds none of the requested bytes", ErrBadContentRange, header)
}

// copyPart reads a part holding the bytes got from r and writes those of them that lie in rem.
// It returns rem less what was written (also on error, so a prefix that arrived is kept).
func (j *fetchCall) copyPart(r io.Reader, got Range, rem []Range) ([]Range, error) {
	pos := got.Off
	var done []Range
	var err error
	for _, w := range rem {
		a, b := max(w.Off, got.Off), min(w.End(), got.End())
		if a >= b {
			continue
		}
		if err = discard(r, a-pos); err != nil {
			break
		}
		pos = a
		var n int64
		n, err = j.copyAt(r, a, b-a)
		if n > 0 {
			done = append(done, Range{Off: a, Len: n})
		}
		pos += n
		if err != nil {
			break
		}
	}
	if err == nil {
		err = discard(r, got.End()-pos)
		if err == nil {
			pos = got.End()
		}
	}
	for _, d := range done {
		rem = byterange.Subtract(rem, d)
	}
	if err != nil {
		if isWriteError(err) {
			return rem, err
		}
		return rem, fmt.Errorf("%w: %d of %d bytes arrived: %w", ErrShort, pos-got.Off, got.Len, err)
	}
	return rem, nil
}

// expectEOF checks that a body or part holds nothing after the bytes its Content-Range named.
func expectEOF(r io.Reader, got Range) error {
	var b [1]byte
	n, err := io.ReadFull(r, b[:])
	if n > 0 {
		return fmt.Errorf("%w: body is longer than %s", ErrBadContentRange, got)
	}
	if err != io.EOF {
		return fmt.Errorf("%w: after %s: %w", ErrShort, got, err)
	}
	return nil
}

// writeError is a failure of the destination, never retried.
type writeError struct {
	r   Range
	err error
}

func (e *writeError) Error() string { return fmt.Sprintf("write %s: %v", e.r, e.err) }
func (e *writeError) Unwrap() error { return e.err }

// isWriteError reports whether err is (or wraps) a failure of the destination.
func isWriteError(err error) bool {
	var we *writeError
	return errors.As(err, &we)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// errEarlyEOF reports a body that ended cleanly before the bytes expected; a body that broke off
// gives io.ErrUnexpectedEOF or a network error instead.
var errEarlyEOF = errors.New("body ended early")

// copyAt copies n bytes from r to j.w at off and reports the bytes written. A body that ends
// early gives errEarlyEOF. What each read brings is written at once rather than gathered into a
// full buffer first: a run killed mid-body (SIGKILL, power loss) then has every byte that
// arrived in the file, and the next run asks for the rest only. Gathering 64 KiB first made a
// rerun fetch up to 64 KiB per interrupted request again (faults.TestKillMidTransfer).
func (j *fetchCall) copyAt(r io.Reader, off, n int64) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var written int64
	for written < n {
		k, rerr := r.Read(buf[:min(int64(len(buf)), n-written)])
		if k > 0 {
			m, werr := j.w.WriteAt(buf[:k], off+written)
			if m > 0 && j.f.opts.OnProgress != nil {
				j.f.opts.OnProgress(int64(m))
			}
			written += int64(m)
			if werr == nil && m < k {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return written, &writeError{r: Range{Off: off + written, Len: int64(k - m)}, err: werr}
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				if written == n {
					break
				}
				rerr = errEarlyEOF
			}
			return written, rerr
		}
	}
	return written, nil
}

// discard skips n bytes of r; a body that ends early gives errEarlyEOF.
func discard(r io.Reader, n int64) error {
	if n <= 0 {
		return nil
	}
	_, err := io.CopyN(io.Discard, r, n)
	if err == io.EOF {
		return errEarlyEOF
	}
	return err
}

// isRetryableBody reports whether a failure while reading a reply may pass on another try.
func isRetryableBody(err error) bool {
	if isWriteError(err) {
		return false
	}
	if errors.Is(err, ErrChanged) || errors.Is(err, ErrNoRange) {
		return false
	}
	return errors.Is(err, ErrShort) || errors.Is(err, ErrBadContentRange)
}

// checkEncoding refuses a reply whose body is not the file's bytes as stored.
func checkEncoding(h http.Header) error {
	if enc := h.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return fmt.Errorf("%w: Content-Encoding %q was not asked for", ErrStatus, enc)
	}
	return nil
}

// ifRange returns the If-Range value to send, "" if none is pinned.
func (f *Fetcher) ifRange() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vkind == validatorNone {
		return ""
	}
	return f.validator
}

func (f *Fetcher) setMode(m serverMode) {
	f.mu.Lock()
	if f.mode == modeUnknown {
		f.mode = m
	}
	f.mu.Unlock()
}

func (f *Fetcher) modeIs(ms ...serverMode) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range ms {
		if f.mode == m {
			return true
		}
	}
	return false
}

// checkVersion pins the validator of the first reply, or compares a later reply's with it.
func (f *Fetcher) checkVersion(h http.Header) error {
	etag, lm := h.Get("Etag"), h.Get("Last-Modified")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.pinned {
		f.pinned = true
		if strongETag(etag) {
			f.vkind, f.validator = validatorETag, etag
		} else if t, err := http.ParseTime(lm); err == nil {
			f.vkind, f.validator, f.vtime = validatorDate, lm, t
		}
		return nil
	}
	switch f.vkind {
	case validatorETag:
		if etag != f.validator {
			return fmt.Errorf("%w: ETag %q, pinned %s", ErrChanged, etag, f.validator)
		}
	case validatorDate:
		if t, err := http.ParseTime(lm); err != nil || !t.Equal(f.vtime) {
			return fmt.Errorf("%w: Last-Modified %q, pinned %s", ErrChanged, lm, f.validator)
		}
	}
	return nil
}

// checkTotal pins the file's length from the first reply, or compares a later one with it.
func (f *Fetcher) checkTotal(total int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.total < 0 {
		f.total = total
		return nil
	}
	if total != f.total {
		return fmt.Errorf("%w: length %d, expected %d", ErrChanged, total, f.total)
	}
	return nil
}

// checkBounds fails with ErrNoRange if a range ends past the known length.
func (f *Fetcher) checkBounds(rs []Range) error {
	total := f.Length()
	if total < 0 {
		return nil
	}
	for _, r := range rs {
		if r.End() > total {
			return fmt.Errorf("%w: %s ends past the %d bytes of the file", ErrNoRange, r, total)
		}
	}
	return nil
}

// split cuts sorted, disjoint ranges into request batches of at most maxRanges ranges and maxBytes bytes.
func split(rs []Range, maxRanges int, maxBytes int64) [][]Range {
	var (
		out   [][]Range
		cur   []Range
		bytes int64
	)
	for _, r := range rs {
		for r.Len > 0 {
			n := min(r.Len, maxBytes)
			if len(cur) == maxRanges || bytes+n > maxBytes {
				out, cur, bytes = append(out, cur), nil, 0
			}
			cur = append(cur, Range{Off: r.Off, Len: n})
			bytes += n
			r.Off, r.Len = r.Off+n, r.Len-n
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// rangeHeader formats sorted ranges as a Range header value.
func rangeHeader(rs []Range) string {
	b := make([]byte, 0, 6+len(rs)*24)
	b = append(b, "bytes="...)
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, r.Off, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, r.End()-1, 10)
	}
	return string(b)
}

// hull returns the span from the first to the last byte of sorted ranges.
func hull(rs []Range) Range {
	if len(rs) == 0 {
		return Range{}
	}
	return Range{Off: rs[0].Off, Len: rs[len(rs)-1].End() - rs[0].Off}
}

// countingReader adds the bytes read to a Fetcher's Stats.
type countingReader struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
