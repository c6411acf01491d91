package main

import "testing"

func TestNetworkBound(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"update", "-v", "x.torrent"}, true},
		{[]string{"sync"}, true},
		{[]string{"seed"}, true},
		{[]string{"serve"}, true},
		{[]string{"tracker"}, true},
		{[]string{"make", "pkg.tar"}, false},
		{[]string{"report"}, false},
		{[]string{"--version"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := networkBound(tt.args); got != tt.want {
			t.Errorf("networkBound(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
