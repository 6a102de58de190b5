package bsp

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/all"
)

// Where scripts/testdata.sh unpacks Debian's u-boot packages, and
// scripts/testdata-boards.sh the kernels' DTBs and configs.
const (
	cachePkgs   = "../build/cache/pkgs"
	cacheBoards = "../build/cache/boards"
)

// TestReadUBootDebian reads Debian's U-Boot builds: each one's default
// environment gives the load addresses its board's U-Boot sets, its
// appended control DTB the board, and the files beside it the family.
func TestReadUBootDebian(t *testing.T) {
	tests := []struct {
		file, family, compatible string
		load                     platforms.LoadAddrs
	}{
		// include/configs/rk3399_common.h
		{"u-boot-rockchip_arm64/usr/lib/u-boot/rockpro64-rk3399/u-boot.bin", "rockchip", "pine64,rockpro64-v2.1",
			platforms.LoadAddrs{Kernel: 0x02080000, DTB: 0x01f00000, Initrd: 0x06000000, Script: 0x00500000}},
		// include/configs/rpi.h; the DTB is the firmware's.
		{"u-boot-rpi_arm64/usr/lib/u-boot/rpi_arm64/u-boot.bin", "rpi", "",
			platforms.LoadAddrs{Kernel: 0x00080000, DTB: 0x02600000, Initrd: 0x02700000, Script: 0x02400000}},
		// include/configs/sunxi-common.h, the SPL in front.
		{"u-boot-sunxi_armhf/usr/lib/u-boot/Cubieboard2/u-boot-sunxi-with-spl.bin", "sunxi", "cubietech,cubieboard2",
			platforms.LoadAddrs{Kernel: 0x42000000, DTB: 0x43000000, Initrd: 0x43400000, Script: 0x43100000}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(filepath.Dir(tt.file)), func(t *testing.T) {
			p := filepath.Join(cachePkgs, tt.file)
			testenv.RequireFile(t, p, "run `scripts/testdata.sh arm64` (and make testdata for u-boot-sunxi)")
			u, err := ReadUBoot(p)
			if err != nil {
				t.Fatalf("ReadUBoot() = %v", err)
			}
			l, missing, err := u.LoadAddrs()
			if err != nil || len(missing) > 0 || l != tt.load {
				t.Errorf("LoadAddrs() = %+v, missing %v, %v; want %+v", l, missing, err, tt.load)
			}
			if got := strings.Join(u.Compatible, ","); (tt.compatible == "" && got != "") || !strings.HasPrefix(got, tt.compatible) {
				t.Errorf("Compatible = %v, want %q first", u.Compatible, tt.compatible)
			}
			if u.Family == nil || u.Family.Name != tt.family {
				t.Errorf("Family = %v, want %s", u.Family, tt.family)
			}
			if !u.Debian || u.Board != filepath.Base(filepath.Dir(tt.file)) {
				t.Errorf("Debian, Board = %v, %q; want a Debian build of %s", u.Debian, u.Board, filepath.Base(filepath.Dir(tt.file)))
			}
		})
	}
}

// envBlock is a default environment as U-Boot compiles it, between code.
func envBlock(entries ...string) []byte {
	b := append([]byte{0xde, 0xad, 0xbe, 0xef, 0}, strings.Join(entries, "\x00")...)
	return append(b, 0, 0, 0x13, 0x37)
}

// TestUBootEnv reads environments made one entry at a time, and
// corrupted.
func TestUBootEnv(t *testing.T) {
	good := []string{"bootcmd=run distro_bootcmd", "kernel_addr_r=0x02080000", "fdt_addr_r=0x01f00000", "ramdisk_addr_r=0x06000000", "scriptaddr=0x00500000"}
	tests := []struct {
		name    string
		data    []byte
		load    platforms.LoadAddrs
		missing []string
		err     string // from LoadAddrs; "none": no environment at all
	}{
		{"good", envBlock(good...), platforms.LoadAddrs{Kernel: 0x2080000, DTB: 0x1f00000, Initrd: 0x6000000, Script: 0x500000}, nil, ""},
		{"hex without 0x", envBlock("kernel_addr_r=80000", "fdt_addr_r=2600000"), platforms.LoadAddrs{Kernel: 0x80000, DTB: 0x2600000}, []string{"initrd", "script"}, ""},
		{"no kernel_addr_r, fdt_addr_r found", envBlock("fdt_addr_r=0x43000000", "initrd_addr=0x43800000"), platforms.LoadAddrs{DTB: 0x43000000}, []string{"kernel", "initrd", "script"}, ""},
		{"a binary byte ends the run", envBlock("kernel_addr_r=0x1000", "fdt_addr_r=0x2000\x01", "ramdisk_addr_r=0x3000"), platforms.LoadAddrs{}, nil, "none"},
		{"a lone entry is no environment", envBlock("kernel_addr_r=0x1000"), platforms.LoadAddrs{}, nil, "none"},
		{"text that names the variable", []byte("load ${kernel_addr_r} Image\x00kernel_addr_r is where\x00"), platforms.LoadAddrs{}, nil, "none"},
		{"not hex", envBlock("kernel_addr_r=${loadaddr}", "fdt_addr_r=0x2000"), platforms.LoadAddrs{}, nil, `kernel_addr_r="${loadaddr}" is not a hex address`},
		{"empty", nil, platforms.LoadAddrs{}, nil, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := UBootEnv(tt.data)
			if tt.err == "none" {
				if env != nil {
					t.Fatalf("UBootEnv() = %v, want none", env)
				}
				return
			}
			u := &UBoot{File: "u-boot.bin", Env: env}
			l, missing, err := u.LoadAddrs()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("LoadAddrs() = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil || l != tt.load || strings.Join(missing, ",") != strings.Join(tt.missing, ",") {
				t.Errorf("LoadAddrs() = %+v, %v, %v; want %+v, %v", l, missing, err, tt.load, tt.missing)
			}
		})
	}
}

