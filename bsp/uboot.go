package bsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
)

// UBoot is what a U-Boot build says about the board it was built for:
// the default environment compiled into it (include/env_default.h: the
// CONFIG_EXTRA_ENV_SETTINGS "name=value" strings, each ended by a NUL,
// the block by a second NUL), the root compatible of the control DTB
// appended to it (u-boot.bin is u-boot-nodtb.bin followed by the DTB),
// and, from the files beside it, how the board's boot ROM finds it.
type UBoot struct {
	// File is the U-Boot binary read.
	File string
	// Env is the default environment's variables.
	Env map[string]string
	// Compatible is the appended control DTB's root compatible; nil for
	// a build that takes its DTB from the firmware (the Raspberry Pi's,
	// CONFIG_OF_BOARD).
	Compatible []string
	// Family is the SoC family's media layout the files beside File
	// show, nil when Tandem does not know it.
	Family *UBootFamily
	// Board is U-Boot's name for the board: the directory holding File
	// ("rockpro64-rk3399" in Debian's /usr/lib/u-boot/rockpro64-rk3399/).
	Board string
	// Debian is true when File lies in a Debian u-boot package's tree
	// (…/usr/lib/u-boot/BOARD/FILE): the blobs are then named by package
	// rather than copied.
	Debian bool
}

// UBootFamily is how one SoC family's boot ROM finds U-Boot, and the
// Debian package that builds U-Boot for its boards.
type UBootFamily struct {
	Name string
	// Package is the Debian package of Debian's U-Boot builds for the
	// family, holding /usr/lib/u-boot/BOARD/.
	Package string
	// Table and FirstPartition are the media layout the blobs need.
	Table          platforms.PartitionTable
	FirstPartition uint64
	// Blobs are the raw blobs, File naming the file in the board's
	// U-Boot directory.
	Blobs []platforms.Blob
	// BootFiles go into the boot partition; a Package of "DIR" names the
	// file in the board's U-Boot directory.
	BootFiles []platforms.BootFile
	// Source cites the layout, for the board.yaml's comment.
	Source string
	// has reports whether a board's U-Boot directory holds this
	// family's build.
	has func(dir string, files []string) bool
}

// ubootDir marks a BootFile.Package that names a file of the board's own
// U-Boot directory.
const ubootDir = "DIR"

// UBootFamilies are the SoC families whose U-Boot layout `bsp import
// --uboot` fills in.
var UBootFamilies = []*UBootFamily{
	{
		Name: "rockchip", Package: "u-boot-rockchip", Table: platforms.MBR, FirstPartition: 0x1000000,
		Source: "doc/board/rockchip/rockchip.rst: the boot ROM reads idbloader.img (TPL and SPL) from sector 64, SPL reads u-boot.itb (TF-A and U-Boot) from sector 16384; Rockchip's partition layout starts the first partition at sector 32768 (16 MiB)",
		Blobs: []platforms.Blob{
			{Name: "idbloader (TPL+SPL)", File: "idbloader.img", Offset: 64 * platforms.Sector, MaxLen: (16384 - 64) * platforms.Sector},
			{Name: "U-Boot FIT (TF-A, U-Boot)", File: "u-boot.itb", Offset: 16384 * platforms.Sector, MaxLen: 16384 * platforms.Sector},
		},
		has: func(_ string, files []string) bool {
			return slices.Contains(files, "idbloader.img") && slices.Contains(files, "u-boot.itb")
		},
	},
	{
		Name: "sunxi", Package: "u-boot-sunxi", Table: platforms.MBR, FirstPartition: 0x100000,
		Source: "linux-sunxi.org/Bootable_SD_card: the boot ROM reads the SPL from 8 KiB; SPL and U-Boot may fill the card up to 1 MiB",
		Blobs: []platforms.Blob{
			{Name: "SPL+U-Boot", File: "u-boot-sunxi-with-spl.bin", Offset: 8 << 10, MaxLen: 1016 << 10},
		},
		has: func(_ string, files []string) bool { return slices.Contains(files, "u-boot-sunxi-with-spl.bin") },
	},
	{
		Name: "rpi", Package: "u-boot-rpi", Table: platforms.MBR, FirstPartition: 0x100000,
		Source: "no raw blob: the boot ROM reads the VideoCore firmware (Debian's raspi-firmware) from the first FAT partition, which reads config.txt, the board DTB and kernel=u-boot.bin",
		BootFiles: []platforms.BootFile{
			{Name: "start4.elf", Package: "raspi-firmware:/usr/lib/raspi-firmware/start4.elf"},
			{Name: "fixup4.dat", Package: "raspi-firmware:/usr/lib/raspi-firmware/fixup4.dat"},
			{Name: "u-boot.bin", Package: ubootDir},
			{Name: "config.txt", Content: "arm_64bit=1\nkernel=u-boot.bin\nenable_uart=1\n"},
		},
		has: func(dir string, files []string) bool {
			return strings.HasPrefix(filepath.Base(dir), "rpi_") && slices.Contains(files, "u-boot.bin")
		},
	},
}

