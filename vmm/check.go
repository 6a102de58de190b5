package vmm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tandem-hv/tandem/arch/x86"
	"github.com/tandem-hv/tandem/fsx"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// ConfigError is what is wrong with one field of a Config, as Validate
// and Check report it. Its Error is the form `tandem run` prints
// ("disk 0 /data.img: no such file or directory"); a manifest names the
// field its own way, with Field and Detail.
type ConfigError struct {
	// Field is the field at fault as guest files and system manifests
	// spell it: "kernel", "cpus", "disks[1]", "nets[0].tap".
	Field string
	// Label names the field in Error: "kernel", "disk 1", "net 0"; empty
	// when Err names it itself.
	Label string
	// Value is the value at fault (a path, a number, an interface), or
	// empty.
	Value string
	// Err is what is wrong, and the fix.
	Err error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.Label)
	if e.Value != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Value)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Detail is the error without its label: the value and what is wrong,
// for a caller that names the field itself ("kernel: /boot/vmlinuz: not
// a bzImage, ...").
func (e *ConfigError) Detail() string {
	if e.Value == "" {
		return e.Err.Error()
	}
	return e.Value + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// FatalError is an error no restart of the guest can cure: its
// configuration is refused (anything Check finds), a file it names is
// missing or unreadable, or the host cannot run guests (no /dev/kvm, no
// permission on it, a KVM without what Tandem needs). Build returns its
// errors of that kind wrapped in one. Its exit status, ExitFatal, tells a
// supervisor to leave the guest stopped rather than restart it.
type FatalError struct {
	Err error
}

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// ExitCode is the process exit status of a VMM that ends with the error.
func (e *FatalError) ExitCode() int { return int(ExitFatal) }

// IsFatal reports whether err is, or wraps, a FatalError.
func IsFatal(err error) bool {
	var f *FatalError
	return errors.As(err, &f)
}

// Check checks a Config against this host without opening /dev/kvm:
// Validate, then the kernel (its format, that this host's KVM runs its
// architecture, that its header is whole), then the files (each can be
// opened as the guest will use it) and the TAP interfaces (each exists
// and is a TAP). Build calls it first; a supervisor calls it for every
// guest before it starts any, so both refuse the same inputs with the
// same words. Every error is a *ConfigError.
func (c *Config) Check() error {
	_, err := c.check()
	return err
}

// check is Check, returning the guest support the kernel needs.
func (c *Config) check() (archGuest, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	kernelErr := func(err error) error {
		if c.Firmware != "" {
			return &ConfigError{Field: "firmware", Label: "firmware", Value: c.Firmware, Err: err}
		}
		return &ConfigError{Field: "kernel", Label: "kernel", Value: c.Kernel, Err: err}
	}
	k, err := c.kernelFile(kvm.HostArch)
	if err != nil {
		return nil, kernelErr(err)
	}
	if c.TPM != nil {
		if err := TPMSupported(k.arch); err != nil {
			return nil, &ConfigError{Field: "vtpm", Label: "TPM", Err: err}
		}
	}
	g, err := guestFor(k, kvm.HostArch)
	if err != nil {
		return nil, kernelErr(err)
	}
	if err := g.checkKernel(c); err != nil {
		if errors.Is(err, x86.ErrNoLoadAddress) {
			return nil, &ConfigError{Field: "load-address", Label: "kernel", Value: c.Kernel, Err: err}
		}
		return nil, kernelErr(err)
	}
	if c.Initrd != "" {
		if err := canOpen(c.Initrd, os.O_RDONLY); err != nil {
			return nil, &ConfigError{Field: "initrd", Label: "initrd", Value: c.Initrd, Err: err}
		}
	}
	for i, d := range c.Disks {
		flag := os.O_RDWR
		if d.ReadOnly {
			flag = os.O_RDONLY
		}
		if err := canOpen(d.Path, flag); err != nil {
			if flag == os.O_RDWR && errors.Is(err, os.ErrPermission) {
				err = fmt.Errorf("%w: the guest writes to it; make it writable, or mark the disk read-only", err)
			}
			return nil, diskError(i, d.Path, err)
		}
	}
	for i, n := range c.Nets {
		if err := checkTAP(n.TAP); err != nil {
			return nil, &ConfigError{Field: fmt.Sprintf("nets[%d].tap", i), Label: fmt.Sprintf("net %d", i), Value: n.TAP, Err: err}
		}
	}
	return g, nil
}

// TPMSupported says why guests of architecture a cannot have a virtual
// TPM, or nil. x86_64 guests find its TIS in their ACPI tables, arm64
// guests in their device tree (tcg,tpm-tis-mmio); either way the guest
// kernel needs tpm_tis, built in or as a module in its initramfs, which
// is not checked here (a kernel without it boots with no TPM): Debian's
// amd64 and cloud-arm64 kernels have it, its arm64 kernel does not.
func TPMSupported(a GuestArch) error {
	if a == ArchX86_64 || a == ArchARM64 {
		return nil
	}
	return fmt.Errorf("a virtual TPM is offered to x86_64 and arm64 guests only; Debian's armhf kernels are built without tpm_tis, which a 32-bit guest's tcg,tpm-tis-mmio node would need: drop vtpm from this %s guest", a)
}

// canOpen opens path with flag and closes it again.
func canOpen(path string, flag int) error {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return fsx.UnwrapPathError(err)
	}
	return f.Close()
}

// sysClassNet lists the host's network interfaces.
const sysClassNet = "/sys/class/net"

// Flags of /sys/class/net/NAME/tun_flags (include/uapi/linux/if_tun.h).
const (
	iffTUN = 0x0001
	iffTAP = 0x0002
)

// maxIfName is the longest Linux interface name (IFNAMSIZ less the NUL).
const maxIfName = 15

// checkTAP says what is wrong with name as a guest NIC's backend: it
// must be an existing TAP interface (TUNSETIFF would otherwise create
// one, unbridged and gone when the VMM ends).
func checkTAP(name string) error {
	create := fmt.Sprintf("create it first (ip tuntap add %s mode tap) and bridge or address it", name)
	if len(name) > maxIfName || strings.ContainsAny(name, "/ \t\n") || name == "." || name == ".." {
		return fmt.Errorf("not a Linux interface name (at most %d characters, no '/' or spaces)", maxIfName)
	}
	dir := filepath.Join(sysClassNet, name)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no such interface on this host (%s is missing): %s", dir, create)
		}
		return fmt.Errorf("%s: %v", dir, fsx.UnwrapPathError(err))
	}
	b, err := os.ReadFile(filepath.Join(dir, "tun_flags"))
	if err != nil {
		return fmt.Errorf("not a TAP interface (it has no tun_flags): give a TAP, or %s", create)
	}
	flags, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 32)
	if err == nil && flags&(iffTUN|iffTAP) == iffTUN {
		return fmt.Errorf("a TUN interface, not a TAP (a guest NIC sends Ethernet frames): recreate it with ip tuntap add %s mode tap", name)
	}
	return nil
}
