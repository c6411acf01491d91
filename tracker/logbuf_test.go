package tracker

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// countingWriter records each Write.
type countingWriter struct {
	syncBuffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.syncBuffer.Write(p)
}

func TestBatchLog(t *testing.T) {
	var w countingWriter
	l := &batchLog{w: &w, delay: time.Hour} // the timer never fires in this test
	line := func(i int) []byte {
		return []byte(fmt.Sprintf("{\"line\":%d,\"pad\":%q}\n", i, strings.Repeat("x", 100)))
	}
	var want bytes.Buffer
	n := 0
	for ; want.Len() < logBatch-200; n++ {
		l.write(line(n))
		want.Write(line(n))
	}
	if w.writes != 0 {
		t.Fatalf("%d writes before a batch is full, want none", w.writes)
	}
	l.flush()
	if w.writes != 1 || w.String() != want.String() {
		t.Fatalf("after flush: %d writes of %d bytes, want 1 of %d", w.writes, len(w.String()), want.Len())
	}
	for flushed := want.Len(); want.Len() < flushed+logBatch+200; n++ {
		l.write(line(n))
		want.Write(line(n))
	}
	if w.writes != 2 {
		t.Fatalf("%d writes after a second batch filled, want 2", w.writes)
	}
	l.close()
	if w.String() != want.String() {
		t.Fatalf("after close: log of %d bytes, want the %d bytes of %d lines in order", len(w.String()), want.Len(), n)
	}
	// After close, each line goes out at once.
	writes := w.writes
	l.write(line(n))
	if w.writes != writes+1 || !strings.HasSuffix(w.String(), string(line(n))) {
		t.Errorf("a line after close: %d writes, want %d", w.writes, writes+1)
	}
}
