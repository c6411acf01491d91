package bt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openDirect opens a second, O_DIRECT descriptor only of a file open for writing whose name
// still leads to it: a read-only Data stays unwritten, and a file renamed over is not written
// in its place.
func TestOpenDirect(t *testing.T) {
	tests := []struct {
		name    string
		open    func(path string) (*os.File, error)
		replace bool   // another file takes the name after the open
		wantErr string // "": opens (where the file system has O_DIRECT)
	}{
		{"read-write", func(p string) (*os.File, error) { return os.OpenFile(p, os.O_RDWR, 0) }, false, ""},
		{"write-only", func(p string) (*os.File, error) { return os.OpenFile(p, os.O_WRONLY, 0) }, false, ""},
		{"read-only", os.Open, false, "read-only"},
		{"renamed over", func(p string) (*os.File, error) { return os.OpenFile(p, os.O_RDWR, 0) }, true, "no longer the file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "data")
			if err := os.WriteFile(path, make([]byte, 8192), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := tc.open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tc.replace {
				other := path + ".new"
				if err := os.WriteFile(other, make([]byte, 8192), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(other, path); err != nil {
					t.Fatal(err)
				}
			}
			df, err := openDirect(f)
			if err == nil {
				df.Close()
			}
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("openDirect = %v, want an error saying %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				// tmpfs and a few others have no O_DIRECT: the open's own refusal is expected there.
				if !strings.Contains(err.Error(), "invalid argument") {
					t.Errorf("openDirect = %v, want a descriptor", err)
				}
			}
		})
	}
}
