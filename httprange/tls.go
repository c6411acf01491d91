package httprange

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// TLSFiles names the PEM files of a client's trust and identity for https: CAFile adds CA
// certificates to the system pool, and CertFile with KeyFile is the client certificate shown to
// a server that asks for one (mutual TLS). Empty names add nothing.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Config reads the files into a TLS client configuration (TLS 1.2 or later). The certificate
// and its key go together: one without the other is an error, as is a file that holds no PEM
// certificate or a key that does not match its certificate; each error names the file.
func (f TLSFiles) Config() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("httprange: CA bundle: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("httprange: CA bundle %s holds no PEM certificate", f.CAFile)
		}
		conf.RootCAs = pool
	}
	switch {
	case f.CertFile == "" && f.KeyFile == "":
	case f.CertFile == "" || f.KeyFile == "":
		return nil, errors.New("httprange: a client certificate needs both its certificate and its key file")
	default:
		cert, err := LoadKeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// LoadKeyPair reads a PEM certificate (chain) and its private key, with errors that name the
// files: tls.LoadX509KeyPair names neither.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// NewTLSClient returns the client of NewClient with conf as its TLS configuration (nil: Go's
// defaults with the system roots). Every request of an update goes through one such client, so
// the same trust and identity apply to each hop: .torrent, .zsync, .sig and the ranges.
func NewTLSClient(conf *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{Transport: newTransport(conf, timeout, sharedIdleConns)}
}
