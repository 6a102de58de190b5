package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestDTBVerdicts: `tandem board detect` and `tandem bsp check` on a DTB
// print its verdict, for boards with and without a profile, and never an
// internal error.
func TestDTBVerdicts(t *testing.T) {
	debian := func(arch, name string) string { return filepath.Join("..", "..", "build", "cache", arch, "dtbs", name) }
	tests := []struct {
		name, dtb, board string
		cached           bool   // the DTB comes from make testdata
		profile          bool   // the board has one
		verdict          string // in both outputs
		ready            bool   // bsp check passes
	}{
		{"QEMU virt without virtualization=on", "../../dtb/testdata/qemu-virt.dtb", "qemu-virt-arm64", false, true,
			"GICv2 without the virtualization interface (no GICH/GICV regions): cannot host KVM", false},
		{"QEMU virt arm64", "../../build/cache/boards/qemu/virt-arm64.dtb", "qemu-virt-arm64", true, true,
			"hosts KVM (2× arm,cortex-a57, GICv3)", true},
		{"Raspberry Pi 3 without a profile", debian("arm64", "broadcom/bcm2837-rpi-3-b.dtb"), "rpi3", true, false,
			"no GIC: cannot host KVM", false},
		{"RZ/G2M Beacon kit without a profile", debian("arm64", "renesas/r8a774a1-beacon-rzg2m-kit.dtb"), "beacon-rzg2m", true, false,
			"hosts KVM (2× arm,cortex-a57 + 4× arm,cortex-a53, GICv2)", false},
		{"RZ/G2M HiHope with its profile", debian("arm64", "renesas/r8a774a1-hihope-rzg2m.dtb"), "hihope-rzg2m", true, true,
			"hosts KVM (2× arm,cortex-a57 + 4× arm,cortex-a53, GICv2)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cached {
				testenv.RequireFile(t, tt.dtb, "run `make testdata`")
			}
			var out, errOut bytes.Buffer
			if err := run([]string{"board", "detect", "--fdt", tt.dtb}, &out, &errOut); err != nil {
				t.Fatalf("board detect = %v\n%s", err, errOut.String())
			}
			if !strings.Contains(out.String(), "verdict:      "+tt.verdict) {
				t.Errorf("board detect printed\n%s\nwant the verdict %q", out.String(), tt.verdict)
			}
			out.Reset()
			err := run([]string{"bsp", "check", tt.board, "--dtb", tt.dtb}, &out, &errOut)
			if tt.ready != (err == nil) || (err != nil && !errors.Is(err, errNotReady)) {
				t.Errorf("bsp check = %v, want ready %v (or errNotReady)", err, tt.ready)
			}
			if !strings.Contains(out.String(), "=> "+tt.verdict) {
				t.Errorf("bsp check printed\n%s\nwant the verdict %q", out.String(), tt.verdict)
			}
			if !tt.profile && !strings.Contains(out.String(), "tandem bsp import "+tt.dtb+" --name "+tt.board) {
				t.Errorf("bsp check printed\n%s\nwant the import command that starts the profile", out.String())
			}
		})
	}
}
