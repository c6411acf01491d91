package httprange

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode"
)

// maxNoteRead and maxNote bound what a failed reply's body may add to an error message: the
// bytes read, and the characters kept.
const (
	maxNoteRead = 2048
	maxNote     = 160
)

// replyNote returns what the server says in the body of a reply that does not carry the file,
// in a few words: the title of an HTML page (nginx: "400 No required SSL certificate was sent"),
// the Message of an XML error (S3: "Request has expired"), or the first line of plain text (Go's
// http.Error). It reads at most maxNoteRead bytes and returns "" when it finds nothing.
func replyNote(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxNoteRead))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var s string
	switch {
	case mt == "text/html":
		s = between(b, "<title>", "</title>")
	case strings.HasSuffix(mt, "/xml"):
		s = between(b, "<Message>", "</Message>")
	case mt == "text/plain":
		s, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > maxNote {
		s = string(r[:maxNote]) + "..."
	}
	return s
}

// between returns the text of b between the first open and the close after it.
func between(b []byte, open, close string) string {
	i := bytes.Index(b, []byte(open))
	if i < 0 {
		return ""
	}
	rest := b[i+len(open):]
	j := bytes.Index(rest, []byte(close))
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
