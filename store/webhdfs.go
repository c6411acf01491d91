package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// WebHDFS reaches HDFS through its REST API (the namenode's /webhdfs/v1, or an HttpFS gateway,
// which speaks the same protocol): webhdfs://NAMENODE:PORT/PATH over http, swebhdfs:// over
// https, as Hadoop names them. Without a port, Hadoop 3's defaults apply (9870 and 9871).
//
// The user is the URL's user.name parameter, else Options.User, else $HADOOP_USER_NAME (simple
// authentication); a delegation token (the URL's delegation parameter, else
// Options.DelegationToken) replaces the user. Reads follow the namenode's redirect to a
// datanode; writes (CREATE) take the redirect by hand, as the protocol asks, so that the body
// goes to the datanode only.
//
// The identity of a file is its fileId, length and modificationTime from GETFILESTATUS. HDFS
// files are written once: a rewrite (create with overwrite, append, truncate) changes the
// modification time, and a file deleted and made again gets a new fileId. GETFILECHECKSUM is not
// used: the datanodes compute it by reading the checksum data of every block, a cost per Stat
// that grows with the file, and HttpFS or encryption zones may not offer it.
//
// A read with an identity first checks it with GETFILESTATUS (WebHDFS has no conditional read),
// so a file replaced between two ranged reads fails the second with ErrChanged.

// Defaults of Hadoop 3 for the namenode's HTTP and HTTPS ports.
const (
	webhdfsPort  = "9870"
	swebhdfsPort = "9871"
	webhdfsRetry = 3 // tries of a request that failed in a way that may pass
)

func init() {
	registerHTTP("webhdfs", openWebHDFS)
	registerHTTP("swebhdfs", openWebHDFS)
}

// webHDFS is one namenode (or HttpFS gateway). Keys are absolute HDFS paths without the
// leading slash.
type webHDFS struct {
	base       url.URL // http(s)://host:port
	name       string  // webhdfs://host:port, for messages
	client     *http.Client
	noRedirect *http.Client // the same transport, for CREATE's two steps
	header     http.Header
	user       string
	token      string
}

func openWebHDFS(_ context.Context, u *url.URL, opt Options, hc HTTPConfig) (Store, string, error) {
	scheme, port := "http", webhdfsPort
	if strings.EqualFold(u.Scheme, "swebhdfs") {
		scheme, port = "https", swebhdfsPort
	}
	if u.Hostname() == "" {
		return nil, "", fmt.Errorf("store: %s: no namenode host", u.Redacted())
	}
	host := u.Host
	if u.Port() == "" {
		host = u.Hostname() + ":" + port
		if strings.Contains(u.Hostname(), ":") {
			host = "[" + u.Hostname() + "]:" + port
		}
	}
	c, err := clientFor(opt, hc)
	if err != nil {
		return nil, "", fmt.Errorf("store: %s: %w", u.Redacted(), err)
	}
	nr := *c
	nr.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	w := &webHDFS{
		base: url.URL{Scheme: scheme, Host: host}, name: strings.ToLower(u.Scheme) + "://" + host,
		client: c, noRedirect: &nr, header: hc.Header,
		user: opt.User, token: opt.DelegationToken,
	}
	q := u.Query()
	if v := q.Get("user.name"); v != "" {
		w.user = v
	}
	if v := q.Get("delegation"); v != "" {
		w.token = v
	}
	if w.user == "" {
		w.user = os.Getenv("HADOOP_USER_NAME")
	}
	return w, keyOf(u), nil
}

func (w *webHDFS) String() string { return w.name }

// where names a key for messages.
func (w *webHDFS) where(key string) string { return w.name + "/" + key }

