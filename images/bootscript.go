package images

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"text/template"

	"github.com/tandem-hv/tandem/platforms"
)

// legacyHeader mirrors U-Boot's struct legacy_img_hdr (include/image.h):
// 64 bytes, every field big-endian. A script image's data is a table of
// big-endian uint32 lengths ended by 0, then the parts, each but the last
// padded to 4 bytes; mkimage -T script writes one part, the script text.
type legacyHeader struct {
	Magic uint32 // ih_magic: IH_MAGIC
	HCRC  uint32 // ih_hcrc: CRC32 of the header with this field 0
	Time  uint32 // ih_time: creation time (SOURCE_DATE_EPOCH here)
	Size  uint32 // ih_size: data size
	Load  uint32 // ih_load: load address (unused by scripts)
	EP    uint32 // ih_ep: entry point (unused by scripts)
	DCRC  uint32 // ih_dcrc: CRC32 of the data
	OS    uint8  // ih_os: IH_OS_*
	Arch  uint8  // ih_arch: IH_ARCH_*
	Type  uint8  // ih_type: IH_TYPE_*
	Comp  uint8  // ih_comp: IH_COMP_*
	Name  [32]byte
}

// Constants of include/image.h.
const (
	ihMagic      = 0x27051956
	ihOSLinux    = 5
	ihArchARM    = 2
	ihArchARM64  = 22
	ihArchX86_64 = 24
	ihTypeScript = 6
	ihCompNone   = 0
	legacyHdrLen = 64
)

// Errors callers branch on.
var ErrBadScript = errors.New("bad U-Boot script image")

// ScriptImage wraps a U-Boot script in a legacy image, as
// `mkimage -A ARCH -O linux -T script -C none -n NAME -d FILE` does.
func ScriptImage(script []byte, arch platforms.Arch, name string, epoch uint32) []byte {
	data := make([]byte, 8, 8+len(script))
	binary.BigEndian.PutUint32(data[0:], uint32(len(script)))
	// data[4:8] is the 0 that ends the length table.
	// The last part is not padded (tools/default_image.c).
	data = append(data, script...)
	h := legacyHeader{
		Magic: ihMagic, Time: epoch, Size: uint32(len(data)),
		DCRC: crc32.ChecksumIEEE(data),
		OS:   ihOSLinux, Arch: ihArch(arch), Type: ihTypeScript, Comp: ihCompNone,
	}
	copy(h.Name[:len(h.Name)-1], name)
	var buf bytes.Buffer
	binary.Write(&buf, binary.BigEndian, &h)
	hb := buf.Bytes()
	binary.BigEndian.PutUint32(hb[4:], crc32.ChecksumIEEE(hb))
	return append(hb, data...)
}

func ihArch(a platforms.Arch) uint8 {
	switch a {
	case platforms.ARM:
		return ihArchARM
	case platforms.X86:
		return ihArchX86_64
	}
	return ihArchARM64
}

// ParseScriptImage checks a legacy script image and returns its name and
// script text.
func ParseScriptImage(b []byte) (name string, script []byte, err error) {
	if len(b) < legacyHdrLen {
		return "", nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrBadScript, len(b), legacyHdrLen)
	}
	var h legacyHeader
	binary.Read(bytes.NewReader(b), binary.BigEndian, &h)
	if h.Magic != ihMagic {
		return "", nil, fmt.Errorf("%w: magic %#x, want %#x", ErrBadScript, h.Magic, ihMagic)
	}
	hb := append([]byte(nil), b[:legacyHdrLen]...)
	binary.BigEndian.PutUint32(hb[4:], 0)
	if crc32.ChecksumIEEE(hb) != h.HCRC {
		return "", nil, fmt.Errorf("%w: header CRC mismatch", ErrBadScript)
	}
	if h.Type != ihTypeScript {
		return "", nil, fmt.Errorf("%w: type %d, want script (%d)", ErrBadScript, h.Type, ihTypeScript)
	}
	if uint64(h.Size) > uint64(len(b)-legacyHdrLen) {
		return "", nil, fmt.Errorf("%w: data size %d, image holds %d", ErrBadScript, h.Size, len(b)-legacyHdrLen)
	}
	data := b[legacyHdrLen : legacyHdrLen+int(h.Size)]
	if crc32.ChecksumIEEE(data) != h.DCRC {
		return "", nil, fmt.Errorf("%w: data CRC mismatch", ErrBadScript)
	}
	if len(data) < 8 || binary.BigEndian.Uint32(data[4:]) != 0 {
		return "", nil, fmt.Errorf("%w: want one part in the length table", ErrBadScript)
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-8) {
		return "", nil, fmt.Errorf("%w: script length %d, data holds %d", ErrBadScript, n, len(data)-8)
	}
	return string(bytes.TrimRight(h.Name[:], "\x00")), data[8 : 8+n], nil
}

