package updater

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/bt"
	"github.com/pkgsync/pkgsync/internal/versions"
	"github.com/pkgsync/pkgsync/manifest"
)

// TestStubFromOrigin runs swarm updates of a node alone (no tracker, no peer: it has nobody to
// ask for the info dictionary and takes the .torrent at once) against origins that send the
// stub, and one whose stub and .torrent disagree or whose stub is broken: the update either
// ends with the package and says where the info came from, or fails naming the file.
func TestStubFromOrigin(t *testing.T) {
	v := versions.Random(5, 1<<20+11)
	made := func(data []byte) []byte {
		p := filepath.Join(t.TempDir(), "pkg.bin")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := manifest.Make(t.Context(), p, manifest.MakeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(res.Torrent)
		return b
	}
	torrent := made(v)
	stub, err := manifest.MakeStub(torrent)
	if err != nil {
		t.Fatal(err)
	}
	otherStub, _ := manifest.MakeStub(made(versions.Random(6, 1<<20)))
	for _, tc := range []struct {
		name      string
		stub      []byte // sent to a request for the stub; nil: the .torrent
		wantErr   string
		wantFrom  string
		wantStubs int // requests that asked for the stub
	}{
		{"stub, then the .torrent", stub, "", "origin", 1},
		{"no stub (a plain web server)", nil, "", "", 1},
		{"a stub of another version", otherStub, "a new version was published meanwhile", "", 1},
		{"a broken stub", []byte("d9:info-hash3:abce"), "not a valid torrent stub", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stubs := 0
			mux := http.NewServeMux()
			mux.HandleFunc("/pkg.bin.torrent", func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.Header.Get("Accept"), manifest.StubType) {
					stubs++
					if tc.stub != nil {
						w.Header().Set("Content-Type", manifest.StubType)
						w.Write(tc.stub)
						return
					}
				}
				w.Write(torrent)
			})
			mux.HandleFunc("/pkg.bin", func(w http.ResponseWriter, r *http.Request) {
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(v))
			})
			ts := httptest.NewServer(mux)
			defer ts.Close()
			opt := Options{Source: ts.URL + "/pkg.bin.torrent", Out: filepath.Join(t.TempDir(), "pkg.bin"), Swarm: true,
				OriginURL: ts.URL + "/pkg.bin"}
			opt.BT = bt.DefaultConfig()
			opt.BT.ListenAddr = "127.0.0.1:0"
			res, err := Run(t.Context(), opt)
			if stubs != tc.wantStubs {
				t.Errorf("%d requests asked for the stub, want %d", stubs, tc.wantStubs)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "pkg.bin.torrent") {
					t.Fatalf("error %v, want one naming pkg.bin.torrent with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.InfoFrom != tc.wantFrom {
				t.Errorf("info from %q, want %q", res.InfoFrom, tc.wantFrom)
			}
			got, _ := os.ReadFile(res.Output)
			if !bytes.Equal(got, v) {
				t.Fatal("the output is not the package")
			}
		})
	}
}
