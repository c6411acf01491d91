package nginxtest

import (
	"fmt"
	"strings"
	"testing"
)

// TLS is what StartTLS serves https with: the server's PEM certificate and key and, when
// ClientCA is set, the CA whose client certificates nginx demands (ssl_verify_client on).
type TLS struct {
	Cert, Key string
	ClientCA  string
}

// StartTLS is Start serving https ("https://127.0.0.1:PORT"). A client without a certificate
// signed by ClientCA gets nginx's 400 ("No required SSL certificate was sent").
func StartTLS(t testing.TB, root string, tc TLS) string {
	t.Helper()
	return startWith(t, root, &tc)
}

// directives returns the server block's TLS lines ("" for plain http).
func (tc *TLS) directives() string {
	if tc == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ssl_certificate %s;\n\t\tssl_certificate_key %s;\n", tc.Cert, tc.Key)
	if tc.ClientCA != "" {
		fmt.Fprintf(&b, "\t\tssl_client_certificate %s;\n\t\tssl_verify_client on;\n", tc.ClientCA)
	}
	return b.String()
}
