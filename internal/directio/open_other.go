//go:build !linux

package directio

import (
	"errors"
	"os"
)

// Open reports that O_DIRECT is not available here: every write goes through the page cache.
func Open(path string) (*os.File, error) { return nil, errors.ErrUnsupported }
