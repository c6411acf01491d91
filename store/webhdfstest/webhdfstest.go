// Package webhdfstest is an HDFS stand-in for tests: a namenode and a datanode, each on a
// listener of its own, that follow the published WebHDFS REST API (Hadoop 3's WebHDFS.md) for
// the operations pkgsync uses. GETFILESTATUS, LISTSTATUS, RENAME and DELETE are answered by the
// namenode; OPEN and CREATE are redirected with a 307 to the datanode, which serves and
// stores the bytes; errors come as RemoteException JSON with the status codes of the spec.
// Files live in memory. No Hadoop is available to the tests, so this server is what the
// store's WebHDFS client is tested against, not a real cluster.
package webhdfstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server.
type Options struct {
	BlockSize int64  // the blockSize reported for files (default 128 MiB)
	User      string // when set, requests must carry user.name=User or delegation=Token
	Token     string // an accepted delegation token
	ReadOnly  bool   // CREATE, RENAME and DELETE fail with AccessControlException
	// Addr is the namenode's listen address (default 127.0.0.1:0); the datanode listens on the
	// same host.
	Addr string
	// TLS serves both nodes over https (swebhdfs://) with httptest's certificate; NameNode.Client()
	// trusts it.
	TLS bool
}

// Server is a namenode and a datanode.
type Server struct {
	NameNode, DataNode *httptest.Server

	opt    Options
	mu     sync.Mutex
	files  map[string]*file // by absolute path
	nextID int64

	dataBytes atomic.Int64 // OPEN body bytes the datanode sent
	opens     atomic.Int64
	failOpens atomic.Int64 // OPENs the datanode still answers with a 500
}

// FailOpens makes the datanode answer the next n OPENs with 500 and an IOException, as a
// datanode that lost a disk does.
func (s *Server) FailOpens(n int) { s.failOpens.Store(int64(n)) }

type file struct {
	data  []byte
	mtime time.Time
	id    int64
}

// New starts a server; Close stops it.
func New(opt Options) *Server {
	if opt.BlockSize == 0 {
		opt.BlockSize = 128 << 20
	}
	s := &Server{opt: opt, files: map[string]*file{}, nextID: 16386}
	host := "127.0.0.1"
	if opt.Addr != "" {
		host, _, _ = strings.Cut(opt.Addr, ":")
	}
	s.NameNode = listen(opt.Addr, http.HandlerFunc(s.namenode), opt.TLS)
	s.DataNode = listen(host+":0", http.HandlerFunc(s.datanode), opt.TLS)
	return s
}

func listen(addr string, h http.Handler, tls bool) *httptest.Server {
	ts := httptest.NewUnstartedServer(h)
	if addr != "" {
		ts.Listener.Close()
		ln, err := netListen(addr)
		if err != nil {
			panic(fmt.Sprintf("webhdfstest: listen %s: %v", addr, err))
		}
		ts.Listener = ln
	}
	if tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	return ts
}

// Close stops both listeners.
func (s *Server) Close() {
	s.NameNode.Close()
	s.DataNode.Close()
}

// URL returns the webhdfs:// (swebhdfs:// with TLS) URL of the absolute path p.
func (s *Server) URL(p string) string {
	scheme := "webhdfs://"
	if s.opt.TLS {
		scheme = "swebhdfs://"
	}
	return scheme + s.NameNode.Listener.Addr().String() + path.Clean("/"+p)
}

// Put stores data at the absolute path p with modification time mtime.
func (s *Server) Put(p string, data []byte, mtime time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.files[path.Clean("/"+p)] = &file{data: append([]byte(nil), data...), mtime: mtime, id: s.nextID}
}

// Get returns the bytes at p.
func (s *Server) Get(p string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[path.Clean("/"+p)]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), f.data...), true
}

// DataBytes returns the bytes the datanode has sent in OPEN replies, and the OPEN requests. A
// reply counts once it starts, so a client that has read it never finds it missing.
func (s *Server) DataBytes() (bytes, opens int64) { return s.dataBytes.Load(), s.opens.Load() }

// remote writes a RemoteException reply.
func remote(w http.ResponseWriter, status int, exception, pkg, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"RemoteException": map[string]string{
		"exception": exception, "javaClassName": pkg + "." + exception, "message": msg}})
}

func notFound(w http.ResponseWriter, p string) {
	remote(w, http.StatusNotFound, "FileNotFoundException", "java.io", "File does not exist: "+p)
}

func badArg(w http.ResponseWriter, msg string) {
	remote(w, http.StatusBadRequest, "IllegalArgumentException", "java.lang", msg)
}

