// Package catalog describes a folder of packages kept in several versions: the index an origin
// publishes at /index.json, and the LINE-VERSION naming that tells, from a file's name, which
// package line it belongs to and how new it is.
//
// It has a home of its own because both ends use it: `pkgsync serve` writes the index of its
// folder, and `pkgsync sync` reads it and matches it against the versions a node holds, to pick
// the newest older version of each line as the old file of a delta update.
//
// # Naming
//
// A package file is named LINE-VERSION followed by its extensions: app-1.4.2.tar is version
// 1.4.2 of the line app, my-tool-2.0-rc1.tar.gz version 2.0-rc1 of my-tool. The version starts
// at the first hyphen followed by a digit and ends at the first dot followed by something other
// than a digit. Versions compare as version numbers: runs of digits numerically, other runs
// byte by byte, and a version that has run out before the other is older, except that a
// pre-release tag after a hyphen (1.0-rc1) is older than the release (1.0).
package catalog

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Package is one entry of an index: one version of one package line.
type Package struct {
	Name    string `json:"name"`    // the file's name, e.g. app-1.4.2.tar
	Line    string `json:"line"`    // e.g. app
	Version string `json:"version"` // e.g. 1.4.2
	Torrent string `json:"torrent"` // its .torrent, relative to the index's URL or absolute
	Size    int64  `json:"size"`
	SHA1    string `json:"sha1"` // hex SHA-1 of the whole file
}

// Index is what an origin publishes at /index.json.
type Index struct {
	Packages []Package `json:"packages"`
}

// ParseName splits a package file's name into its line and version; ok is false for a name
// that does not follow LINE-VERSION.EXT.
func ParseName(name string) (line, version string, ok bool) {
	for i := 1; i+1 < len(name); i++ {
		if name[i] != '-' || !isDigit(name[i+1]) {
			continue
		}
		v := name[i+1:]
		end := len(v)
		for j := 0; j+1 < len(v); j++ {
			if v[j] == '.' && !isDigit(v[j+1]) {
				end = j
				break
			}
		}
		return name[:i], v[:end], true
	}
	return "", "", false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// CompareVersions returns -1, 0 or +1 as version a is older than, the same as, or newer than b.
func CompareVersions(a, b string) int {
	for a != "" && b != "" {
		var x, y string
		x, a = nextPart(a)
		y, b = nextPart(b)
		if c := comparePart(x, y); c != 0 {
			return c
		}
	}
	// One ran out: a pre-release tag makes the longer one older, any other rest newer.
	switch {
	case a == b:
		return 0
	case a == "":
		if strings.HasPrefix(b, "-") || strings.HasPrefix(b, "~") {
			return 1
		}
		return -1
	default:
		if strings.HasPrefix(a, "-") || strings.HasPrefix(a, "~") {
			return -1
		}
		return 1
	}
}

// nextPart cuts the leading run of digits, or of other bytes, off v.
func nextPart(v string) (part, rest string) {
	digits := isDigit(v[0])
	i := 1
	for i < len(v) && isDigit(v[i]) == digits {
		i++
	}
	return v[:i], v[i:]
}

func comparePart(x, y string) int {
	if isDigit(x[0]) && isDigit(y[0]) {
		x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
		if c := cmp.Compare(len(x), len(y)); c != 0 {
			return c
		}
	}
	return cmp.Compare(x, y)
}

// Read decodes an index and checks it: every package has a name that follows LINE-VERSION with
// the line and version given, a .torrent, and a size; no name twice.
func Read(r io.Reader) (*Index, error) {
	var ix Index
	dec := json.NewDecoder(io.LimitReader(r, 64<<20))
	if err := dec.Decode(&ix); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	seen := map[string]bool{}
	for i, p := range ix.Packages {
		line, version, ok := ParseName(p.Name)
		switch {
		case p.Name == "" || strings.ContainsAny(p.Name, "/\\") || p.Name == "." || p.Name == "..":
			return nil, fmt.Errorf("index: package %d: name %q is not a plain file name", i, p.Name)
		case p.Line == "" || p.Version == "":
			if !ok {
				return nil, fmt.Errorf("index: package %q: no line and version, and the name is not LINE-VERSION", p.Name)
			}
			ix.Packages[i].Line, ix.Packages[i].Version = line, version
		case strings.ContainsAny(p.Line, "/\\"):
			return nil, fmt.Errorf("index: package %q: line %q holds a path separator", p.Name, p.Line)
		}
		if p.Torrent == "" {
			return nil, fmt.Errorf("index: package %q: no torrent", p.Name)
		}
		if p.Size < 0 {
			return nil, fmt.Errorf("index: package %q: negative size %d", p.Name, p.Size)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("index: package %q listed twice", p.Name)
		}
		seen[p.Name] = true
	}
	return &ix, nil
}

// Newest returns the newest version of each line, in order of line.
func (ix *Index) Newest() []Package {
	best := map[string]Package{}
	for _, p := range ix.Packages {
		if b, ok := best[p.Line]; !ok || CompareVersions(p.Version, b.Version) > 0 {
			best[p.Line] = p
		}
	}
	out := make([]Package, 0, len(best))
	for _, p := range best {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Package) int { return cmp.Compare(a.Line, b.Line) })
	return out
}

// Local is a version of a line found among a folder's file names.
type Local struct {
	Name, Version string
}

// Versions returns the files among names that are versions of line, newest first.
func Versions(names []string, line string) []Local {
	var out []Local
	for _, n := range names {
		if l, v, ok := ParseName(n); ok && l == line {
			out = append(out, Local{n, v})
		}
	}
	slices.SortFunc(out, func(a, b Local) int {
		return cmp.Or(-CompareVersions(a.Version, b.Version), cmp.Compare(a.Name, b.Name))
	})
	return out
}