// Errors callers branch on.
var (
	// ErrNoUBootEnv: the file holds no U-Boot default environment.
	ErrNoUBootEnv = errors.New("no U-Boot default environment")
	// ErrNoUBoot: no U-Boot build in a directory matches the board.
	ErrNoUBoot = errors.New("no U-Boot build for the board")
)

// maxUBootSize bounds a U-Boot binary read: real ones are about 1 MiB.
const maxUBootSize = 64 << 20

// ubootLoadVars are the environment variables of U-Boot's distro boot
// (doc/develop/distro.rst) that give the load addresses, by the
// board.yaml field they fill.
var ubootLoadVars = []struct{ field, name string }{
	{"kernel", "kernel_addr_r"}, {"dtb", "fdt_addr_r"}, {"initrd", "ramdisk_addr_r"}, {"script", "scriptaddr"},
}

// ReadUBoot reads a U-Boot binary (u-boot.bin, u-boot-sunxi-with-spl.bin,
// u-boot.itb) and what lies beside it.
func ReadUBoot(file string) (*UBoot, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("U-Boot %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("U-Boot %s: not a regular file (give u-boot.bin, or a directory to search with a directory argument)", file)
	}
	if st.Size() > maxUBootSize {
		return nil, fmt.Errorf("U-Boot %s: %d bytes, more than the %d a U-Boot binary can be", file, st.Size(), maxUBootSize)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading U-Boot: %w", err)
	}
	u := &UBoot{File: file, Env: UBootEnv(data), Compatible: appendedCompatible(data)}
	if len(u.Env) == 0 {
		return nil, fmt.Errorf("U-Boot %s: %w: no NUL-separated name=value block with %s in it (is it U-Boot?)", file, ErrNoUBootEnv, ubootLoadVars[0].name)
	}
	dir := filepath.Dir(file)
	u.Board = filepath.Base(dir)
	u.Debian = filepath.Base(filepath.Dir(dir)) == "u-boot" && strings.HasSuffix(filepath.ToSlash(filepath.Dir(dir)), "usr/lib/u-boot")
	ents, _ := os.ReadDir(dir)
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			files = append(files, e.Name())
		}
	}
	for _, f := range UBootFamilies {
		if f.has(dir, files) {
			u.Family = f
			break
		}
	}
	return u, nil
}

