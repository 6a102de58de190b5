package hv

import (
	"fmt"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// newArchGuest returns the architecture support for a guest kernel, or an
// error saying why this host cannot run it.
func newArchGuest(a GuestArch) (archGuest, error) {
	switch {
	case a == ArchX86_64 && kvm.HostArch == "x86_64":
		return &x86Guest{}, nil
	case a == ArchARM64 && kvm.HostArch == "arm64":
		return &arm64Guest{}, nil
	}
	return nil, fmt.Errorf("%s guest on an %s host: KVM runs guests of the host's own architecture (an x86_64 host runs bzImages; an arm64 host runs arm64 Images and AArch32 zImages)", a, kvm.HostArch)
}
