package versions

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

// TestShapes checks each pair maker: deterministic for its seed, about the size asked for, and
// the two versions differ.
func TestShapes(t *testing.T) {
	const n = 2 << 20
	for _, sh := range Shapes {
		t.Run(sh.Name, func(t *testing.T) {
			v1, v2 := sh.Make(5, n)
			a1, a2 := sh.Make(5, n)
			if !bytes.Equal(v1, a1) || !bytes.Equal(v2, a2) {
				t.Fatal("not deterministic for its seed")
			}
			if bytes.Equal(v1, v2) {
				t.Fatal("the two versions are the same")
			}
			for _, v := range [][]byte{v1, v2} {
				if len(v) < n*3/4 || len(v) > n*3/2 {
					t.Errorf("%d bytes, asked for about %d", len(v), n)
				}
			}
		})
	}
}

// tarMembers returns the names and contents of a tar's members, in order.
func tarMembers(t *testing.T, data []byte) (names []string, bodies [][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names, bodies = append(names, h.Name), append(bodies, b)
	}
}

// TestRepeatsLayout checks the property the delta depends on: the shared file is in the tar
// three times, at three different offsets modulo 2048 (zsyncmake's block size), in both versions.
func TestRepeatsLayout(t *testing.T) {
	v1, v2 := Repeats(9, 4<<20)
	for _, v := range [][]byte{v1, v2} {
		names, bodies := tarMembers(t, v)
		var shared []byte
		offs := map[int]bool{}
		from := 0
		for i, name := range names {
			if !strings.Contains(name, "build") {
				continue
			}
			if shared == nil {
				shared = bodies[i]
			} else if !bytes.Equal(shared, bodies[i]) {
				t.Fatalf("%s differs from the first bundled copy", name)
			}
			at := from + bytes.Index(v[from:], bodies[i][:4096])
			offs[at%2048] = true
			from = at + 1
		}
		if len(offs) != 3 {
			t.Errorf("the bundled copies lie at %d distinct alignments, want 3", len(offs))
		}
	}
}

// TestVersionBumpShifts checks that every file grew by one byte per mention of the version.
func TestVersionBumpShifts(t *testing.T) {
	v1, v2 := VersionBump(3, 1<<20)
	n1, b1 := tarMembers(t, v1)
	n2, b2 := tarMembers(t, v2)
	if len(n1) != len(n2) || len(n1) < 10 {
		t.Fatalf("%d and %d members", len(n1), len(n2))
	}
	for i := range b1 {
		m := bytes.Count(b1[i], []byte("1.9.9"))
		if m == 0 || len(b2[i]) != len(b1[i])+m || bytes.Count(b2[i], []byte("1.10.0")) != m {
			t.Fatalf("%s: %d mentions, %d -> %d bytes", n1[i], m, len(b1[i]), len(b2[i]))
		}
	}
}
