package progress

import (
	"bytes"
	"os"
	"testing"
)

// TestIsTerminal checks the test that keeps cron quiet: /dev/null (a character device, not a
// terminal), a regular file and a buffer are no terminals, and New draws nothing on them.
func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	file, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var buf bytes.Buffer
	for name, w := range map[string]interface{ Write([]byte) (int, error) }{"/dev/null": null, "a file": file, "a buffer": &buf} {
		if IsTerminal(w) {
			t.Errorf("%s taken for a terminal", name)
		}
		if b := New(w, "x", 10); b != nil {
			t.Errorf("New on %s drew a bar", name)
		}
	}
}

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1536, "1.5 KiB"},
		{16 << 20, "16 MiB"},
		{3 << 30, "3.0 GiB"},
		{-2048, "-2.0 KiB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"64M", 64 << 20}, {"1G", 1 << 30}, {"512K", 512 << 10}, {"1048576", 1 << 20},
		{"", -1}, {"M", -1}, {"-1M", -1}, {"1.5M", -1}, {"12MB", -1}, {"0", -1}, {"9223372036854775807G", -1},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.want < 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}
