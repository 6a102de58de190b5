package fsx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestUnwrapPathError(t *testing.T) {
	_, err := os.Stat(filepath.Join(t.TempDir(), "missing"))
	var pe *os.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("os.Stat of a missing file: %v, want an *os.PathError", err)
	}
	for _, e := range []error{err, fmt.Errorf("wrapped: %w", err)} {
		if got := UnwrapPathError(e); got != pe.Err {
			t.Errorf("UnwrapPathError(%v) = %v, want %v", e, got, pe.Err)
		}
	}
	plain := errors.New("plain")
	if got := UnwrapPathError(plain); got != plain {
		t.Errorf("UnwrapPathError(%v) = %v, want it unchanged", plain, got)
	}
	if got := UnwrapPathError(nil); got != nil {
		t.Errorf("UnwrapPathError(nil) = %v, want nil", got)
	}
}
