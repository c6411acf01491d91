package main

import (
	"crypto/tls"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/pkgsync/pkgsync/httprange"
	"github.com/pkgsync/pkgsync/store"
)

// serverTLS is --tls-cert and --tls-key of serve and tracker: with both, the server speaks
// https only.
type serverTLS struct {
	cert, key string
}

func (s *serverTLS) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.cert, "tls-cert", "", "serve https with this PEM certificate (chain); needs --tls-key")
	fs.StringVar(&s.key, "tls-key", "", "the PEM private key of --tls-cert")
}

// config returns the server's TLS configuration, or nil without --tls-cert and --tls-key.
func (s *serverTLS) config() (*tls.Config, error) {
	if s.cert == "" && s.key == "" {
		return nil, nil
	}
	if s.cert == "" || s.key == "" {
		return nil, fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
	}
	cert, err := httprange.LoadKeyPair(s.cert, s.key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// clientTLS is --ca-file, --client-cert and --client-key of update and seed: one TLS
// configuration for every HTTP hop (the .torrent, .zsync and .sig, the origin's ranges and
// the announces to https trackers).
type clientTLS struct {
	files httprange.TLSFiles
}

func (c *clientTLS) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.files.CAFile, "ca-file", "", "PEM file of extra CA certificates to trust for https (origin and trackers)")
	fs.StringVar(&c.files.CertFile, "client-cert", "", "PEM client certificate to show an https origin or tracker that asks for one (mutual TLS); needs --client-key")
	fs.StringVar(&c.files.KeyFile, "client-key", "", "the PEM private key of --client-cert")
}

// storeOptions hands the same files to the stores that do not go through the HTTP client
// (s3://: the AWS SDK builds its own; AWS_CA_BUNDLE still applies when no --ca-file is given).
func (c *clientTLS) storeOptions() store.Options {
	return store.Options{CAFile: c.files.CAFile, ClientCert: c.files.CertFile, ClientKey: c.files.KeyFile}
}

// config reads the files; with none given it returns the defaults (system roots, no
// client certificate).
func (c *clientTLS) config() (*tls.Config, error) {
	if (c.files.CertFile == "") != (c.files.KeyFile == "") {
		return nil, fmt.Errorf("%w: --client-cert and --client-key go together", errUsage)
	}
	return c.files.Config() // its errors name the file
}
