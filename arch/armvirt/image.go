package armvirt

import (
	"errors"
	"fmt"

	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/hv/mem"
)

// RAMEnd returns the end of guest RAM, which must be one region from
// RAMBase; layout names the function that lays it out, for the error.
func RAMEnd(m *mem.Memory, layout string) (uint64, error) {
	regions := m.Regions()
	if len(regions) != 1 || regions[0].GPA != RAMBase {
		return 0, fmt.Errorf("guest memory is not laid out by %s", layout)
	}
	return RAMBase + regions[0].Size, nil
}

// LoadELF loads the ELF executable for target t at path into m (RAM
// from RAMBase to ramEnd). Errors name the file and, for an image that
// does not fit, where guest RAM is.
func LoadELF(m *mem.Memory, path string, t loader.Target, ramEnd uint64) (*loader.ELF, error) {
	e, f, err := loader.OpenELF(path, t)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", path, err)
	}
	defer f.Close()
	if err := e.Load(m, f, nil); err != nil {
		return nil, placementError(path, err, ramEnd)
	}
	return e, nil
}

// LoadRaw loads the raw image at path into m at addr, which must be a
// multiple of 4 (ARM and A64 instructions are), and returns where it
// went. Errors name the file, and where guest RAM is.
func LoadRaw(m *mem.Memory, path string, addr, ramEnd uint64) (loader.Span, error) {
	if addr%4 != 0 {
		return loader.Span{}, fmt.Errorf("kernel %s: load address %#x is not a multiple of 4: ARM instructions are 4-byte aligned", path, addr)
	}
	span, err := loader.LoadRawFile(m, path, addr, nil)
	if err != nil {
		return loader.Span{}, placementError(path, err, ramEnd)
	}
	return span, nil
}

// placementError names the file and, for an image that does not fit,
// where guest RAM is.
func placementError(path string, err error, ramEnd uint64) error {
	if errors.Is(err, loader.ErrPlacement) {
		return fmt.Errorf("kernel %s: %w (guest RAM is [%#x, %#x))", path, err, uint64(RAMBase), ramEnd)
	}
	return fmt.Errorf("kernel %s: %w", path, err)
}
