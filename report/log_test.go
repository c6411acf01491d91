package report

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const (
	hashA = "b4468fec2e96caedfc8538cd3ff4f00d1cc1c02c"
	peer1 = "2d4754303030332daee65c13be48b6fe72945d25"
)

// line is an announce line as the tracker writes it, with the given fields replaced.
func line(repl ...string) string {
	s := `{"time":"2026-12-06T19:57:26.815580278Z","info_hash":"` + hashA + `","peer_id":"` + peer1 +
		`","peer":"198.18.0.10:6881","remote":"198.18.0.10:58335","event":"started","uploaded":0,"downloaded":0,"left":16848069,"numwant":-1,"peers":0}`
	return strings.NewReplacer(repl...).Replace(s)
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		kind    Kind
		wantErr string
	}{
		{"announce", line(), AnnounceLine, ""},
		{"re-announce, IPv6 peer", line(`"event":"started"`, `"event":""`, `198.18.0.10:6881`, `[fd00::1]:6881`), AnnounceLine, ""},
		{"left unknown", line(`"left":16848069`, `"left":-1`), AnnounceLine, ""},
		{"unknown keys are ignored", line(`"peers":0}`, `"peers":0,"new":[1]}`), AnnounceLine, ""},
		{"refused", `{"time":"2026-12-06T19:57:26Z","remote":"10.0.0.1:5","path":"/announce","failure":"bad port \"0\""}`, Refused, ""},
		{"serve's own message", "pkgsync: origin for /srv listening on http://198.18.0.1:8080/", Other, ""},
		{"blank", "   ", Other, ""},
		{"another JSON log", `{"time":"2026-12-06T19:57:26Z","level":"INFO","msg":"seeding"}`, Other, ""},
		{"cut short", line()[:120], Other, "not a JSON object"},
		{"no time", line(`"time":"2026-12-06T19:57:26.815580278Z",`, ``), AnnounceLine, `announce without "time"`},
		{"no left", line(`,"left":16848069`, ``), AnnounceLine, `announce without "left"`},
		{"bad time", line(`19:57:26.815580278Z`, `19:57`), AnnounceLine, `time "2026-12-06T19:57"`},
		{"short info hash", line(hashA, hashA[:38]), AnnounceLine, "info_hash"},
		{"info hash not hex", line(hashA, "zz"+hashA[2:]), AnnounceLine, "info_hash"},
		{"bad peer", line(`198.18.0.10:6881`, `node7`), AnnounceLine, `peer "node7"`},
		{"unknown event", line(`"event":"started"`, `"event":"begun"`), AnnounceLine, `unknown event "begun"`},
		{"negative upload", line(`"uploaded":0`, `"uploaded":-5`), AnnounceLine, "negative byte count"},
		{"left below -1", line(`"left":16848069`, `"left":-2`), AnnounceLine, "negative byte count"},
	}
	for _, tt := range tests {
		a, kind, err := ParseLine([]byte(tt.line))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		case kind != tt.kind:
			t.Errorf("%s: kind %d, want %d", tt.name, kind, tt.kind)
		}
		if tt.name == "announce" {
			want := Announce{Time: time.Date(2026, 12, 6, 19, 57, 26, 815580278, time.UTC), Peer: netip.MustParseAddrPort("198.18.0.10:6881"),
				Remote: "198.18.0.10:58335", Event: "started", Left: 16848069, NumWant: -1}
			copy(want.InfoHash[:], mustHex(hashA))
			copy(want.PeerID[:], mustHex(peer1))
			if a != want {
				t.Errorf("parsed %+v\nwant   %+v", a, want)
			}
			if got := string(AppendLine(nil, a)); got != tt.line+"\n" {
				t.Errorf("AppendLine:\n%s\nwant\n%s", got, tt.line)
			}
		}
	}
}

