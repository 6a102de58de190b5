// Package fsx has small file-system helpers shared by the VMM, the
// supervisor and the image builder.
package fsx

import (
	"errors"
	"os"
)

// UnwrapPathError drops the path from an *os.PathError (wrapped or not),
// returning the error beneath it; any other error is returned as it is.
// Callers whose messages name the path themselves use it to avoid naming
// it twice.
func UnwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