// authorized checks user.name or delegation as the options ask.
func (s *Server) authorized(w http.ResponseWriter, q url.Values) bool {
	if s.opt.User == "" {
		return true
	}
	if t := q.Get("delegation"); t != "" && t == s.opt.Token {
		return true
	}
	if q.Get("user.name") == s.opt.User {
		return true
	}
	remote(w, http.StatusUnauthorized, "SecurityException", "java.lang", "Failed to obtain user group information: no user.name or a wrong one")
	return false
}

// fsPath is the HDFS path of a /webhdfs/v1 request.
func fsPath(r *http.Request) (string, bool) {
	p, ok := strings.CutPrefix(r.URL.Path, "/webhdfs/v1")
	if !ok {
		return "", false
	}
	return path.Clean("/" + p), true
}

func (s *Server) namenode(w http.ResponseWriter, r *http.Request) {
	p, ok := fsPath(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if !s.authorized(w, q) {
		return
	}
	op := strings.ToUpper(q.Get("op"))
	switch {
	case op == "GETFILESTATUS" && r.Method == http.MethodGet:
		s.getFileStatus(w, p)
	case op == "LISTSTATUS" && r.Method == http.MethodGet:
		s.listStatus(w, p)
	case (op == "OPEN" && r.Method == http.MethodGet) || (op == "CREATE" && r.Method == http.MethodPut):
		if op == "CREATE" && s.opt.ReadOnly {
			remote(w, http.StatusForbidden, "AccessControlException", "org.apache.hadoop.security", "Permission denied: user="+q.Get("user.name")+", access=WRITE, inode=\""+p+"\"")
			return
		}
		if op == "OPEN" && s.status(p) == nil {
			notFound(w, p)
			return
		}
		// The namenode picks a datanode and sends the client there with the same parameters.
		loc := s.DataNode.URL + "/webhdfs/v1" + (&url.URL{Path: p}).EscapedPath() + "?" + r.URL.RawQuery + "&namenoderpcaddress=" + r.Host
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusTemporaryRedirect)
	case op == "RENAME" && r.Method == http.MethodPut:
		s.rename(w, p, q.Get("destination"))
	case op == "DELETE" && r.Method == http.MethodDelete:
		s.delete(w, p)
	default:
		badArg(w, "Invalid value for webhdfs parameter \"op\": "+q.Get("op")+" with "+r.Method)
	}
}

// status returns the FileStatus of p: a file, a directory holding files, or nil.
func (s *Server) status(p string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.files[p]; ok {
		return s.fileStatus("", f)
	}
	if s.isDir(p) {
		return dirStatus("")
	}
	return nil
}

func (s *Server) isDir(p string) bool {
	if p == "/" {
		return true
	}
	for k := range s.files {
		if strings.HasPrefix(k, p+"/") {
			return true
		}
	}
	return false
}

func (s *Server) fileStatus(suffix string, f *file) map[string]any {
	return map[string]any{"pathSuffix": suffix, "type": "FILE", "length": len(f.data),
		"modificationTime": f.mtime.UnixMilli(), "accessTime": f.mtime.UnixMilli(), "blockSize": s.opt.BlockSize,
		"fileId": f.id, "owner": "hdfs", "group": "supergroup", "permission": "644", "replication": 3, "childrenNum": 0, "storagePolicy": 0}
}

func dirStatus(suffix string) map[string]any {
	return map[string]any{"pathSuffix": suffix, "type": "DIRECTORY", "length": 0, "modificationTime": 0,
		"accessTime": 0, "blockSize": 0, "fileId": 16385, "owner": "hdfs", "group": "supergroup", "permission": "755", "replication": 0}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) getFileStatus(w http.ResponseWriter, p string) {
	st := s.status(p)
	if st == nil {
		notFound(w, p)
		return
	}
	writeJSON(w, map[string]any{"FileStatus": st})
}

func (s *Server) listStatus(w http.ResponseWriter, p string) {
	s.mu.Lock()
	if f, ok := s.files[p]; ok {
		st := s.fileStatus("", f)
		s.mu.Unlock()
		writeJSON(w, map[string]any{"FileStatuses": map[string]any{"FileStatus": []any{st}}})
		return
	}
	if !s.isDir(p) {
		s.mu.Unlock()
		notFound(w, p)
		return
	}
	dir := strings.TrimSuffix(p, "/") + "/"
	entries := map[string]map[string]any{}
	for k, f := range s.files {
		rest, ok := strings.CutPrefix(k, dir)
		if !ok {
			continue
		}
		if name, _, sub := strings.Cut(rest, "/"); sub {
			entries[name] = dirStatus(name)
		} else {
			entries[name] = s.fileStatus(name, f)
		}
	}
	s.mu.Unlock()
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	list := make([]any, 0, len(names))
	for _, n := range names {
		list = append(list, entries[n])
	}
	writeJSON(w, map[string]any{"FileStatuses": map[string]any{"FileStatus": list}})
}