// TestReadUBootErrors: what is not a U-Boot binary is refused, naming it.
func TestReadUBootErrors(t *testing.T) {
	dir := t.TempDir()
	notUBoot := filepath.Join(dir, "vmlinuz")
	os.WriteFile(notUBoot, bytes.Repeat([]byte{0x5a}, 4096), 0o644)
	tests := []struct {
		name, file string
		want       error
		msg        string
	}{
		{"no environment", notUBoot, ErrNoUBootEnv, notUBoot},
		{"a directory", dir, nil, "not a regular file"},
		{"missing", filepath.Join(dir, "nope"), nil, "no such file"},
	}
	for _, tt := range tests {
		_, err := ReadUBoot(tt.file)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: ReadUBoot() = %v, want %v mentioning %q", tt.name, err, tt.want, tt.msg)
		}
	}
}

// TestFindUBoot searches Debian's u-boot-rockchip for a board by its
// DTB's compatible.
func TestFindUBoot(t *testing.T) {
	dir := filepath.Join(cachePkgs, "u-boot-rockchip_arm64", "usr", "lib", "u-boot")
	testenv.RequireFile(t, filepath.Join(dir, "rockpro64-rk3399", "u-boot.bin"), "run `scripts/testdata.sh arm64`")
	tests := []struct {
		compatible, board string
	}{
		{"pine64,rockpro64-v2.1", "rockpro64-rk3399"},
		{"radxa,rockpi4b", "rock-pi-4-rk3399"},
		{"pine64,rock64", "rock64-rk3328"},
		{"vendor,no-such-board", ""},
	}
	for _, tt := range tests {
		u, err := FindUBoot(dir, []string{tt.compatible})
		switch {
		case tt.board == "" && !errors.Is(err, ErrNoUBoot):
			t.Errorf("FindUBoot(%s) = %v, want ErrNoUBoot", tt.compatible, err)
		case tt.board != "" && (err != nil || u.Board != tt.board || u.Family == nil || u.Family.Name != "rockchip"):
			t.Errorf("FindUBoot(%s) = %+v, %v; want Debian's %s build", tt.compatible, u, err, tt.board)
		}
	}
}

