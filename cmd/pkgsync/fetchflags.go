package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/pkgsync/pkgsync/sign"
)

// parseHeaders reads --header values, "Name: value" each, for every HTTP request of update
// and sync.
func parseHeaders(hs []string) (http.Header, error) {
	h := http.Header{}
	for _, s := range hs {
		k, v, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%w: --header %q: want \"Name: value\"", errUsage, s)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h, nil
}

// readTrustKeys reads the public keys of --trust-key; an error names the file.
func readTrustKeys(paths []string) (sign.Keyring, error) {
	var ks sign.Keyring
	for _, p := range paths {
		k, err := sign.ReadPublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("--trust-key: %w", err)
		}
		ks = append(ks, k)
	}
	return ks, nil
}