func TestReadAnnounceLog(t *testing.T) {
	log := "pkgsync: origin listening on http://127.0.0.1:8080/\n" + line() + "\n" +
		`{"time":"2026-12-06T19:57:27Z","remote":"10.0.0.1:5","path":"/announce","failure":"unknown info hash"}` + "\n\n" +
		line(`"event":"started"`, `"event":"completed"`, `"left":16848069`, `"left":0`) + "\n"
	l, err := ReadAnnounceLog(strings.NewReader(log), "announces.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Announces) != 2 || l.Refused != 1 || l.Other != 2 || l.Announces[1].Event != "completed" {
		t.Errorf("got %d announces (%+v), %d refused, %d other; want 2, 1, 2", len(l.Announces), l.Announces, l.Refused, l.Other)
	}

	_, err = ReadAnnounceLog(strings.NewReader(log+line(`"peer":"198.18.0.10:6881"`, `"peer":"x"`)+"\n"), "announces.jsonl")
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 6 || !strings.HasPrefix(err.Error(), `announces.jsonl:6: peer "x"`) {
		t.Errorf("error %v, want one naming announces.jsonl:6 and the peer", err)
	}
	_, err = ReadAnnounceLog(strings.NewReader(strings.Repeat("x", maxLine+1)), "big.log")
	if err == nil || !strings.Contains(err.Error(), "big.log:1: line longer than") {
		t.Errorf("error %v for an overlong line", err)
	}
}

func TestParseAccessLine(t *testing.T) {
	tests := []struct {
		line    string
		want    AccessEntry
		wantErr string
	}{
		{`2026-12-06T19:57:27.177Z 198.18.0.12:36482 GET "/pkg.tar" 206 32768 3ms "bytes=8421376-8454143"`,
			AccessEntry{Time: time.Date(2026, 12, 6, 19, 57, 27, 177e6, time.UTC), Remote: "198.18.0.12:36482", Method: "GET",
				Path: "/pkg.tar", Status: 206, Bytes: 32768, Duration: 3 * time.Millisecond, Range: "bytes=8421376-8454143"}, ""},
		{`2026-12-06T19:57:26.406Z [::1]:45070 HEAD "/a b\"c.tar" 200 0 41ms "-"`,
			AccessEntry{Time: time.Date(2026, 12, 6, 19, 57, 26, 406e6, time.UTC), Remote: "[::1]:45070", Method: "HEAD",
				Path: `/a b"c.tar`, Status: 200, Duration: 41 * time.Millisecond, Range: "-"}, ""},
		{`2026-12-06T19:57:26.406Z 10.0.0.1:1 GET /pkg.tar 200 0 1ms "-"`, AccessEntry{}, "path: want a quoted string"},
		{`2026-12-06 10.0.0.1:1 GET "/p" 200 0 1ms "-"`, AccessEntry{}, `time "2026-12-06"`},
		{`2026-12-06T19:57:26.406Z 10.0.0.1:1 GET "/p" 2000 0 1ms "-"`, AccessEntry{}, `status "2000"`},
		{`2026-12-06T19:57:26.406Z 10.0.0.1:1 GET "/p" 200 -1 1ms "-"`, AccessEntry{}, `body bytes "-1"`},
		{`2026-12-06T19:57:26.406Z 10.0.0.1:1 GET "/p" 200 5 1s "-"`, AccessEntry{}, `duration "1s"`},
		{`2026-12-06T19:57:26.406Z 10.0.0.1:1 GET "/p" 200 5 1ms`, AccessEntry{}, "range: want a quoted string"},
		{`2026-12-06T19:57:26.406Z 10.0.0.1:1 GET "/p" 200 5 1ms "-" extra`, AccessEntry{}, `unexpected "extra"`},
		{`2026-12-06T19:57:26.406Z 10.0.0.1:1`, AccessEntry{}, "want 1 more fields"},
	}
	for _, tt := range tests {
		got, err := ParseAccessLine(tt.line)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseAccessLine(%q) = %+v, %v\nwant %+v", tt.line, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseAccessLine(%q) error %v, want %q", tt.line, err, tt.wantErr)
		}
	}
	_, err := ReadAccessLog(strings.NewReader(tests[0].line+"\n\nnonsense\n"), "access.log")
	if err == nil || !strings.HasPrefix(err.Error(), "access.log:3: ") {
		t.Errorf("ReadAccessLog error %v, want one naming access.log:3", err)
	}
}

func TestReadStats(t *testing.T) {
	st, err := ReadStats(strings.NewReader(`{"requests":3,"body_bytes":100,"files":{"/pkg.tar":{"requests":2,"body_bytes":90}}}`), "stats.json")
	if err != nil || st.Files["/pkg.tar"].BodyBytes != 90 {
		t.Errorf("ReadStats = %+v, %v", st, err)
	}
	if _, err := ReadStats(strings.NewReader(`<html>`), "http://origin/.pkgsync/stats"); err == nil || !strings.HasPrefix(err.Error(), "http://origin/.pkgsync/stats: ") {
		t.Errorf("ReadStats of HTML: %v", err)
	}
}