// bootScriptTmpl is the U-Boot script that boots the host. U-Boot's
// distro boot (include/config_distro_bootcmd.h, scan_dev_for_scripts)
// sets devtype, devnum and distro_bootpart before running it; the
// defaults cover running it by hand from an SD card.
var bootScriptTmpl = template.Must(template.New("boot.scr").Parse(`# Tandem host boot script for {{.Board}}, written by tandem image build.
if test -z "${devtype}"; then setenv devtype mmc; fi
if test -z "${devnum}"; then setenv devnum 0; fi
if test -z "${distro_bootpart}"; then setenv distro_bootpart 1; fi
setenv bootargs "{{.Cmdline}}"
echo "Tandem: loading the host kernel, initramfs{{if .DTB}} and {{.DTB}}{{end}} from ${devtype} ${devnum}:${distro_bootpart}"
{{- if not .EFI}}
load ${devtype} ${devnum}:${distro_bootpart} {{printf "%#x" .Load.Kernel}} {{.Kernel}} || exit
load ${devtype} ${devnum}:${distro_bootpart} {{printf "%#x" .Load.Initrd}} {{.Initrd}} || exit
setenv tandem_initrd_size ${filesize}
{{- end}}
{{- if .DTB}}
load ${devtype} ${devnum}:${distro_bootpart} {{printf "%#x" .Load.DTB}} {{.DTB}} || exit
setenv tandem_fdt {{printf "%#x" .Load.DTB}}
{{- else}}
# The board's device tree is the firmware's own: QEMU generates it for
# the machine it emulates and U-Boot runs on it.
setenv tandem_fdt ${fdtcontroladdr}
{{- end}}
echo "Tandem: starting the host"
{{- if .EFI}}
# Through U-Boot's UEFI: the kernel's EFI stub reads the initramfs that
# initrd= names from the partition the kernel was loaded from (the last
# load), and takes the firmware's framebuffer, if it drives a display.
load ${devtype} ${devnum}:${distro_bootpart} {{printf "%#x" .Load.Kernel}} {{.Kernel}} || exit
bootefi {{printf "%#x" .Load.Kernel}} ${tandem_fdt}
{{- else}}
{{.Boot}} {{printf "%#x" .Load.Kernel}} {{printf "%#x" .Load.Initrd}}:${tandem_initrd_size} ${tandem_fdt}
{{- end}}
`))

type scriptParams struct {
	Board, Cmdline, Kernel, Initrd, DTB, Boot string
	Load                                      platforms.LoadAddrs
	// EFI boots through bootefi (platforms.Image.BootEFI).
	EFI bool
}

// BootScript returns the U-Boot script text that boots the host on b:
// kernel, initramfs and DTB from the boot partition to the board's load
// addresses, the DTB being U-Boot's own where the board's comes from the
// firmware (dtb == "").
func BootScript(b *platforms.Board, cmdline, kernel, initrd, dtb string) (string, error) {
	if strings.ContainsAny(cmdline, "\"$\n") {
		return "", fmt.Errorf("host kernel command line %q: quotes, $ and newlines would break the boot script", cmdline)
	}
	p := scriptParams{Board: b.Name, Cmdline: cmdline, Kernel: kernel, Initrd: initrd, DTB: dtb, Load: b.Image.Load, Boot: "booti", EFI: b.Image.BootEFI}
	if p.EFI {
		// The EFI stub reads the initramfs itself, by its path in the
		// boot partition (which the image builder fills at its root).
		if strings.ContainsAny(initrd, " /\\") {
			return "", fmt.Errorf("host initramfs %q: the EFI stub's initrd= takes a file name at the boot partition's root", initrd)
		}
		p.Cmdline += " initrd=" + initrd
	}
	if b.Arch == platforms.ARM {
		p.Boot = "bootz" // a zImage (Documentation/arch/arm/booting.rst)
	}
	if ps := b.ImageProblems(); len(ps) > 0 {
		return "", ps[0]
	}
	var buf bytes.Buffer
	if err := bootScriptTmpl.Execute(&buf, p); err != nil {
		return "", err
	}
	return buf.String(), nil
}
