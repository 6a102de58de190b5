// Package pl011 models an ARM PrimeCell UART (PL011), enough of it for
// Linux's amba-pl011 driver and its earlycon: transmit, receive from the
// host, the interrupt registers and the PrimeCell identification
// registers the AMBA bus probes.
//
// Registers and bits follow the PrimeCell UART (PL011) Technical
// Reference Manual (ARM DDI 0183G), section 3; the names are those of
// include/linux/amba/serial.h.
//
// # Interrupts
//
// The PL011's interrupt output is a level: the OR of the masked interrupt
// status (UARTMIS). Tandem's lines are irqfds, which deliver edges, and
// the device tree describes the UART's SPI as edge-rising to match (a
// pulse on a level-configured vGIC line that drops before the vCPU takes
// it is lost). The level is emulated over the edge by sending an edge
// whenever a bit of UARTMIS becomes set that was not set before: new data
// received into an empty FIFO, the transmit interrupt set by a write to
// UARTDR after UARTICR cleared it, a pending source unmasked in UARTIMSC.
//
// This is enough for a driver that, like Linux's pl011_int, loops until
// UARTMIS reads zero: a source that rises while the handler runs is
// either seen by the loop or, being a new bit, sends an edge that the GIC
// keeps pending until the handler's EOI. What a level would do and this
// does not is interrupt again for a source the handler left asserted
// (Linux's gives up after 256 passes, with more than 64 KiB of input
// waiting); the next rising source interrupts again. Edges are not sent
// for bits that merely stay set, so a busy guest takes no spurious
// interrupts.
//
// Output is written to the host at once, so the transmit FIFO is always
// empty: UARTFR always reports TXFE and never TXFF or BUSY, and the
// transmit interrupt (TXRIS) is set after every write to UARTDR, cleared
// by UARTICR, as QEMU's model does.
//
// # Bounds
//
// The receive queue holds at most devices.MaxInput (64 KiB) bytes of host
// input; more is dropped and UARTFR shows RXFF. Nothing the guest writes
// is buffered: output goes to the host at once.
package pl011

import (
	"io"
	"sync"

	"github.com/tandem-hv/tandem/hv/devices"
)

// Register offsets (DDI 0183G table 3-1).
const (
	regDR    = 0x000 // data
	regRSR   = 0x004 // receive status (read), error clear (write)
	regFR    = 0x018 // flags
	regILPR  = 0x020 // IrDA low-power counter
	regIBRD  = 0x024 // integer baud rate divisor
	regFBRD  = 0x028 // fractional baud rate divisor
	regLCRH  = 0x02c // line control
	regCR    = 0x030 // control
	regIFLS  = 0x034 // interrupt FIFO level select
	regIMSC  = 0x038 // interrupt mask set/clear
	regRIS   = 0x03c // raw interrupt status
	regMIS   = 0x040 // masked interrupt status
	regICR   = 0x044 // interrupt clear
	regDMACR = 0x048 // DMA control
	regID    = 0xfe0 // UARTPeriphID0-3, UARTPCellID0-3: 0xfe0-0xffc

	// Size is the register window (4 KiB).
	Size = 0x1000
)

// Flag register bits (UARTFR, 3.3.3).
const (
	frBusy = 1 << 3
	frRXFE = 1 << 4 // receive FIFO empty
	frTXFF = 1 << 5 // transmit FIFO full
	frRXFF = 1 << 6 // receive FIFO full
	frTXFE = 1 << 7 // transmit FIFO empty
)

// Interrupt bits of UARTIMSC, UARTRIS, UARTMIS and UARTICR (3.3.10-3.3.13).
const (
	intRX   = 1 << 4 // receive
	intTX   = 1 << 5 // transmit
	intRT   = 1 << 6 // receive timeout
	intMask = 0x7ff  // the eleven interrupt sources
)

// Reset values (3.2).
const (
	resetCR   = 0x300 // TXE and RXE
	resetIFLS = 0x12  // half-full trigger levels
)

// id holds UARTPeriphID0-3 and UARTPCellID0-3: part number 0x011,
// designer 0x41 (ARM), revision 1 (r1p5), and the PrimeCell id
// 0xb105f00d. Linux's AMBA bus matches the driver on 0x00041011.
var id = [8]uint8{0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1}

