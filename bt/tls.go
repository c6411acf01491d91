package bt

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/anacrolix/torrent/tracker"
)

// withTLS makes an announce to an https tracker use Config.TLS: its roots (with the system's)
// and its client certificate. anacrolix/torrent v1.59.1 builds a fresh http.Transport per announce
// with InsecureSkipVerify and no way to pass a tls.Config or an http.Client; what it does take
// is a request director and a dial function. So the director sends the request as plain http
// to the tracker's host and port, and the dial function runs TLS itself on that one connection,
// verifying the tracker's name, before a byte of the request (and its secret, if any) is sent.
// Announces to http and udp trackers are left alone.
func (n *Node) withTLS(a *tracker.Announce) {
	u, err := url.Parse(a.TrackerUrl)
	if err != nil || u.Scheme != "https" {
		return
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if n.cfg.TLS != nil {
		conf = n.cfg.TLS.Clone()
	}
	conf.ServerName = u.Hostname()
	conf.NextProtos = []string{"http/1.1"}
	dial := a.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	a.HostHeader = u.Host
	a.HttpRequestDirector = func(r *http.Request) error {
		r.URL.Scheme = "http"
		r.URL.Host = addr
		return nil
	}
	a.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		if address != addr {
			// Never plain text to an https tracker.
			return nil, fmt.Errorf("tracker %s: dial of %s, not the tracker's %s", u.Redacted(), address, addr)
		}
		c, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(c, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS with tracker %s: %w", u.Host, err)
		}
		return tc, nil
	}
}