func (s *Server) rename(w http.ResponseWriter, from, to string) {
	if s.opt.ReadOnly {
		remote(w, http.StatusForbidden, "AccessControlException", "org.apache.hadoop.security", "Permission denied: access=WRITE, inode=\""+from+"\"")
		return
	}
	if !strings.HasPrefix(to, "/") {
		badArg(w, "Invalid value for webhdfs parameter \"destination\": "+to+" is not an absolute path")
		return
	}
	to = path.Clean(to)
	s.mu.Lock()
	f, ok := s.files[from]
	_, exists := s.files[to]
	if ok && !exists {
		delete(s.files, from)
		s.files[to] = f
	}
	s.mu.Unlock()
	writeJSON(w, map[string]bool{"boolean": ok && !exists})
}

func (s *Server) delete(w http.ResponseWriter, p string) {
	if s.opt.ReadOnly {
		remote(w, http.StatusForbidden, "AccessControlException", "org.apache.hadoop.security", "Permission denied: access=WRITE, inode=\""+p+"\"")
		return
	}
	s.mu.Lock()
	_, ok := s.files[p]
	delete(s.files, p)
	s.mu.Unlock()
	writeJSON(w, map[string]bool{"boolean": ok})
}

// datanode serves OPEN and CREATE after the namenode's redirect.
func (s *Server) datanode(w http.ResponseWriter, r *http.Request) {
	p, ok := fsPath(r)
	q := r.URL.Query()
	if !ok || q.Get("namenoderpcaddress") == "" {
		badArg(w, "the datanode needs namenoderpcaddress (was the namenode's redirect followed?)")
		return
	}
	switch op := strings.ToUpper(q.Get("op")); {
	case op == "OPEN" && r.Method == http.MethodGet:
		s.open(w, p, q)
	case op == "CREATE" && r.Method == http.MethodPut:
		s.create(w, r, p, q)
	default:
		badArg(w, "Invalid value for webhdfs parameter \"op\": "+op+" with "+r.Method)
	}
}

func (s *Server) open(w http.ResponseWriter, p string, q url.Values) {
	if s.failOpens.Add(-1) >= 0 {
		remote(w, http.StatusInternalServerError, "IOException", "java.io", "Could not obtain block of "+p)
		return
	}
	s.failOpens.Store(max(s.failOpens.Load(), 0))
	s.mu.Lock()
	f, ok := s.files[p]
	var data []byte
	if ok {
		data = f.data
	}
	s.mu.Unlock()
	if !ok {
		notFound(w, p)
		return
	}
	off, err := int64Param(q, "offset", 0)
	if err != nil || off < 0 {
		badArg(w, "Invalid value for webhdfs parameter \"offset\": "+q.Get("offset"))
		return
	}
	n, err := int64Param(q, "length", int64(len(data))-off)
	if err != nil || n < 0 {
		badArg(w, "Invalid value for webhdfs parameter \"length\": "+q.Get("length"))
		return
	}
	if off > int64(len(data)) {
		remote(w, http.StatusForbidden, "IOException", "java.io", fmt.Sprintf("Offset=%d out of the range [0, %d]", off, len(data)))
		return
	}
	end := min(off+n, int64(len(data)))
	s.opens.Add(1)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(end-off, 10))
	// Counted before the write: the client may have every byte before Write returns here.
	s.dataBytes.Add(end - off)
	k, _ := w.Write(data[off:end])
	s.dataBytes.Add(int64(k) - (end - off))
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, p string, q url.Values) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		remote(w, http.StatusBadRequest, "IOException", "java.io", "reading the body: "+err.Error())
		return
	}
	s.mu.Lock()
	_, exists := s.files[p]
	if exists && q.Get("overwrite") != "true" {
		s.mu.Unlock()
		remote(w, http.StatusForbidden, "FileAlreadyExistsException", "org.apache.hadoop.fs", p+" for client already exists")
		return
	}
	s.nextID++
	s.files[p] = &file{data: data, mtime: time.Now(), id: s.nextID}
	s.mu.Unlock()
	w.Header().Set("Location", "hdfs://"+q.Get("namenoderpcaddress")+p)
	w.WriteHeader(http.StatusCreated)
}

func int64Param(q url.Values, name string, def int64) (int64, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	return strconv.ParseInt(v, 10, 64)
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
