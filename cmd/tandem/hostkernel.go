package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/bsp"
	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/vmm"
)

// maxKernelSize bounds a host kernel read for its embedded config.
const maxKernelSize = 256 << 20

// checkHostKernel refuses a host kernel that cannot host KVM on board b:
// one built for another architecture, or whose config (flag, else a
// config-* beside it, else its own IKCONFIG) lacks KVM, as `bsp check
// --kernel-config` judges it. A kernel whose config cannot be found is
// refused too: nothing would say the image can run a guest. debian says
// the kernel is Debian's default from the cache, for the message.
func checkHostKernel(b *platforms.Board, kernel, flag string, debian bool) error {
	if a, err := vmm.DetectKernel(kernel); err == nil && !hostKernelArch(b.Arch, a) {
		return fmt.Errorf("host kernel %s is an %s kernel, board %s's %s host needs its own: pass --host-kernel one built for it", kernel, a, b.Name, hostName(b.Arch))
	}
	c, from, err := hostKernelConfig(kernel, flag)
	if err != nil {
		return err
	}
	ok, why := c.CanHost(b)
	if ok {
		return nil
	}
	which := "host kernel " + kernel
	if debian {
		which = fmt.Sprintf("Debian's %s kernel (%s, the default host kernel)", images.DebianArch(b.Arch), kernel)
	}
	fix := "pass --host-kernel a kernel built with CONFIG_KVM=y, and --host-kernel-config its .config"
	if b.Arch == platforms.ARM {
		fix = "pass --host-kernel the board vendor's BSP kernel of Linux 5.6 or older built with CONFIG_KVM=y and CONFIG_KVM_ARM_HOST=y, and --host-kernel-config its .config"
	}
	return fmt.Errorf("board %s: %s cannot host KVM (config %s): %s: %s", b.Name, which, from, why, fix)
}

// hostKernelArch reports whether a kernel of architecture a runs board
// arch's host.
func hostKernelArch(arch platforms.Arch, a vmm.GuestArch) bool {
	switch arch {
	case platforms.ARM:
		return a == vmm.ArchAArch32
	case platforms.X86:
		return a == vmm.ArchX86_64
	}
	return a == vmm.ArchARM64
}

// hostKernelConfig finds and parses the host kernel's .config: the file
// flag names, else the one config-* file beside the kernel (config-REL
// for a kernel named vmlinuz-REL), else the config the kernel embeds.
// It returns where the config came from.
func hostKernelConfig(kernel, flag string) (*bsp.KernelConfig, string, error) {
	file := flag
	if file == "" {
		var err error
		if file, err = configBeside(kernel); err != nil {
			return nil, "", err
		}
	}
	if file != "" {
		data, err := readFile("kernel config", file)
		if err != nil {
			return nil, "", err
		}
		c, err := bsp.ParseKernelConfig(data, file)
		return c, file, err
	}
	st, err := os.Stat(kernel)
	if err != nil {
		return nil, "", fmt.Errorf("host kernel: %w", err)
	}
	if st.Size() > maxKernelSize {
		return nil, "", fmt.Errorf("host kernel %s: %d bytes, more than a kernel can be", kernel, st.Size())
	}
	data, err := os.ReadFile(kernel)
	if err != nil {
		return nil, "", fmt.Errorf("host kernel: %w", err)
	}
	cfg, err := bsp.IKConfig(data)
	if errors.Is(err, bsp.ErrNoIKConfig) {
		return nil, "", fmt.Errorf("host kernel %s: no kernel config to check it can host KVM: it has no embedded config (CONFIG_IKCONFIG) and no config-* file lies beside it: pass --host-kernel-config FILE (the .config it was built with), or put that file beside it as config-RELEASE", kernel)
	}
	if err != nil {
		return nil, "", fmt.Errorf("host kernel %s: %w", kernel, err)
	}
	from := kernel + " (its embedded IKCONFIG)"
	c, err := bsp.ParseKernelConfig(cfg, from)
	return c, from, err
}

// configBeside returns the config-* file beside kernel: config-REL for a
// kernel named vmlinuz-REL (as Debian's /boot has them), else the only
// one there; "" for none.
func configBeside(kernel string) (string, error) {
	dir := filepath.Dir(kernel)
	if rel, ok := strings.CutPrefix(filepath.Base(kernel), "vmlinuz-"); ok {
		if p := filepath.Join(dir, "config-"+rel); isRegular(p) {
			return p, nil
		}
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "config-*"))
	var files []string
	for _, m := range matches {
		if isRegular(m) {
			files = append(files, m)
		}
	}
	switch len(files) {
	case 0:
		return "", nil
	case 1:
		return files[0], nil
	}
	return "", fmt.Errorf("host kernel %s: several configs beside it (%s): pass --host-kernel-config FILE to say which is its own", kernel, strings.Join(files, ", "))
}

// checkGuestArchs refuses a manifest whose guest kernels cannot run on
// the board's host: an arm64 guest needs an arm64 host, an x86 guest an
// x86 host; AArch32 guests run on ARMv7 and on arm64 hosts (those whose
// cores run AArch32 at EL1). A kernel of a format Tandem does not know is
// left to `tandem system --check` on the host.
func checkGuestArchs(b *platforms.Board, m *system.Manifest) error {
	for _, g := range m.Guests {
		a, err := vmm.DetectKernel(g.Kernel)
		if err != nil {
			continue
		}
		if !guestRuns(b.Arch, a) {
			return g.Errorf("kernel", "%s is an %s kernel, which board %s's %s host cannot run: %s", g.Kernel, a, b.Name, hostName(b.Arch), guestFix(b.Arch))
		}
	}
	return nil
}

// guestRuns reports whether a host of architecture host can run a guest
// kernel of architecture a under KVM.
func guestRuns(host platforms.Arch, a vmm.GuestArch) bool {
	switch host {
	case platforms.ARM:
		return a == vmm.ArchAArch32
	case platforms.ARM64:
		return a == vmm.ArchARM64 || a == vmm.ArchAArch32
	case platforms.X86:
		return a == vmm.ArchX86_64
	}
	return false
}

// hostName names a host architecture for people.
func hostName(a platforms.Arch) string {
	if a == platforms.ARM {
		return "ARMv7 (32-bit)"
	}
	return string(a)
}

func guestFix(host platforms.Arch) string {
	switch host {
	case platforms.ARM:
		return "an ARMv7 host runs only 32-bit ARM guests (zImage): use an armhf guest kernel, or an arm64 board"
	case platforms.ARM64:
		return "an arm64 host runs arm64 and 32-bit ARM guests: use an arm64 guest kernel"
	}
	return "an x86_64 host runs x86_64 guests (bzImage): use an x86_64 guest kernel"
}
