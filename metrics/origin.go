package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxPackages bounds the values of the origin's package label: a folder whose files come and go
// (sync removing old versions, a producer publishing new ones) adds a few series per file, and
// past this many files the rest count under package="".
const maxPackages = 10000

// Origin counts what an origin answers. It is a prometheus.Collector; its methods may be called
// from several goroutines.
type Origin struct {
	requests *prometheus.CounterVec
	sent     *prometheus.CounterVec

	mu       sync.Mutex
	packages map[string]bool // package label values in use
}

// NewOrigin returns an Origin with every counter at zero.
func NewOrigin() *Origin {
	return &Origin{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pkgsync_origin_requests_total",
			Help: "Requests for files and the index that the origin answered, by method (GET, HEAD, other) and HTTP status.",
		}, []string{"method", "status"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pkgsync_origin_sent_bytes_total",
			Help: `Body bytes the origin sent, by package (a file of the served folder, without .torrent, .zsync or .sig; "" when the request named none), kind (data, torrent, zsync, sig, index) and HTTP status.`,
		}, []string{"package", "kind", "status"}),
		packages: map[string]bool{},
	}
}

// Served records one answered request: its method, the status sent, the file of the served folder
// it was answered from (a path relative to the folder, "" when it named none) and the body bytes
// sent.
func (o *Origin) Served(method string, status int, file string, body int64) {
	code := strconv.Itoa(status)
	o.requests.WithLabelValues(methodLabel(method), code).Inc()
	pkg, kind := FileLabels(file)
	o.sent.WithLabelValues(o.bound(pkg), kind, code).Add(float64(body))
}

// bound returns pkg, or "" once maxPackages other values are in use.
func (o *Origin) bound(pkg string) string {
	if pkg == "" {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.packages[pkg] {
		if len(o.packages) >= maxPackages {
			return ""
		}
		o.packages[pkg] = true
	}
	return pkg
}

// FileLabels returns the package and kind labels of a file the origin serves: the package it
// belongs to (its name without the .torrent, .zsync or .sig that describe it) and what it is of
// that package. The index (index.json at the top of the folder) has kind index and no package.
func FileLabels(file string) (pkg, kind string) {
	if file == "" {
		return "", ""
	}
	if file == "index.json" {
		return "", "index"
	}
	for _, ext := range [...]string{"torrent", "zsync", "sig"} {
		if p, ok := strings.CutSuffix(file, "."+ext); ok && p != "" {
			return p, ext
		}
	}
	return file, "data"
}

// methodLabel bounds the method label: the origin serves GET and HEAD, and answers any other
// method 405.
func methodLabel(m string) string {
	if m == http.MethodGet || m == http.MethodHead {
		return m
	}
	return "other"
}

// Describe implements prometheus.Collector.
func (o *Origin) Describe(ch chan<- *prometheus.Desc) {
	o.requests.Describe(ch)
	o.sent.Describe(ch)
}

// Collect implements prometheus.Collector.
func (o *Origin) Collect(ch chan<- prometheus.Metric) {
	o.requests.Collect(ch)
	o.sent.Collect(ch)
}
