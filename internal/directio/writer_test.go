package directio

import (
	"errors"
	"syscall"
	"testing"
)

// fakeWriter answers every write with err, counting the calls.
type fakeWriter struct {
	err   error
	calls int
}

func (w *fakeWriter) WriteAt(b []byte, _ int64) (int, error) {
	w.calls++
	if w.err != nil {
		return 0, w.err
	}
	return len(b), nil
}

// WriteDirect writes through Direct and counts its bytes; EINVAL turns it off for good (the
// descriptor is not asked again); another error is the write's, and keeps it on.
func TestWriterWriteDirect(t *testing.T) {
	broken := errors.New("disk on fire")
	tests := []struct {
		name      string
		direct    *fakeWriter // nil: no Direct
		wantOK    []bool      // of two writes of 8 bytes
		wantErr   error
		wantOff   bool
		wantBytes int64
		wantCalls int
	}{
		{"no descriptor", nil, []bool{false, false}, nil, true, 0, 0},
		{"direct", &fakeWriter{}, []bool{true, true}, nil, false, 16, 2},
		{"EINVAL: off for good", &fakeWriter{err: syscall.EINVAL}, []bool{false, false}, nil, true, 0, 1},
		{"another error is the write's", &fakeWriter{err: broken}, []bool{true, true}, broken, false, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w Writer
			if tc.direct != nil {
				w.Direct = tc.direct
			}
			for i, want := range tc.wantOK {
				ok, err := w.WriteDirect(make([]byte, 8), 0)
				if ok != want || !errors.Is(err, tc.wantErr) && (tc.wantErr != nil || err != nil) {
					t.Errorf("write %d: ok %t, err %v; want %t, %v", i, ok, err, want, tc.wantErr)
				}
			}
			if w.Off() != tc.wantOff || w.Bytes() != tc.wantBytes {
				t.Errorf("Off %t, Bytes %d; want %t, %d", w.Off(), w.Bytes(), tc.wantOff, tc.wantBytes)
			}
			if tc.direct != nil && tc.direct.calls != tc.wantCalls {
				t.Errorf("the descriptor was asked %d times, want %d", tc.direct.calls, tc.wantCalls)
			}
		})
	}
}
