package tracker

import (
	"fmt"
	"net/url"
	"testing"
)

// FuzzAnnounceQueryParse holds parseAnnounceQuery to url.ParseQuery: the same error, or the same
// first value of every key the tracker reads.
func FuzzAnnounceQueryParse(f *testing.F) {
	f.Add(announceQuery(ihOf("f"), "x", 6881, "ip", "10.0.0.1", "secret", "a b").Encode())
	f.Add("info_hash=%00%01&peer_id=x&port=-1&numwant=99999999999")
	f.Add("port=1&port=2&port=%zz")
	f.Add("a=1;b=2&port=3")
	f.Add("info%5Fhash=aaaaaaaaaaaaaaaaaaaa&&=x&left&left=5")
	f.Add("x=%4&ip=%41")
	f.Add("secret=%2B+%20&secret=2")
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseAnnounceQuery(raw)
		want, wantErr := url.ParseQuery(raw)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("%q: error %v, url.ParseQuery's %v", raw, err, wantErr)
		}
		if err != nil {
			return
		}
		for i, k := range queryKeys {
			v, ok := got.lookup(i)
			if w, wok := want[k]; ok != wok || (ok && v != w[0]) {
				t.Fatalf("%q: %s = %q (present %v), url.ParseQuery's %q", raw, k, v, ok, w)
			}
		}
	})
}