// TestImportUBoot imports the RockPro64's Debian DTB with its U-Boot:
// Debian's build is named by package; a copy outside Debian's tree is
// copied into blobs/; another board's U-Boot is refused.
func TestImportUBoot(t *testing.T) {
	dtbFile := filepath.Join(cacheBoards, "arm64", "rockchip", "rk3399-rockpro64.dtb")
	debian := filepath.Join(cachePkgs, "u-boot-rockchip_arm64", "usr", "lib", "u-boot")
	testenv.RequireFile(t, dtbFile, "run scripts/testdata-boards.sh or make testdata")
	testenv.RequireFile(t, filepath.Join(debian, "rockpro64-rk3399", "u-boot.bin"), "run `scripts/testdata.sh arm64`")
	data, err := os.ReadFile(dtbFile)
	if err != nil {
		t.Fatal(err)
	}
	vendor := filepath.Join(t.TempDir(), "build")
	os.MkdirAll(vendor, 0o755)
	for _, f := range []string{"u-boot.bin", "idbloader.img", "u-boot.itb"} {
		b, _ := os.ReadFile(filepath.Join(debian, "rockpro64-rk3399", f))
		os.WriteFile(filepath.Join(vendor, f), b, 0o644)
	}
	wantLoad := platforms.LoadAddrs{Kernel: 0x2080000, DTB: 0x1f00000, Initrd: 0x6000000, Script: 0x500000}
	tests := []struct {
		name, uboot string
		packages    bool // blobs named by Debian package, not copied
		err         string
	}{
		{"Debian's build", filepath.Join(debian, "rockpro64-rk3399", "u-boot.bin"), true, ""},
		{"a vendor's build", filepath.Join(vendor, "u-boot.bin"), false, ""},
		{"another board's", filepath.Join(debian, "rock-pi-4-rk3399", "u-boot.bin"), false, `was built for "radxa,rockpi4b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ReadUBoot(tt.uboot)
			if err != nil {
				t.Fatal(err)
			}
			g, err := ImportUBoot(data, dtbFile, "rockpro64", u)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ImportUBoot() = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ImportUBoot() = %v", err)
			}
			b, err := platforms.Decode("board.yaml", g.Files[platforms.BoardFile])
			if err != nil {
				t.Fatal(err)
			}
			if b.Image.Load != wantLoad || len(b.ImageProblems()) > 0 {
				t.Errorf("load = %+v (%v), want %+v", b.Image.Load, b.ImageProblems(), wantLoad)
			}
			if b.Image.FirstPartition != 16<<20 || len(b.Image.Blobs) != 2 || b.Image.Blobs[0].Offset != 64*512 || b.Image.Blobs[1].Offset != 16384*512 {
				t.Fatalf("image = %+v, want idbloader.img at sector 64, u-boot.itb at 16384, the first partition at 16 MiB", b.Image)
			}
			for _, bl := range b.Image.Blobs {
				copied, ok := g.Files["blobs/"+bl.File]
				want, _ := os.ReadFile(filepath.Join(filepath.Dir(tt.uboot), bl.File))
				switch {
				case tt.packages && bl.Package != "u-boot-rockchip:/usr/lib/u-boot/rockpro64-rk3399/"+bl.File:
					t.Errorf("blob %s: package %q, want Debian's", bl.File, bl.Package)
				case tt.packages && ok:
					t.Errorf("blob %s copied, want it named by package", bl.File)
				case !tt.packages && (bl.Package != "" || !bytes.Equal(copied, want)):
					t.Errorf("blob %s: package %q, copy of %d bytes; want a copy of %d", bl.File, bl.Package, len(copied), len(want))
				}
			}
			for _, m := range g.Missing {
				if strings.HasPrefix(m, "image") {
					t.Errorf("TODO %s left, want the image section filled", m)
				}
			}
		})
	}
}

// TestIKConfig finds the config a kernel embeds, plainly and inside a
// gzip-compressed kernel, in Debian's arm64 kernel with Debian's config
// put in as kernel/configs.c does, and refuses what is not one.
func TestIKConfig(t *testing.T) {
	kernel := filepath.Join("..", "build", "cache", "arm64", "vmlinuz")
	config := filepath.Join(cacheBoards, "arm64", "config")
	testenv.RequireFile(t, kernel, "run `make testdata`")
	testenv.RequireFile(t, config, "run scripts/testdata-boards.sh or make testdata")
	image, _ := os.ReadFile(kernel)
	cfg, _ := os.ReadFile(config)
	if testing.Short() {
		// Its first 4 MiB: gzip over the whole kernel takes long
		// under the race detector, and the prefix has no IKCONFIG either.
		image = image[:min(len(image), 4<<20)]
	}
	gz := func(b []byte) []byte {
		var z bytes.Buffer
		zw := gzipWriter(&z)
		zw.Write(b)
		zw.Close()
		return z.Bytes()
	}
	embed := func(k, blob []byte) []byte {
		return append(append(append(append([]byte{}, k...), ikconfigStart...), blob...), ikconfigEnd...)
	}
	withConfig := embed(image, gz(cfg))
	tests := []struct {
		name   string
		kernel []byte
		want   error
	}{
		{"Image with IKCONFIG", withConfig, nil},
		{"Image.gz with IKCONFIG", append([]byte("decompressor stub"), gz(withConfig)...), nil},
		{"Image without", image, ErrNoIKConfig},
		{"marker, no gzip after it", embed(image[:4096], []byte("not gzip")), ErrBadConfig},
		{"marker, gzip cut short", embed(image[:4096], gz(cfg)[:100]), ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IKConfig(tt.kernel)
			if !errors.Is(err, tt.want) || (tt.want == nil && !bytes.Equal(got, cfg)) {
				t.Errorf("IKConfig() = %d bytes, %v; want %v (%d bytes)", len(got), err, tt.want, len(cfg))
			}
		})
	}
}

// TestCanHost judges Debian's kernel configs as the host kernels of
// boards of each architecture.
func TestCanHost(t *testing.T) {
	read := func(arch string) *KernelConfig {
		p := filepath.Join(cacheBoards, arch, "config")
		testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
		data, _ := os.ReadFile(p)
		c, err := ParseKernelConfig(data, p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	arm64, armhf := read("arm64"), read("armhf")
	board := func(name string, arch platforms.Arch) *platforms.Board {
		return &platforms.Board{Name: name, Arch: arch}
	}
	tests := []struct {
		name string
		c    *KernelConfig
		b    *platforms.Board
		why  string // "" for can
	}{
		{"arm64 kernel, arm64 board", arm64, board("rockpro64", platforms.ARM64), ""},
		{"armhf kernel, ARMv7 board", armhf, board("cubieboard2", platforms.ARM), "CONFIG_KVM is absent; Linux 5.7 removed KVM host support for 32-bit ARM"},
		{"armhf kernel, arm64 board", armhf, board("rpi4b", platforms.ARM64), "it is built for arm, board rpi4b needs a kernel built for arm64"},
		{"arm64 kernel, x86 board", arm64, board("x86-pc", platforms.X86), "needs a kernel built for x86"},
	}
	for _, tt := range tests {
		ok, why := tt.c.CanHost(tt.b)
		if ok != (tt.why == "") || !strings.Contains(why, tt.why) {
			t.Errorf("%s: CanHost() = %v, %q; want %q", tt.name, ok, why, tt.why)
		}
	}
}

// FuzzUBootEnv: any bytes give an environment or none, never a panic,
// and every entry of one is a name=value the binary holds.
func FuzzUBootEnv(f *testing.F) {
	f.Add(envBlock("kernel_addr_r=0x1000", "fdt_addr_r=0x2000"))
	f.Add([]byte("\x00kernel_addr_r=\x00\x00"))
	f.Add([]byte("x=1\x00kernel_addr_r=0x1\x00fdt_addr_r"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k, v := range UBootEnv(data) {
			if !bytes.Contains(data, []byte("\x00"+k+"="+v+"\x00")) && !bytes.HasPrefix(data, []byte(k+"="+v+"\x00")) {
				t.Fatalf("entry %s=%s is not in the input", k, v)
			}
		}
	})
}

// FuzzIKConfig: any kernel bytes give a config or an error, never a panic.
func FuzzIKConfig(f *testing.F) {
	f.Add([]byte(ikconfigStart + "\x1f\x8b\x08\x00"))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := IKConfig(data); err == nil && len(c) > maxConfigSize {
			t.Fatalf("IKConfig() = %d bytes, more than maxConfigSize", len(c))
		}
	})
}

func gzipWriter(w *bytes.Buffer) *gzip.Writer { return gzip.NewWriter(w) }

// TestBoardsMatchDebianUBoot: every built-in board whose U-Boot Debian
// builds (a blob or boot file from a u-boot-* package) loads to the
// addresses that build's default environment sets.
func TestBoardsMatchDebianUBoot(t *testing.T) {
	n := 0
	for _, b := range all.Boards() {
		var spec string
		for _, bl := range b.Image.Blobs {
			if strings.HasPrefix(bl.Package, "u-boot-") {
				spec = bl.Package
			}
		}
		for _, bf := range b.Image.BootFiles {
			if strings.HasPrefix(bf.Package, "u-boot-") {
				spec = bf.Package
			}
		}
		if spec == "" {
			continue
		}
		n++
		t.Run(b.Name, func(t *testing.T) {
			pkg, file, _ := strings.Cut(spec, ":")
			arch := map[platforms.Arch]string{platforms.ARM: "armhf", platforms.ARM64: "arm64"}[b.Arch]
			dir := filepath.Join(cachePkgs, pkg+"_"+arch, filepath.Dir(file))
			p := filepath.Join(dir, "u-boot.bin")
			if _, err := os.Stat(p); err != nil {
				p = filepath.Join(dir, filepath.Base(file))
			}
			testenv.RequireFile(t, p, "run `make testdata` and `scripts/testdata.sh arm64`")
			u, err := ReadUBoot(p)
			if err != nil {
				t.Fatal(err)
			}
			l, _, err := u.LoadAddrs()
			if err != nil || l != b.Image.Load {
				t.Errorf("board.yaml's load = %+v, U-Boot %s sets %+v (%v)", b.Image.Load, p, l, err)
			}
		})
	}
	if n < 4 {
		t.Errorf("%d built-in boards take U-Boot from Debian, want at least Arndale, the A20s, RockPro64 and RPi 4", n)
	}
}