// UART is one PL011. It implements bus.Device for the MMIO bus.
type UART struct {
	out io.Writer
	irq devices.Interrupt
	// Guard contains a panic in Input, which runs on the console's
	// input goroutine, not a vCPU.
	devices.Guard

	// mu protects every register and the input queue.
	mu         sync.Mutex
	ibrd, fbrd uint32
	lcrh       uint32
	cr         uint32
	ifls       uint32
	imsc       uint32
	ilpr       uint32
	dmacr      uint32
	// txRIS is the transmit raw interrupt: set by a write to UARTDR,
	// cleared by UARTICR.
	txRIS bool
	// lastMIS is UARTMIS as of the last update, to find rising bits.
	lastMIS uint32
	// in is the receive queue: at most devices.MaxInput bytes.
	in devices.InputBuffer
}

// New returns a UART writing guest output to out and raising irq.
func New(out io.Writer, irq devices.Interrupt) *UART {
	return &UART{out: out, irq: irq, cr: resetCR, ifls: resetIFLS}
}

// Input queues bytes for the guest to read, raising the receive
// interrupt if the guest enabled it.
func (u *UART) Input(p []byte) {
	defer u.Contain("PL011 UART")
	if u.Failed() {
		return
	}
	u.mu.Lock()
	u.in.Push(p)
	raise := u.update()
	u.mu.Unlock()
	u.trigger(raise)
}

// ris is UARTRIS. Received data raises both the receive interrupt and the
// receive timeout: the model has no character timing, and Linux enables
// both and treats them alike. Caller holds mu.
func (u *UART) ris() uint32 {
	var r uint32
	if u.in.Len() > 0 {
		r |= intRX | intRT
	}
	if u.txRIS {
		r |= intTX
	}
	return r
}

// update recomputes UARTMIS and says whether a bit rose, which sends an
// edge. Caller holds mu.
func (u *UART) update() bool {
	mis := u.ris() & u.imsc
	rose := mis&^u.lastMIS != 0
	u.lastMIS = mis
	return rose
}

func (u *UART) trigger(raise bool) {
	if raise && u.irq != nil {
		u.irq.Trigger()
	}
}

// Read implements bus.Device. Registers are 32 bits wide; narrower reads
// see the low bytes, as on the APB bus.
func (u *UART) Read(off uint64, data []byte) {
	clear(data)
	if len(data) == 0 || u.Failed() {
		return
	}
	u.mu.Lock()
	var v uint32
	raise := false
	switch {
	case off == regDR:
		if c, ok := u.in.Pop(); ok {
			v = uint32(c)
			raise = u.update()
		}
	case off == regFR:
		v = frTXFE
		switch {
		case u.in.Len() == 0:
			v |= frRXFE
		case u.in.Full():
			v |= frRXFF
		}
	case off == regILPR:
		v = u.ilpr
	case off == regIBRD:
		v = u.ibrd
	case off == regFBRD:
		v = u.fbrd
	case off == regLCRH:
		v = u.lcrh
	case off == regCR:
		v = u.cr
	case off == regIFLS:
		v = u.ifls
	case off == regIMSC:
		v = u.imsc
	case off == regRIS:
		v = u.ris()
	case off == regMIS:
		v = u.ris() & u.imsc
	case off == regDMACR:
		v = u.dmacr
	case off >= regID && off < Size && off%4 == 0:
		v = uint32(id[(off-regID)/4])
	}
	u.mu.Unlock()
	for i := range data {
		if i < 4 {
			data[i] = byte(v >> (8 * i))
		}
	}
	u.trigger(raise)
}

// Write implements bus.Device.
func (u *UART) Write(off uint64, data []byte) {
	if len(data) == 0 || u.Failed() {
		return
	}
	var v uint32
	for i := 0; i < len(data) && i < 4; i++ {
		v |= uint32(data[i]) << (8 * i)
	}
	u.mu.Lock()
	raise := false
	switch off {
	case regDR:
		// Written at once, under mu so that output from several vCPUs
		// keeps its order. A failing writer loses output, not the guest.
		if u.out != nil {
			u.out.Write([]byte{byte(v)})
		}
		u.txRIS = true
		raise = u.update()
	case regRSR:
		// Error clear: the model never has receive errors.
	case regILPR:
		u.ilpr = v & 0xff
	case regIBRD:
		u.ibrd = v & 0xffff
	case regFBRD:
		u.fbrd = v & 0x3f
	case regLCRH:
		u.lcrh = v & 0xff
	case regCR:
		u.cr = v & 0xffff
	case regIFLS:
		u.ifls = v & 0x3f
	case regIMSC:
		u.imsc = v & intMask
		raise = u.update()
	case regICR:
		if v&intTX != 0 {
			u.txRIS = false
		}
		// Receive interrupts follow the FIFO: clearing them while data
		// waits does not stop them, as with a FIFO above its trigger
		// level; the other sources never assert.
		raise = u.update()
	case regDMACR:
		u.dmacr = v & 0x7
	}
	u.mu.Unlock()
	u.trigger(raise)
}