// opURL is the namenode URL of op on key with the authentication parameters.
func (w *webHDFS) opURL(key, op string, params url.Values) string {
	u := w.base
	u.Path = "/webhdfs/v1/" + key
	u.RawPath = "/webhdfs/v1/" + escapeKey(key)
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	q.Set("op", op)
	if w.token != "" {
		q.Set("delegation", w.token)
	} else if w.user != "" {
		q.Set("user.name", w.user)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// FileStatus is the part of WebHDFS's FileStatus object that pkgsync reads.
type FileStatus struct {
	PathSuffix       string `json:"pathSuffix"`
	Type             string `json:"type"` // FILE, DIRECTORY or SYMLINK
	Length           int64  `json:"length"`
	ModificationTime int64  `json:"modificationTime"` // milliseconds since 1970
	BlockSize        int64  `json:"blockSize"`
	FileID           int64  `json:"fileId"`
}

// RemoteException is the error object a WebHDFS server answers with.
type RemoteException struct {
	Exception     string `json:"exception"`
	JavaClassName string `json:"javaClassName"`
	Message       string `json:"message"`
}

// ParseFileStatus reads a GETFILESTATUS reply.
func ParseFileStatus(data []byte) (FileStatus, error) {
	var v struct {
		FileStatus *FileStatus `json:"FileStatus"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return FileStatus{}, fmt.Errorf("GETFILESTATUS reply: %w", err)
	}
	if v.FileStatus == nil {
		return FileStatus{}, errors.New("GETFILESTATUS reply has no FileStatus")
	}
	return *v.FileStatus, checkStatus(*v.FileStatus)
}

// ParseFileStatuses reads a LISTSTATUS reply.
func ParseFileStatuses(data []byte) ([]FileStatus, error) {
	var v struct {
		FileStatuses *struct {
			FileStatus []FileStatus `json:"FileStatus"`
		} `json:"FileStatuses"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("LISTSTATUS reply: %w", err)
	}
	if v.FileStatuses == nil {
		return nil, errors.New("LISTSTATUS reply has no FileStatuses")
	}
	for _, st := range v.FileStatuses.FileStatus {
		if err := checkStatus(st); err != nil {
			return nil, err
		}
		if st.PathSuffix == "" || st.PathSuffix == "." || st.PathSuffix == ".." || strings.Contains(st.PathSuffix, "/") {
			return nil, fmt.Errorf("LISTSTATUS reply names the entry %q", st.PathSuffix)
		}
	}
	return v.FileStatuses.FileStatus, nil
}

// checkStatus refuses values no file can have.
func checkStatus(st FileStatus) error {
	if st.Length < 0 || st.BlockSize < 0 {
		return fmt.Errorf("FileStatus with length %d and blockSize %d", st.Length, st.BlockSize)
	}
	return nil
}

// ParseRemoteException reads an error reply; ok is false when data holds none.
func ParseRemoteException(data []byte) (RemoteException, bool) {
	var v struct {
		RemoteException *RemoteException `json:"RemoteException"`
	}
	if json.Unmarshal(data, &v) != nil || v.RemoteException == nil {
		return RemoteException{}, false
	}
	re := *v.RemoteException
	if re.Exception == "" && re.JavaClassName == "" {
		return RemoteException{}, false
	}
	return re, true
}

// RemoteError is a failed WebHDFS request: what was asked, of which file, and what the
// server answered.
type RemoteError struct {
	Op     string
	Where  string // the file, as webhdfs://host:port/key
	Status int
	Remote RemoteException // empty when the reply held none
	Err    error           // ErrNotExist, ErrReadOnly or nil
}

func (e *RemoteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webhdfs %s %s: HTTP %d", e.Op, e.Where, e.Status)
	if e.Remote.Exception != "" || e.Remote.JavaClassName != "" {
		name := e.Remote.Exception
		if name == "" {
			name = e.Remote.JavaClassName
		}
		fmt.Fprintf(&b, ": %s: %s", name, e.Remote.Message)
	}
	return b.String()
}

func (e *RemoteError) Unwrap() error { return e.Err }

// remoteError reads an error reply into a RemoteError. FileNotFoundException (or a 404) is
// ErrNotExist; a refused write (AccessControlException, 403 to a write) is ErrReadOnly.
func remoteError(op, where string, resp *http.Response, write bool) *RemoteError {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &RemoteError{Op: op, Where: where, Status: resp.StatusCode}
	e.Remote, _ = ParseRemoteException(data)
	switch {
	case e.Remote.Exception == "FileNotFoundException" || strings.HasSuffix(e.Remote.JavaClassName, ".FileNotFoundException"),
		resp.StatusCode == http.StatusNotFound && e.Remote.Exception == "":
		e.Err = ErrNotExist
	case write && (e.Remote.Exception == "AccessControlException" || resp.StatusCode == http.StatusForbidden):
		e.Err = ErrReadOnly
	}
	return e
}

// mayPass reports whether a failed request is worth another try: no reply, or a 5xx that is
// not the server's verdict on the file.
func mayPass(ctx context.Context, resp *http.Response, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		var cve *tls.CertificateVerificationError
		var uae x509.UnknownAuthorityError
		var he x509.HostnameError
		return !errors.As(err, &cve) && !errors.As(err, &uae) && !errors.As(err, &he) // another try cannot fix a certificate
	}
	return resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented
}

// do sends a request built by mk (again for each try) and returns a reply whose status is want;
// any other status becomes a RemoteError (body read and closed).
func (w *webHDFS) do(ctx context.Context, c *http.Client, op, key string, want int, write bool, mk func() (*http.Request, error)) (*http.Response, error) {
	var lastErr error
	for try := 0; try < webhdfsRetry; try++ {
		if try > 0 {
			t := time.NewTimer(time.Duration(100<<try) * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("webhdfs %s %s: %w (while retrying after: %w)", op, w.where(key), context.Cause(ctx), lastErr)
			case <-t.C:
			}
		}
		req, err := mk()
		if err != nil {
			return nil, fmt.Errorf("webhdfs %s %s: %w", op, w.where(key), err)
		}
		for k, vs := range w.header {
			req.Header[k] = append([]string(nil), vs...)
		}
		resp, err := c.Do(req)
		if err == nil && resp.StatusCode == want {
			return resp, nil
		}
		if err != nil {
			lastErr = fmt.Errorf("webhdfs %s %s: %w", op, w.where(key), err)
		} else {
			lastErr = remoteError(op, w.where(key), resp, write)
			resp.Body.Close()
		}
		// RENAME is not asked twice: one that was carried out but whose reply was lost would
		// answer false the second time, and Put would then remove the file it just renamed.
		if !mayPass(ctx, resp, err) || op == "RENAME" {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// get runs a namenode GET op and decodes its JSON reply with parse.
func (w *webHDFS) getJSON(ctx context.Context, op, key string, params url.Values) ([]byte, error) {
	resp, err := w.do(ctx, w.client, op, key, http.StatusOK, false, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, w.opURL(key, op, params), nil)
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("webhdfs %s %s: reading the reply: %w", op, w.where(key), err)
	}
	return data, nil
}

func (w *webHDFS) status(ctx context.Context, key string) (FileStatus, error) {
	data, err := w.getJSON(ctx, "GETFILESTATUS", key, nil)
	if err != nil {
		return FileStatus{}, err
	}
	st, err := ParseFileStatus(data)
	if err != nil {
		return st, fmt.Errorf("webhdfs %s: %w", w.where(key), err)
	}
	return st, nil
}

// identity is the ETag of a file (see the comment at the top of the file).
func identity(st FileStatus) string {
	return fmt.Sprintf("%d-%d-%d", st.FileID, st.Length, st.ModificationTime)
}

func infoOf(key string, st FileStatus) Info {
	return Info{Key: key, Size: st.Length, ETag: identity(st), ModTime: time.UnixMilli(st.ModificationTime)}
}

// Stat returns the file's size and identity.
func (w *webHDFS) Stat(ctx context.Context, key string) (Info, error) {
	st, err := w.status(ctx, key)
	if err != nil {
		return Info{}, err
	}
	if st.Type != "FILE" {
		return Info{}, fmt.Errorf("webhdfs %s: a %s, not a file", w.where(key), strings.ToLower(st.Type))
	}
	return infoOf(key, st), nil
}

// BlockSize returns the HDFS block size of the file (BlockSizer).
func (w *webHDFS) BlockSize(ctx context.Context, key string) (int64, error) {
	st, err := w.status(ctx, key)
	if err != nil {
		return 0, err
	}
	return st.BlockSize, nil
}

// ReadRange reads n bytes at off with OPEN, which the namenode redirects to a datanode.
func (w *webHDFS) ReadRange(ctx context.Context, key string, off, n int64, etag string) (io.ReadCloser, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("webhdfs %s: invalid range: offset %d, length %d", w.where(key), off, n)
	}
	if etag != "" {
		info, err := w.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if info.ETag != etag {
			return nil, fmt.Errorf("webhdfs %s: %w: identity %s, expected %s", w.where(key), ErrChanged, info.ETag, etag)
		}
		if off+n > info.Size {
			return nil, fmt.Errorf("webhdfs %s: bytes %d-%d end past the %d bytes of the file", w.where(key), off, off+n-1, info.Size)
		}
	}
	if n == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	params := url.Values{"offset": {strconv.FormatInt(off, 10)}, "length": {strconv.FormatInt(n, 10)}}
	resp, err := w.do(ctx, w.client, "OPEN", key, http.StatusOK, false, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, w.opURL(key, "OPEN", params), nil)
	})
	if err != nil {
		return nil, err
	}
	if resp.ContentLength >= 0 && resp.ContentLength != n {
		resp.Body.Close()
		return nil, fmt.Errorf("webhdfs OPEN %s bytes %d-%d: the datanode sends %d bytes (past the end of the file?)", w.where(key), off, off+n-1, resp.ContentLength)
	}
	return &sizedBody{r: resp.Body, left: n, what: fmt.Sprintf("webhdfs OPEN %s bytes %d-%d", w.where(key), off, off+n-1)}, nil
}

