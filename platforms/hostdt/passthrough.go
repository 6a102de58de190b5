package hostdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
)

// Passthrough description. The VMM maps each MMIO range into the guest and
// forwards each interrupt with VFIO platform; this file only decides what
// may be passed and describes it. Refused, with ErrRefused:
//   - nodes on the board's denylist;
//   - what the host itself needs: the interrupt controller, the
//     architected timer, the console UART, memory, /cpus, /psci, /chosen;
//   - providers other nodes depend on: clock, reset, power-domain,
//     interrupt, GPIO, DMA and pin controllers (the host kernel drives
//     them for every device, so a guest owning one would stop the host's
//     devices);
//   - nodes whose registers share a 4 KiB page with a host device that is
//     not passed too: the guest would get that device with the page;
//   - nodes with per-CPU (PPI) interrupts, which cannot be forwarded.

// ErrRefused: a node may not be passed through.
var ErrRefused = errors.New("refused for passthrough")

// pageSize is the stage-2 mapping granule the check assumes (4 KiB, the
// smallest: a 64 KiB-page host refuses more).
const pageSize = 4 << 10

// Window is the guest-physical range and the SPIs the passed devices get.
type Window struct {
	Base, Size uint64
	// FirstSPI is the first guest SPI number (the DT's cell, INTID 32+n).
	FirstSPI uint32
}

// Mapping is one MMIO range: host physical to guest physical.
type Mapping struct {
	Host, Guest platforms.Region
}

// IRQ is one forwarded interrupt.
type IRQ struct {
	HostSPI, GuestSPI uint32
	Flags             uint32 // the specifier's trigger cell, unchanged
}

// PassNode is one node ready to copy into a guest device tree.
type PassNode struct {
	HostPath string
	// Node is a detached copy: reg in guest addresses for a parent with
	// #address-cells = <2> and #size-cells = <2>, interrupts as
	// <GIC_SPI n flags> for the guest GIC (the guest tree's
	// interrupt-parent applies), and properties naming host phandles
	// removed.
	Node    *dtb.Node
	MMIO    []Mapping
	IRQs    []IRQ
	Dropped []string
}

// hostRefProps name host nodes by phandle: meaningless in a guest.
var hostRefProps = []string{"clocks", "clock-names", "assigned-clocks", "assigned-clock-parents", "assigned-clock-rates",
	"resets", "reset-names", "power-domains", "power-domain-names", "dmas", "dma-names", "phys", "phy-names",
	"iommus", "interrupt-parent", "interrupts-extended", "phandle", "linux,phandle"}

// providerProps mark a node other nodes depend on.
var providerProps = []string{"#clock-cells", "#reset-cells", "#power-domain-cells", "interrupt-controller",
	"gpio-controller", "#dma-cells", "#pinctrl-cells", "#phy-cells"}

