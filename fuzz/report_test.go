package fuzz

import (
	"fmt"
	"testing"
	"time"

	"github.com/pkgsync/pkgsync/report"
)

// FuzzAnnounceLine feeds arbitrary lines to the announce-log parser of `pkgsync report`: it must
// not panic, and an announce it accepts must come back the same from the line AppendLine writes
// for it (the tracker's own format), which must in turn be written again byte for byte.
func FuzzAnnounceLine(f *testing.F) {
	for _, s := range []string{
		// from a swarmbench fan-out's tracker
		`{"time":"2026-12-06T19:57:26.815580278Z","info_hash":"b4468fec2e96caedfc8538cd3ff4f00d1cc1c02c","peer_id":"2d4754303030332daee65c13be48b6fe72945d25","peer":"198.18.0.10:6881","remote":"198.18.0.10:58335","event":"started","uploaded":0,"downloaded":0,"left":16848069,"numwant":-1,"peers":0}`,
		`{"time":"2026-12-06T19:57:53.824848595Z","info_hash":"b4468fec2e96caedfc8538cd3ff4f00d1cc1c02c","peer_id":"2d4754303030332de6fa2e92ab4a18862d278f6b","peer":"198.18.0.12:6881","remote":"198.18.0.12:47803","event":"stopped","uploaded":20938752,"downloaded":16848069,"left":0,"numwant":0,"peers":0}`,
		`{"time":"2026-12-06T19:57:27Z","info_hash":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","peer_id":"2d5053303030312d303030303030303030303031","peer":"[fd00::1]:6881","remote":"[fd00::1]:5","event":"","uploaded":1,"downloaded":2,"left":-1,"numwant":50,"peers":3}`,
		`{"time":"2026-12-06T19:57:26Z","remote":"10.0.0.1:5","path":"/announce","info_hash":"00","failure":"bad port \"0\""}`,
		`{"time":"2026-12-06T19:57:26+02:00","level":"INFO","msg":"seeding"}`,
		"pkgsync: origin for /srv listening on http://198.18.0.1:8080/",
		`{"peer_id":null}`, `{"peer_id":"","time":"x"}`, "{", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		a, kind, err := report.ParseLine(line)
		if err != nil || kind != report.AnnounceLine {
			return
		}
		out := report.AppendLine(nil, a)
		b, kind, err := report.ParseLine(out)
		if err != nil || kind != report.AnnounceLine {
			t.Fatalf("%q parsed, but its rewrite %q does not: %v", line, out, err)
		}
		if !a.Time.Equal(b.Time) {
			t.Fatalf("time %v came back as %v", a.Time, b.Time)
		}
		a.Time, b.Time = time.Time{}, time.Time{}
		if a != b {
			t.Fatalf("%q came back as %+v, want %+v", out, b, a)
		}
		b.Time = mustTime(t, out)
		if again := report.AppendLine(nil, b); string(again) != string(out) {
			t.Fatalf("rewritten as %q, then as %q", out, again)
		}
	})
}

func mustTime(t *testing.T, line []byte) time.Time {
	a, _, err := report.ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	return a.Time
}

// FuzzAccessLine: the origin's access-log parser does not panic, and a line it accepts comes
// back the same from the format origin writes.
func FuzzAccessLine(f *testing.F) {
	for _, s := range []string{
		`2026-12-06T19:57:27.177Z 198.18.0.12:36482 GET "/pkg.tar" 206 32768 0ms "bytes=8421376-8454143"`,
		`2026-12-06T19:57:26.406Z [::1]:45070 HEAD "/a b\"c.tar" 200 0 41ms "-"`,
		`2026-12-06T19:57:26.406Z 10.0.0.1:1 GET "/p" 200 5 1ms "-" extra`, `x`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		e, err := report.ParseAccessLine(line)
		if err != nil {
			return
		}
		out := fmt.Sprintf("%s %s %s %q %d %d %dms %q", e.Time.UTC().Format(time.RFC3339Nano), e.Remote, e.Method, e.Path,
			e.Status, e.Bytes, e.Duration.Milliseconds(), e.Range)
		b, err := report.ParseAccessLine(out)
		if err != nil {
			t.Fatalf("%q parsed as %+v, but its rewrite %q does not: %v", line, e, out, err)
		}
		if !b.Time.Equal(e.Time) || b.Remote != e.Remote || b.Method != e.Method || b.Path != e.Path || b.Status != e.Status ||
			b.Bytes != e.Bytes || b.Duration != e.Duration || b.Range != e.Range {
			t.Fatalf("%q came back as %+v, want %+v", out, b, e)
		}
	})
}
