package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		format  string
		level   slog.Level
		wantErr string
		// want matches each line written, for an Info record "step" with torrent=pkg.tar and
		// piece=7 and a Debug record, which shows only at LevelDebug.
		want  *regexp.Regexp
		lines int
	}{
		{"text", "text", slog.LevelInfo, "",
			regexp.MustCompile(`^time=\S+ level=INFO msg=step torrent=pkg\.tar piece=7$`), 1},
		{"text, debug shown", "text", slog.LevelDebug, "",
			regexp.MustCompile(`^time=\S+ level=(INFO msg=step torrent=pkg\.tar piece=7|DEBUG msg=detail)$`), 2},
		{"json", "json", slog.LevelInfo, "",
			regexp.MustCompile(`^\{"time":"[^"]+","level":"INFO","msg":"step","torrent":"pkg\.tar","piece":7\}$`), 1},
		{"json, warnings only", "json", slog.LevelWarn, "", nil, 0},
		{"empty", "", slog.LevelInfo, `log format "": want text or json`, nil, 0},
		{"unknown", "logfmt", slog.LevelInfo, `log format "logfmt": want text or json`, nil, 0},
		{"case matters", "JSON", slog.LevelInfo, `log format "JSON": want text or json`, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			l, err := New(&b, tt.format, tt.level)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Info("step", "torrent", "pkg.tar", "piece", 7)
			l.Debug("detail")
			out := strings.TrimSuffix(b.String(), "\n")
			var lines []string
			if out != "" {
				lines = strings.Split(out, "\n")
			}
			if len(lines) != tt.lines {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), tt.lines, b.String())
			}
			for _, line := range lines {
				if !tt.want.MatchString(line) {
					t.Errorf("line %q does not match %s", line, tt.want)
				}
				if tt.format == "json" && !json.Valid([]byte(line)) {
					t.Errorf("line %q is not JSON", line)
				}
			}
		})
	}
}

func TestOrDiscard(t *testing.T) {
	var b bytes.Buffer
	l := slog.New(slog.NewTextHandler(&b, nil))
	if OrDiscard(l) != l {
		t.Fatal("OrDiscard replaced a logger")
	}
	d := OrDiscard(nil)
	if d == nil || d.Enabled(t.Context(), slog.LevelError) {
		t.Fatal("OrDiscard(nil) is not a logger that drops everything")
	}
	d.Error("dropped")
}

func TestAtLeast(t *testing.T) {
	var b bytes.Buffer
	h := slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})
	l := slog.New(AtLeast(h, slog.LevelInfo)).WithGroup("lib").With("conn", 3)
	l.Debug("every request")
	l.Info("connected", "peer", "10.0.0.1:6881")
	if got, want := b.String(), "level=INFO msg=connected lib.conn=3 lib.peer=10.0.0.1:6881\n"; !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 1 {
		t.Fatalf("got %q, want one line ending in %q", got, want)
	}
}

// conn stands for a library value that prints itself but does not marshal to JSON.
type conn struct {
	Addr  string
	Close func()
}

func (c *conn) String() string { return "conn to " + c.Addr }

func TestJSONValues(t *testing.T) {
	var nilConn *conn
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{"a Stringer is its string", &conn{Addr: "10.0.0.1:6881"}, `"conn to 10.0.0.1:6881"`},
		{"a nil Stringer", nilConn, `"<nil>"`},
		{"a TextMarshaler stays text", netip.MustParseAddrPort("10.0.0.1:6881"), `"10.0.0.1:6881"`},
		{"an error is its message", fmt.Errorf("piece %d: %w", 3, io.ErrUnexpectedEOF), `"piece 3: unexpected EOF"`},
		{"a struct stays an object", struct{ N int }{4}, `{"N":4}`},
		{"a number", 7, `7`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			l, err := New(&b, "json", slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			l.WithGroup("lib").Info("m", "v", tt.value)
			var rec struct {
				Lib struct {
					V json.RawMessage `json:"v"`
				} `json:"lib"`
			}
			if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
				t.Fatalf("%q: %v", b.String(), err)
			}
			if got := string(rec.Lib.V); got != tt.want {
				t.Errorf("v is %s, want %s", got, tt.want)
			}
		})
	}
}
