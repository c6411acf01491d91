package catalog

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name, line, version string
		ok                  bool
	}{
		{"app-1.4.2.tar", "app", "1.4.2", true},
		{"my-tool-2.0-rc1.tar.gz", "my-tool", "2.0-rc1", true},
		{"data-20261206.img", "data", "20261206", true},
		{"lib-3.tar", "lib", "3", true},
		{"x-1.2", "x", "1.2", true},
		{"node-v20-1.0.tar", "node-v20", "1.0", true},
		{"app.tar", "", "", false},
		{"app-latest.tar", "", "", false},
		{"-1.0.tar", "", "", false},
	}
	for _, tc := range tests {
		line, version, ok := ParseName(tc.name)
		if line != tc.line || version != tc.version || ok != tc.ok {
			t.Errorf("ParseName(%q) = %q, %q, %v; want %q, %q, %v", tc.name, line, version, ok, tc.line, tc.version, tc.ok)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	// Each is older than the next.
	order := []string{"0.9", "1.0-rc1", "1.0-rc2", "1.0", "1.0.1", "1.2", "1.9.9", "1.10.0", "1.10.0a", "2", "10"}
	for i, a := range order {
		for j, b := range order {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := CompareVersions(a, b); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
	if CompareVersions("1.01", "1.1") != 0 {
		t.Error("leading zeros count")
	}
}

func TestReadAndNewest(t *testing.T) {
	ix, err := Read(strings.NewReader(`{"packages": [
		{"name": "app-1.2.tar", "torrent": "app-1.2.tar.torrent", "size": 10},
		{"name": "app-1.10.tar", "torrent": "app-1.10.tar.torrent", "size": 10},
		{"name": "db-2.0.img", "line": "db", "version": "2.0", "torrent": "db-2.0.img.torrent", "size": 5},
		{"name": "weird.bin", "line": "weird", "version": "7", "torrent": "w.torrent", "size": 1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ix.Newest() {
		got = append(got, p.Line+"="+p.Name)
	}
	if strings.Join(got, " ") != "app=app-1.10.tar db=db-2.0.img weird=weird.bin" {
		t.Errorf("Newest = %v", got)
	}
	bad := []struct{ json, want string }{
		{`{"packages": [{"name": "../x-1.tar", "torrent": "t", "size": 1}]}`, "not a plain file name"},
		{`{"packages": [{"name": "x.tar", "torrent": "t", "size": 1}]}`, "not LINE-VERSION"},
		{`{"packages": [{"name": "x-1.tar", "size": 1}]}`, "no torrent"},
		{`{"packages": [{"name": "x-1.tar", "torrent": "t", "size": 1}, {"name": "x-1.tar", "torrent": "t", "size": 1}]}`, "twice"},
		{`{"packages": 3}`, "index:"},
	}
	for _, b := range bad {
		if _, err := Read(strings.NewReader(b.json)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Read(%s) = %v, want an error with %q", b.json, err, b.want)
		}
	}
}

func TestVersions(t *testing.T) {
	names := []string{"app-1.2.tar", "app-1.10.tar", "app-1.9.tar", "other-5.tar", "app-1.10.tar.part", "README"}
	var got []string
	for _, l := range Versions(names, "app") {
		got = append(got, l.Name)
	}
	// app-1.10.tar.part parses as version 1.10 too; sync filters partial files before this.
	if strings.Join(got, " ") != "app-1.10.tar app-1.10.tar.part app-1.9.tar app-1.2.tar" {
		t.Errorf("Versions = %v", got)
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"app-1.4.2.tar", "my-tool-2.0-rc1.tar.gz", "-1", "a-1.", "x-1.2.3-4.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		line, version, ok := ParseName(name)
		if !ok {
			return
		}
		if line == "" || version == "" || !strings.HasPrefix(name, line+"-"+version) {
			t.Fatalf("ParseName(%q) = %q, %q", name, line, version)
		}
		if CompareVersions(version, version) != 0 {
			t.Fatalf("version %q is not equal to itself", version)
		}
	})
}

func FuzzCompareVersions(f *testing.F) {
	f.Add("1.0", "1.0-rc1")
	f.Add("1.10", "1.9")
	f.Fuzz(func(t *testing.T, a, b string) {
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Fatalf("CompareVersions(%q, %q) is not antisymmetric", a, b)
		}
	})
}
