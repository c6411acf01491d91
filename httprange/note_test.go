package httprange

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStatusErrorNote: a failed reply's own words (nginx's HTML title, S3's XML Message, Go's
// plain text) end up in the error, bounded and without control characters.
func TestStatusErrorNote(t *testing.T) {
	tests := []struct {
		name, ctype, body, want string
	}{
		{"nginx", "text/html", "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>...", "(the server says: 400 No required SSL certificate was sent)"},
		{"s3", "application/xml", "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", "(the server says: Request has expired)"},
		{"go", "text/plain; charset=utf-8", "forbidden here\nsecond line", "(the server says: forbidden here)"},
		{"control characters", "text/plain", "a\x1b[31mb", "(the server says: a[31mb)"},
		{"long", "text/plain", strings.Repeat("x", 500), "(the server says: " + strings.Repeat("x", maxNote) + "...)"},
		{"binary", "application/octet-stream", "\x00\x01", "unexpected HTTP status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, err := Get(context.Background(), nil, srv.URL+"/f", nil, 1<<10)
			if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to end with %q", err, tc.want)
			}
		})
	}
}