// Passthrough describes the host nodes at paths for a guest of board b.
func Passthrough(t *dtb.Tree, f *Facts, b *platforms.Board, paths []string, w Window) ([]PassNode, error) {
	nodes := make([]*dtb.Node, len(paths))
	for i, p := range paths {
		n, err := t.Lookup(p)
		if err != nil {
			return nil, fmt.Errorf("passthrough: %w", err)
		}
		if err := refuse(f, b, n); err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	if err := sharedPages(t, nodes); err != nil {
		return nil, err
	}
	next, spi := w.Base, w.FirstSPI
	var out []PassNode
	for _, n := range nodes {
		pn := PassNode{HostPath: n.Path(), Node: n.Clone()}
		var reg []byte
		regs, err := n.Reg()
		if err != nil {
			return nil, fmt.Errorf("passthrough %s: %w", n.Path(), err)
		}
		for _, r := range regs {
			host, err := Translate(n, r.Address)
			if err != nil {
				return nil, fmt.Errorf("passthrough %s: %w", n.Path(), err)
			}
			// Map whole pages; the guest address keeps the offset in the page.
			off := host % pageSize
			span := (off + r.Size + pageSize - 1) &^ (pageSize - 1)
			if next+span > w.Base+w.Size || next+span < next {
				return nil, fmt.Errorf("passthrough %s: guest window %#x+%#x is full", n.Path(), w.Base, w.Size)
			}
			g := next + off
			pn.MMIO = append(pn.MMIO, Mapping{Host: platforms.Region{Base: host, Size: r.Size}, Guest: platforms.Region{Base: g, Size: r.Size}})
			reg = binary.BigEndian.AppendUint64(reg, g)
			reg = binary.BigEndian.AppendUint64(reg, r.Size)
			next += span
		}
		pn.Node.Set("reg", reg)
		// The unit address follows reg (Devicetree Specification 2.2.1):
		// the node is named after its first guest address.
		if len(pn.MMIO) > 0 {
			pn.Node.Name = fmt.Sprintf("%s@%x", n.BaseName(), pn.MMIO[0].Guest.Base)
		}
		if hasInterrupts(n) {
			irqs, err := t.InterruptSpecs(n)
			if err != nil {
				return nil, fmt.Errorf("passthrough %s: %w", n.Path(), err)
			}
			var cells []uint32
			for _, irq := range irqs {
				s := irq.Spec
				// Only the GIC's own SPIs can be forwarded: a controller
				// in between (a GPIO or wake-up controller, a SoC's
				// own interrupt controller) maps its inputs in its
				// driver, out of a guest's reach.
				if f.GIC == nil || irq.Parent.Path() != f.GIC.Path {
					return nil, fmt.Errorf("passthrough %s: %w: its interrupt %v goes to %s, not to the GIC", n.Path(), ErrRefused, s, controller(irq.Parent))
				}
				if len(s) < 3 || s[0] != gicSPI {
					return nil, fmt.Errorf("passthrough %s: %w: interrupt %v is not a GIC SPI (per-CPU interrupts stay with the host)", n.Path(), ErrRefused, s)
				}
				pn.IRQs = append(pn.IRQs, IRQ{HostSPI: s[1], GuestSPI: spi, Flags: s[2]})
				cells = append(cells, gicSPI, spi, s[2])
				spi++
			}
			pn.Node.SetU32s("interrupts", cells...)
		}
		for _, p := range pn.Node.Properties() {
			if slices.Contains(hostRefProps, p.Name) || strings.HasSuffix(p.Name, "-supply") || strings.HasPrefix(p.Name, "pinctrl-") {
				pn.Dropped = append(pn.Dropped, p.Name)
			}
		}
		for _, name := range pn.Dropped {
			pn.Node.DeleteProp(name)
		}
		pn.Node.SetString("status", "okay")
		out = append(out, pn)
	}
	return out, nil
}

func refuse(f *Facts, b *platforms.Board, n *dtb.Node) error {
	no := func(why string) error { return fmt.Errorf("passthrough %s: %w: %s", n.Path(), ErrRefused, why) }
	compat, _ := n.Strings("compatible")
	if b != nil {
		if d, ok := b.Denies(compat); ok {
			return no(fmt.Sprintf("board %s denylists %q", b.Name, d))
		}
	}
	switch {
	case f.GIC != nil && n.Path() == f.GIC.Path:
		return no("the host's interrupt controller")
	case f.Timer != nil && n.Path() == f.Timer.Path:
		return no("the host's timer")
	case f.Console != nil && n.Path() == f.Console.Path:
		return no("the host's console UART")
	case f.PSCI != nil && n.Path() == f.PSCI.Path:
		return no("the host's PSCI firmware interface")
	}
	if dt, _ := n.String("device_type"); dt == "memory" || dt == "cpu" {
		return no("host " + dt)
	}
	top := strings.SplitN(strings.TrimPrefix(n.Path(), "/"), "/", 2)[0]
	if top == "cpus" || top == "chosen" || top == "aliases" || top == "reserved-memory" || n.Parent() == nil {
		return no("a host-only node")
	}
	for _, p := range providerProps {
		if n.Has(p) {
			return no(fmt.Sprintf("it provides to other host devices (%s): the host kernel drives it", p))
		}
	}
	if !n.Has("reg") {
		return no("it has no registers to map")
	}
	return nil
}

// sharedPages refuses a node whose registers share a page with an enabled
// host device outside the set.
func sharedPages(t *dtb.Tree, set []*dtb.Node) error {
	pages := map[uint64]*dtb.Node{}
	for _, n := range set {
		regs, err := n.Reg()
		if err != nil {
			return fmt.Errorf("passthrough %s: %w", n.Path(), err)
		}
		for _, r := range regs {
			a, err := Translate(n, r.Address)
			if err != nil {
				return fmt.Errorf("passthrough %s: %w", n.Path(), err)
			}
			for p := a &^ (pageSize - 1); p < a+r.Size; p += pageSize {
				pages[p] = n
			}
		}
	}
	var conflict error
	_ = t.Root.Walk(func(o *dtb.Node) error {
		if slices.Contains(set, o) || !o.Has("reg") || !o.Has("compatible") {
			return nil
		}
		if s, _ := o.String("status"); s == "disabled" {
			return nil
		}
		if dt, _ := o.String("device_type"); dt == "memory" || dt == "cpu" {
			return nil
		}
		regs, err := o.Reg()
		if err != nil {
			return nil
		}
		for _, r := range regs {
			a, err := Translate(o, r.Address)
			if err != nil || r.Size == 0 {
				continue
			}
			for p := a &^ (pageSize - 1); p < a+r.Size; p += pageSize {
				if n, ok := pages[p]; ok {
					conflict = fmt.Errorf("passthrough %s: %w: its registers share the 4 KiB page %#x with host device %s", n.Path(), ErrRefused, p, o.Path())
					return conflict
				}
			}
		}
		return nil
	})
	return conflict
}