// List returns the files under prefix, recursively, sorted by key.
func (w *webHDFS) List(ctx context.Context, prefix string) ([]Info, error) {
	dir := prefix
	if !strings.HasSuffix(dir, "/") && dir != "" {
		dir = path.Dir(dir)
		if dir == "." {
			dir = ""
		}
	}
	var out []Info
	if err := w.walk(ctx, strings.TrimSuffix(dir, "/"), prefix, &out); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// walk lists dir and the directories below it that can hold keys starting with prefix.
func (w *webHDFS) walk(ctx context.Context, dir, prefix string, out *[]Info) error {
	data, err := w.getJSON(ctx, "LISTSTATUS", dir, nil)
	if errors.Is(err, ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sts, err := ParseFileStatuses(data)
	if err != nil {
		return fmt.Errorf("webhdfs %s: %w", w.where(dir), err)
	}
	for _, st := range sts {
		key := st.PathSuffix
		if dir != "" {
			key = dir + "/" + st.PathSuffix
		}
		switch st.Type {
		case "FILE":
			if strings.HasPrefix(key, prefix) {
				*out = append(*out, infoOf(key, st))
			}
		case "DIRECTORY":
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if err := w.walk(ctx, key, prefix, out); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Put writes the object under a temporary name beside it and renames it into place, so that a
// reader never sees a part of it (HDFS shows a file being written with the length written so
// far).
func (w *webHDFS) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(key), "."+path.Base(key)+".tmp-"+hex.EncodeToString(rnd[:]))
	if path.Dir(key) == "." {
		tmp = strings.TrimPrefix(tmp, "./")
	}
	if err := w.create(ctx, tmp, r, size); err != nil {
		return err
	}
	ok, err := w.rename(ctx, tmp, key)
	if err == nil && !ok {
		// RENAME does not replace an existing file: delete it, then rename.
		if err = w.delete(ctx, key); err == nil {
			ok, err = w.rename(ctx, tmp, key)
		}
	}
	if err == nil && !ok {
		err = fmt.Errorf("webhdfs RENAME %s to %s: the namenode refused", w.where(tmp), key)
	}
	if err != nil {
		_ = w.delete(context.WithoutCancel(ctx), tmp)
		return err
	}
	return nil
}

// create runs CREATE's two steps: the namenode answers 307 with the datanode's URL, and the
// body goes there.
func (w *webHDFS) create(ctx context.Context, key string, r io.Reader, size int64) error {
	params := url.Values{"overwrite": {"true"}}
	resp, err := w.do(ctx, w.noRedirect, "CREATE", key, http.StatusTemporaryRedirect, true, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPut, w.opURL(key, "CREATE", params), nil)
	})
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("webhdfs CREATE %s: the namenode's redirect: %w", w.where(key), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("webhdfs CREATE %s: %w", w.where(key), err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	for k, vs := range w.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	resp, err = w.noRedirect.Do(req)
	if err != nil {
		return fmt.Errorf("webhdfs CREATE %s (datanode %s): %w", w.where(key), loc.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return remoteError("CREATE", w.where(key), resp, true)
	}
	return nil
}

// rename moves from to to and reports the namenode's boolean.
func (w *webHDFS) rename(ctx context.Context, from, to string) (bool, error) {
	params := url.Values{"destination": {"/" + to}}
	return w.boolOp(ctx, http.MethodPut, "RENAME", from, params)
}

// delete removes key; a missing key is no error.
func (w *webHDFS) delete(ctx context.Context, key string) error {
	_, err := w.boolOp(ctx, http.MethodDelete, "DELETE", key, url.Values{"recursive": {"false"}})
	if errors.Is(err, ErrNotExist) {
		return nil
	}
	return err
}

func (w *webHDFS) boolOp(ctx context.Context, method, op, key string, params url.Values) (bool, error) {
	resp, err := w.do(ctx, w.client, op, key, http.StatusOK, true, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, method, w.opURL(key, op, params), nil)
	})
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var v struct {
		Boolean bool `json:"boolean"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&v); err != nil {
		return false, fmt.Errorf("webhdfs %s %s: reply: %w", op, w.where(key), err)
	}
	return v.Boolean, nil
}
