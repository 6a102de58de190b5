package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestImageBuildRefuses runs `tandem image build` on images that could
// not work: a host kernel that cannot host KVM on the board (Debian's
// default armhf kernel on an ARMv7 board, a BSP kernel whose config lacks
// KVM or is built for another architecture, one whose config cannot be
// found), and guests the board's host cannot run. Each must exit 1 with
// a message naming the fix, and leave no file in the output directory.
// The kernels and configs are Debian's (scripts/testdata.sh).
func TestImageBuildRefuses(t *testing.T) {
	cache := testCache(t)
	tandem := buildTandem(t)
	armhf, arm64, x86 := filepath.Join(cache, "armhf"), filepath.Join(cache, "arm64"), filepath.Join(cache, "x86")
	rel := func(dir string) string {
		b, err := os.ReadFile(filepath.Join(dir, "release"))
		if err != nil {
			t.Fatalf("run `scripts/testdata.sh arm64 armhf x86`: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	armhfConfig := filepath.Join(armhf, "config-"+rel(armhf))
	for _, f := range []string{filepath.Join(armhf, "vmlinuz"), armhfConfig, filepath.Join(arm64, "config-"+rel(arm64)), filepath.Join(x86, "vmlinuz")} {
		testenv.RequireFile(t, f, "run `scripts/testdata.sh arm64 armhf x86`")
	}
	dir := t.TempDir()
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A BSP kernel as a vendor hands it over: alone, or with its config
	// beside it as Debian's /boot keeps them.
	bare := link("bsp/zImage", filepath.Join(armhf, "vmlinuz"))
	boot := link("boot/vmlinuz-"+rel(armhf), filepath.Join(armhf, "vmlinuz"))
	link("boot/config-"+rel(armhf), armhfConfig)
	arm64Kernel := link("bsp64/Image", filepath.Join(arm64, "vmlinuz"))
	// An arm64 kernel carrying a config (CONFIG_IKCONFIG's markers around
	// a gzipped .config, as kernel/configs.c embeds it): the armhf one.
	ik := filepath.Join(dir, "ikconfig", "Image")
	os.MkdirAll(filepath.Dir(ik), 0o755)
	image, err := os.ReadFile(filepath.Join(arm64, "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(armhfConfig)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(cfg)
	zw.Close()
	os.WriteFile(ik, append(append(append(image, "IKCFG_ST"...), z.Bytes()...), "IKCFG_ED"...), 0o644)

	manifest := func(name, kernel string) string {
		link("sys-"+name+"/vmlinuz", kernel)
		p := filepath.Join(dir, "sys-"+name, "system.yaml")
		os.WriteFile(p, []byte("guests:\n  - name: control\n    kernel: vmlinuz\n"), 0o644)
		return p
	}
	armGuest := manifest("arm", filepath.Join(armhf, "vmlinuz"))
	arm64Guest := manifest("arm64", filepath.Join(arm64, "vmlinuz"))
	x86Guest := manifest("x86", filepath.Join(x86, "vmlinuz"))

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"ARMv7 board with Debian's default kernel",
			[]string{"--board", "cubieboard2", "--manifest", armGuest},
			[]string{"board cubieboard2", "Debian's armhf kernel", "cannot host KVM", "CONFIG_KVM is absent", "Linux 5.7 removed KVM host support", "--host-kernel", "5.6 or older"}},
		{"ARMv7 board, a BSP kernel without a config",
			[]string{"--board", "arndale", "--manifest", armGuest, "--host-kernel", bare},
			[]string{bare, "no kernel config", "CONFIG_IKCONFIG", "--host-kernel-config FILE", "config-RELEASE"}},
		{"ARMv7 board, a BSP kernel whose config lacks KVM",
			[]string{"--board", "omap5-uevm", "--manifest", armGuest, "--host-kernel", bare, "--host-kernel-config", armhfConfig},
			[]string{"host kernel " + bare, "config " + armhfConfig, "CONFIG_KVM is absent", "--host-kernel", "CONFIG_KVM_ARM_HOST=y"}},
		{"ARMv7 board, the config beside the kernel lacks KVM",
			[]string{"--board", "bananapi", "--manifest", armGuest, "--host-kernel", boot},
			[]string{"config " + filepath.Join(dir, "boot", "config-"+rel(armhf)), "CONFIG_KVM is absent", "--host-kernel"}},
		{"arm64 board, a 32-bit ARM kernel",
			[]string{"--board", "rockpro64", "--manifest", arm64Guest, "--host-kernel", bare},
			[]string{bare, "aarch32 kernel", "rockpro64", "--host-kernel"}},
		{"arm64 board, its config built for another architecture",
			[]string{"--board", "rpi4b", "--manifest", arm64Guest, "--host-kernel", arm64Kernel, "--host-kernel-config", armhfConfig},
			[]string{"built for arm", "rpi4b needs a kernel built for arm64", "--host-kernel-config"}},
		{"arm64 board, the kernel's own IKCONFIG built for another architecture",
			[]string{"--board", "j721e-evm", "--manifest", arm64Guest, "--host-kernel", ik},
			[]string{ik + " (its embedded IKCONFIG)", "built for arm"}},
		{"arm64 guest on an ARMv7 host",
			[]string{"--board", "cubieboard2", "--manifest", arm64Guest},
			[]string{arm64Guest + ":3", `guest "control"`, "arm64 kernel", "ARMv7 (32-bit) host", "armhf guest kernel"}},
		{"x86 guest on an arm64 host",
			[]string{"--board", "imx8mp-evk", "--manifest", x86Guest},
			[]string{x86Guest + ":3", "x86_64 kernel", "arm64 host", "arm64 guest kernel"}},
		{"ARM guest on an x86 host",
			[]string{"--board", "x86-pc", "--manifest", armGuest},
			[]string{armGuest + ":3", "aarch32 kernel", "x86_64 host", "x86_64 guest kernel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			tmp := t.TempDir()
			os.MkdirAll(out, 0o755)
			args := append([]string{"image", "build", "-o", filepath.Join(out, "x.img"), "--fetch=false"}, tt.args...)
			cmd := tandemCmd(t, tandem, cache, tmp, "", args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("tandem %s = %v, want exit status 1\n%s", strings.Join(args, " "), err, stderr.String())
			}
			msg := stderr.String()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("tandem image build said:\n%s\nwant it to mention %q", msg, w)
				}
			}
			for _, d := range []string{out, tmp} {
				if left, _ := os.ReadDir(d); len(left) != 0 {
					t.Errorf("tandem image build left %s in %s, want nothing", left[0].Name(), d)
				}
			}
		})
	}
}
