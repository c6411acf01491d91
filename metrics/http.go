package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the servers serve their metrics.
const Path = "/metrics"

// NewRegistry returns a registry of cs and of the Go runtime's and the process's metrics
// (go_*, process_*), which tell a server's memory, goroutines and open files.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs = append([]prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}, cs...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// Handle returns a handler that serves g at Path (the Prometheus text format, or another
// format the scraper asks for) and passes every other request to h. It matches the path
// exactly and leaves the rest to h as it came: http.ServeMux would clean paths and redirect,
// which would change how an origin answers paths such as /a/../b.
func Handle(h http.Handler, g prometheus.Gatherer) http.Handler {
	m := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Path {
			m.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