// envEntryRE is one entry of a default environment: a variable name,
// "=", and printable text.
var envEntryRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*=[\t\n\x20-\x7e]*$`)

// UBootEnv finds U-Boot's default environment in a binary: the run of
// NUL-ended "name=value" strings that holds kernel_addr_r, or, on boards
// whose environment lacks it, fdt_addr_r or scriptaddr. Several runs
// hold one where a build carries more than one U-Boot (SPL and U-Boot
// proper, a FIT): the first wins. It returns nil for none.
func UBootEnv(data []byte) map[string]string {
	for _, key := range []string{"kernel_addr_r=", "fdt_addr_r=", "scriptaddr="} {
		for off := 0; off < len(data); {
			i := bytes.Index(data[off:], []byte("\x00"+key))
			if i < 0 {
				break
			}
			at := off + i + 1
			if env := envAround(data, at); len(env) >= 2 {
				return env
			}
			off = at
		}
	}
	return nil
}

// envAround returns the run of environment entries around the one
// starting at at.
func envAround(data []byte, at int) map[string]string {
	start := at
	// Walk back over whole entries: each ends with the NUL before the
	// next one's start.
	for start > 1 {
		prev := bytes.LastIndexByte(data[:start-1], 0)
		if !envEntryRE.Match(data[prev+1 : start-1]) {
			break
		}
		start = prev + 1
	}
	env := map[string]string{}
	for p := start; p < len(data); {
		end := bytes.IndexByte(data[p:], 0)
		if end <= 0 {
			break
		}
		e := data[p : p+end]
		if !envEntryRE.Match(e) {
			break
		}
		k, v, _ := strings.Cut(string(e), "=")
		env[k] = v
		p += end + 1
	}
	return env
}

// LoadAddrs returns the load addresses the environment gives, and the
// board.yaml fields it leaves unset.
func (u *UBoot) LoadAddrs() (platforms.LoadAddrs, []string, error) {
	var l platforms.LoadAddrs
	var missing []string
	for _, v := range ubootLoadVars {
		s, ok := u.Env[v.name]
		if !ok {
			missing = append(missing, v.field)
			continue
		}
		// U-Boot reads environment numbers as hex, with or without 0x
		// (env_get_hex).
		a, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 64)
		if err != nil {
			return l, nil, fmt.Errorf("U-Boot %s: %s=%q is not a hex address", u.File, v.name, s)
		}
		switch v.field {
		case "kernel":
			l.Kernel = a
		case "dtb":
			l.DTB = a
		case "initrd":
			l.Initrd = a
		case "script":
			l.Script = a
		}
	}
	return l, missing, nil
}

// appendedCompatible returns the root compatible of the last flattened
// device tree in data that parses and has one: a U-Boot build's control
// DTB, appended after its code.
func appendedCompatible(data []byte) []string {
	var compat []string
	magic := []byte{0xd0, 0x0d, 0xfe, 0xed}
	for off := 0; ; {
		i := bytes.Index(data[off:], magic)
		if i < 0 {
			return compat
		}
		at := off + i
		off = at + 4
		if at+8 > len(data) {
			continue
		}
		size := int(binary.BigEndian.Uint32(data[at+4:]))
		if size < 40 || size > len(data)-at {
			continue
		}
		t, err := dtb.Parse(data[at : at+size])
		if err != nil {
			continue
		}
		if c, err := t.Root.Strings("compatible"); err == nil && len(c) > 0 {
			compat = c
		}
	}
}

// ubootNames are the files FindUBoot reads in each board directory.
var ubootNames = []string{"u-boot.bin", "u-boot-sunxi-with-spl.bin"}

// FindUBoot searches dir (Debian's /usr/lib/u-boot, or any tree of U-Boot
// builds) for the build whose control DTB's root compatible is the
// board's (compatible[0]) and reads it. A build without a control DTB
// (the Raspberry Pi's) cannot be found so: name its file instead.
func FindUBoot(dir string, compatible []string) (*UBoot, error) {
	if len(compatible) == 0 {
		return nil, fmt.Errorf("%w in %s: the DTB has no root compatible to match", ErrNoUBoot, dir)
	}
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(dir, p); strings.Count(rel, string(filepath.Separator)) >= 5 {
				return fs.SkipDir
			}
			return nil
		}
		if !slices.Contains(ubootNames, d.Name()) || !d.Type().IsRegular() {
			return nil
		}
		if st, err := d.Info(); err != nil || st.Size() > maxUBootSize {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if c := appendedCompatible(data); len(c) > 0 && c[0] == compatible[0] {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("searching %s for U-Boot: %w", dir, err)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %q in %s (no %s there carries a DTB of that compatible): name the board's U-Boot binary with --uboot FILE, or leave --uboot out and set the load addresses and blobs by hand",
			ErrNoUBoot, compatible[0], dir, strings.Join(ubootNames, " or "))
	case 1:
		return ReadUBoot(found[0])
	}
	// Several files of one build (a directory holding both names) are one.
	dirs := map[string]bool{}
	for _, p := range found {
		dirs[filepath.Dir(p)] = true
	}
	if len(dirs) > 1 {
		return nil, fmt.Errorf("%w: several U-Boot builds in %s match %q (%s): name one with --uboot FILE", ErrNoUBoot, dir, compatible[0], strings.Join(found, ", "))
	}
	slices.Sort(found)
	return ReadUBoot(found[len(found)-1])
}
