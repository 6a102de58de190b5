package vmm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// hostKVM says why this host's kernel has no KVM, where that is known
// without opening /dev/kvm (an ARMv7 host: which kernels have it); nil
// elsewhere, where kvm.Open says it.
func hostKVM() error {
	if kvm.HostArch == "arm" {
		return armv7HostKVM()
	}
	return nil
}

// guestFor picks the guest support for kernel k on a host of
// architecture host (kvm.HostArch). An arm64 host runs AArch32 guests
// too, through KVM_ARM_VCPU_EL1_32BIT; an ARMv7 host runs only them.
func guestFor(k kernelFile, host string) (archGuest, error) {
	switch a := k.arch; {
	case k.format == formatFirmware && host != "arm64":
		return nil, fmt.Errorf("firmware boot is for arm64 guests on an arm64 host (the firmware is U-Boot's qemu_arm64 build), not on an %s host: give the guest a kernel instead", host)
	case a == ArchX86_64 && host == "x86_64":
		return &x86Guest{format: k.format}, nil
	case a == ArchARM64 && host == "arm64":
		return &arm64Guest{format: k.format}, nil
	case a == ArchAArch32 && (host == "arm64" || host == "arm"):
		return &arm32Guest{abi: kvm.HostAArch32, format: k.format}, nil
	case k.arch == ArchARM64 && host == "arm":
		return nil, fmt.Errorf("arm64 guest on an ARMv7 host: a 32-bit host runs only 32-bit ARM guests (zImages)")
	}
	return nil, fmt.Errorf("%s guest on an %s host: KVM runs guests of the host's own architecture (an x86_64 host runs bzImages; an arm64 host runs arm64 Images and AArch32 zImages; ELF and raw images alike)", k.arch, host)
}

// armv7HostKVM checks that an ARMv7 host's kernel has KVM, and otherwise
// says which kernel would.
func armv7HostKVM() error {
	var u unix.Utsname
	release := "unknown"
	if err := unix.Uname(&u); err == nil {
		release = unix.ByteSliceToString(u.Release[:])
	}
	_, err := os.Stat(kvm.DevicePath)
	return kvm.ARMv7HostCheck(release, err == nil)
}
