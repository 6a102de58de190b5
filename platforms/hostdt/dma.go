package hostdt

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/dtb"
)

// DMA masters. Passthrough maps a device's registers into the guest and
// nothing else: the device's own memory accesses are not translated by
// stage 2, which only sees the CPUs'. A device that can master DMA would
// let the guest program it with host physical addresses and read or write
// all host memory, the hypervisor's included. Only an IOMMU in front of
// the device, programmed with the guest's memory (VFIO), confines it; a
// node that can master DMA is therefore refused.
//
// A device tree says a node masters DMA in two ways: by properties that
// only a DMA master has (dmaProps), or by what the node is, which its
// name (the Devicetree Specification's generic names, section 2.2.2, and
// older names boards still use) and its compatible say (dmaClasses).

// ErrDMAMaster: a node can master DMA and the host gives it no IOMMU path.
var ErrDMAMaster = errors.New("it can master DMA")

// DMAMasterError is the refusal of a node that can master DMA: Evidence
// says which property or class made it one.
type DMAMasterError struct {
	Path     string // the node's path in the host's device tree
	Evidence string // "property iommus: ...", "node name ethernet: ..."
	// IOMMU is true when the node sits behind an IOMMU (iommus), the
	// first half of a way to confine it.
	IOMMU bool
}

func (e *DMAMasterError) Error() string {
	return fmt.Sprintf("passthrough %s: %v: %v (%s)", e.Path, ErrRefused, ErrDMAMaster, e.Evidence)
}

// Unwrap makes a DMAMasterError both ErrRefused and ErrDMAMaster.
func (e *DMAMasterError) Unwrap() []error { return []error{ErrRefused, ErrDMAMaster} }

// dmaProps are properties that mark a DMA master, in the order they are
// reported.
var dmaProps = []struct{ name, why string }{
	{"#dma-cells", "a DMA controller, which moves data between memory and other devices"},
	{"iommus", "an IOMMU translates its memory accesses, which only a DMA master makes"},
	{"dma-coherent", "its DMA is coherent with the CPUs' caches"},
	{"dmas", "it moves data through a DMA controller"},
	{"iommu-map", "a bridge whose devices' DMA goes through an IOMMU"},
	{"dma-ranges", "it maps DMA addresses for the devices below it"},
	{"memory-region", "it is given host memory to use for its buffers"},
}

// dmaClasses are kinds of device that master DMA by design: node names
// and the words of a compatible after its vendor (split at '-' and '_':
// "allwinner,sun7i-a20-gmac" has gmac).
var dmaClasses = []struct {
	class  string
	names  []string
	compat []string
}{
	{"a DMA controller", []string{"dma-controller", "dma"}, []string{"dma", "dmac", "pl330", "pl080", "pl081", "edma", "sdma"}},
	{"an Ethernet controller", []string{"ethernet", "gmac", "emac"}, []string{"gmac", "emac", "dwmac", "stmmac", "macb", "fec", "eqos"}},
	{"a USB controller", []string{"usb", "ehci", "ohci", "xhci", "otg", "dwc3"}, []string{"ehci", "ohci", "xhci", "dwc2", "dwc3", "musb"}},
	{"an MMC/SD controller", []string{"mmc", "sdhci", "dwmmc", "esdhc", "sdio"}, []string{"mmc", "sdhci", "esdhc", "dwmmc", "mshc"}},
	{"a PCI or PCIe bridge", []string{"pcie", "pci", "pcie-ep"}, []string{"pcie", "pci"}},
	{"a GPU or display controller", []string{"gpu", "display", "display-controller", "display-backend", "display-frontend", "lcd-controller", "dss"}, []string{"mali", "gpu", "vop", "dpu"}},
	{"a SATA controller", []string{"sata", "ahci"}, []string{"ahci", "sata"}},
	{"a video codec", []string{"video-codec", "vpu"}, []string{"vpu", "vcodec"}},
	{"a NAND controller", []string{"nand-controller"}, []string{"nand"}},
	{"a crypto engine", []string{"crypto", "crypto-engine"}, []string{"crypto", "caam", "ccp"}},
	{"a camera or video capture interface", []string{"csi", "isp", "camera", "vin"}, []string{"csi", "isp", "vin"}},
}

// DMAMaster says whether n can master DMA and why: the property or class
// that makes it one, or "" when nothing in the tree says so.
func DMAMaster(n *dtb.Node) string {
	for _, p := range dmaProps {
		if n.Has(p.name) {
			return fmt.Sprintf("property %s: %s", p.name, p.why)
		}
	}
	if dt, _ := n.String("device_type"); dt == "pci" {
		return "device_type pci: a PCI bridge, whose devices master DMA"
	}
	name := n.BaseName()
	compat, _ := n.Strings("compatible")
	for _, c := range dmaClasses {
		if slices.Contains(c.names, name) {
			return fmt.Sprintf("node name %s: %s, which masters DMA", name, c.class)
		}
		for _, s := range compat {
			if w, ok := compatWord(s, c.compat); ok {
				return fmt.Sprintf("compatible %q (%s): %s, which masters DMA", s, w, c.class)
			}
		}
	}
	return ""
}

// partWords mark a compatible that names a part of a device rather than
// the device: its PHY, its clock, a slot or card below it. They master
// nothing ("fsl,imx8mm-pcie-phy", "allwinner,sun7i-a20-gmac-clk").
var partWords = []string{"phy", "dphy", "clk", "clock", "slot", "card", "pool"}

// compatWord returns the first word of compatible string s (after its
// vendor prefix) that is in words, unless s names a part (partWords).
func compatWord(s string, words []string) (string, bool) {
	if _, model, ok := strings.Cut(s, ","); ok {
		s = model
	}
	ws := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' })
	for _, w := range ws {
		if slices.Contains(partWords, w) {
			return "", false
		}
	}
	for _, w := range ws {
		if slices.Contains(words, w) {
			return w, true
		}
	}
	return "", false
}

// refuseDMAMaster is refuse's check for DMA masters.
func refuseDMAMaster(n *dtb.Node) error {
	if why := DMAMaster(n); why != "" {
		return &DMAMasterError{Path: n.Path(), Evidence: why, IOMMU: n.Has("iommus")}
	}
	return nil
}
