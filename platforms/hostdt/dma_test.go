package hostdt

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// boardDTB reads a Debian DTB from build/cache/boards (rel is relative to
// it) and its facts.
func boardDTB(t *testing.T, rel string) (*Facts, *dtb.Tree) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "build", "cache", "boards", rel)
	testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
	f, tr, err := ReadFile(p)
	if err != nil {
		t.Fatalf("ReadFile(%s) = %v", rel, err)
	}
	return f, tr
}

// TestDMAMasters refuses, on Debian's DTBs, nodes that can master DMA,
// each for the property or class that makes it one, and passes nodes
// that master none.
func TestDMAMasters(t *testing.T) {
	const (
		a20    = "armhf/sun7i-a20-cubieboard2.dtb"
		dove   = "armhf/dove-cubox-es.dtb"
		rk3066 = "armhf/rk3066a-bqcurie2.dtb"
		zcu102 = "arm64/xilinx/zynqmp-zcu102-rev1.0.dtb"
		hikey  = "arm64/hisilicon/hi6220-hikey.dtb"
		juno   = "arm64/arm/juno.dtb"
		amd    = "arm64/amd/amd-overdrive-rev-b0.dtb"
		rk3399 = "arm64/rockchip/rk3399-rock-pi-4b.dtb"
		virt   = "qemu/virt-arm64.dtb"
	)
	tests := []struct {
		dtb, node string
		want      string // a part of the evidence; "" for no DMA master
		iommu     bool
	}{
		// Properties.
		{zcu102, "/axi/spi@ff0f0000", "property iommus", true},
		{zcu102, "/axi/ethernet@ff0e0000", "property iommus", true},
		{zcu102, "/axi/dma-controller@fd500000", "property #dma-cells", true},
		{a20, "/soc/dma-controller@1c02000", "property #dma-cells", false},
		{virt, "/fw-cfg@9020000", "property dma-coherent", false},
		{virt, "/virtio_mmio@a000000", "property dma-coherent", false},
		{amd, "/smb/ccp@e0100000", "property iommus", true},
		{juno, "/gpu@2d000000", "property dma-coherent", false},
		{a20, "/soc/spi@1c05000", "property dmas", false},
		{a20, "/soc/hdmi@1c16000", "property dmas", false},
		// Classes by node name.
		{a20, "/soc/ethernet@1c50000", "node name ethernet: an Ethernet controller", false},
		{a20, "/soc/usb@1c14000", "node name usb: a USB controller", false},
		{a20, "/soc/mmc@1c0f000", "node name mmc: an MMC/SD controller", false},
		{a20, "/soc/sata@1c18000", "node name sata: a SATA controller", false},
		{a20, "/soc/gpu@1c40000", "node name gpu: a GPU or display controller", false},
		{a20, "/soc/display-backend@1e40000", "node name display-backend", false},
		{a20, "/soc/video-codec@1c0e000", "node name video-codec: a video codec", false},
		{a20, "/soc/crypto-engine@1c15000", "node name crypto-engine: a crypto engine", false},
		{a20, "/soc/csi@1c09000", "node name csi: a camera", false},
		// Classes by compatible, where the name is not a generic one.
		{dove, "/mbus/internal-regs/usb-host@50000", `compatible "marvell,orion-ehci" (ehci): a USB controller`, false},
		{dove, "/mbus/internal-regs/sata-host@a0000", `compatible "marvell,orion-sata" (sata): a SATA controller`, false},
		{hikey, "/soc/dwmmc0@f723d000", `(mshc): an MMC/SD controller`, false},
		{rk3066, "/vop@1010c000", `compatible "rockchip,rk3066-vop" (vop): a GPU or display controller`, false},
		// No DMA: a PrimeCell RTC, an infrared receiver, an I2C
		// controller, a timer.
		{virt, "/pl031@9010000", "", false},
		{a20, "/soc/ir@1c21800", "", false},
		{a20, "/soc/i2c@1c2ac00", "", false},
		{a20, "/soc/hstimer@1c60000", "", false},
	}
	w := Window{Base: 0x0a000000, Size: 1 << 20, FirstSPI: 64}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.dtb)+tt.node, func(t *testing.T) {
			f, tr := boardDTB(t, tt.dtb)
			_, err := Passthrough(tr, f, nil, []string{tt.node}, w)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Passthrough(%s) = %v, want it passed", tt.node, err)
				}
				return
			}
			var e *DMAMasterError
			if !errors.As(err, &e) {
				t.Fatalf("Passthrough(%s) = %v, want a DMAMasterError", tt.node, err)
			}
			if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrDMAMaster) {
				t.Errorf("Passthrough(%s) = %v: want both ErrRefused and ErrDMAMaster", tt.node, err)
			}
			if e.Path != tt.node || !strings.Contains(e.Evidence, tt.want) || e.IOMMU != tt.iommu {
				t.Errorf("Passthrough(%s) = %+v, want the node, evidence containing %q, IOMMU %v", tt.node, e, tt.want, tt.iommu)
			}
			if !strings.Contains(err.Error(), tt.node) {
				t.Errorf("Passthrough(%s) = %q: the message does not name the node", tt.node, err)
			}
		})
	}
}
