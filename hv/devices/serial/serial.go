// Package serial models a 16550A UART, enough of it for Linux's 8250
// driver: its probe (scratch, loopback), polled and interrupt-driven
// transmit, and receive from the host.
//
// Register map and bits follow the National Semiconductor PC16550D data
// sheet; the register names are those of include/uapi/linux/serial_reg.h.
//
// # Bounds
//
// The receive queue holds at most devices.MaxInput (64 KiB) bytes, whether
// they come from the host (Input) or, with MCR.LOOP set, from the guest's
// own writes to THR. A byte that finds it full is dropped and sets the
// overrun error (LSR.OE) until the guest reads LSR, as a real 16550's
// receiver does when its FIFO overflows. Output is written to the host at
// once and never buffered here.
package serial

import (
	"io"
	"sync"

	"github.com/tandem-hv/tandem/hv/devices"
)

// Register offsets from the base port.
const (
	regData = 0 // RBR (read), THR (write); DLL when LCR.DLAB
	regIER  = 1 // interrupt enable; DLM when LCR.DLAB
	regIIR  = 2 // interrupt identification (read), FCR (write)
	regLCR  = 3
	regMCR  = 4
	regLSR  = 5
	regMSR  = 6
	regSCR  = 7

	// Size is the number of ports a 16550 decodes.
	Size = 8
)

// Register bits.
const (
	ierRDI  = 0x01 // receive data available
	ierTHRI = 0x02 // transmitter holding register empty

	iirNoInt = 0x01
	iirTHRI  = 0x02
	iirRDI   = 0x04
	iirFIFO  = 0xc0 // FIFOs enabled, as a 16550A reports

	fcrEnableFIFO = 0x01

	lcrDLAB = 0x80

	mcrDTR  = 0x01
	mcrRTS  = 0x02
	mcrOUT1 = 0x04
	mcrOUT2 = 0x08
	mcrLoop = 0x10

	lsrDR   = 0x01
	lsrOE   = 0x02 // overrun error: a received byte found the queue full
	lsrTHRE = 0x20
	lsrTEMT = 0x40

	msrCTS = 0x10
	msrDSR = 0x20
	msrRI  = 0x40
	msrDCD = 0x80
)

// UART is one 16550A. It implements bus.Device for the port-I/O bus.
type UART struct {
	out io.Writer
	irq devices.Interrupt
	// Guard contains a panic in Input, which runs on the console's
	// input goroutine, not a vCPU.
	devices.Guard

	// mu protects every register and the input queue.
	mu       sync.Mutex
	ier      uint8
	lcr      uint8
	mcr      uint8
	scr      uint8
	dll, dlm uint8
	fifo     bool
	// threPending is set when a THR-empty interrupt is owed and not yet
	// read from IIR (reading IIR clears it, per the data sheet).
	threPending bool
	// overrun is LSR.OE: a byte was dropped because in was full; reading
	// LSR clears it.
	overrun bool
	// in is the receive queue, at most devices.MaxInput bytes: the bound
	// on what the host or the guest (in loopback) can make it hold.
	in devices.InputBuffer
}

// New returns a UART writing guest output to out and raising irq.
func New(out io.Writer, irq devices.Interrupt) *UART {
	return &UART{out: out, irq: irq, dll: 12 /* 9600 baud */}
}

// Input queues bytes for the guest to read, raising the receive
// interrupt if the guest enabled it.
func (u *UART) Input(p []byte) {
	defer u.Contain("16550 UART")
	if u.Failed() {
		return
	}
	u.mu.Lock()
	kept := u.in.Push(p)
	raise := kept > 0 && u.ier&ierRDI != 0
	u.mu.Unlock()
	if raise {
		u.trigger()
	}
}

func (u *UART) trigger() {
	if u.irq != nil {
		u.irq.Trigger()
	}
}

// iir returns the highest-priority pending interrupt. Caller holds mu.
func (u *UART) iir() uint8 {
	fifo := uint8(0)
	if u.fifo {
		fifo = iirFIFO
	}
	switch {
	case u.ier&ierRDI != 0 && u.in.Len() > 0:
		return iirRDI | fifo
	case u.ier&ierTHRI != 0 && u.threPending:
		return iirTHRI | fifo
	}
	return iirNoInt | fifo
}

// Read implements bus.Device.
func (u *UART) Read(off uint64, data []byte) {
	clear(data)
	if len(data) == 0 || u.Failed() {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var v uint8
	switch off {
	case regData:
		if u.lcr&lcrDLAB != 0 {
			v = u.dll
			break
		}
		if c, ok := u.in.Pop(); ok {
			v = c
		}
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			v = u.dlm
			break
		}
		v = u.ier
	case regIIR:
		v = u.iir()
		if v&0x0f == iirTHRI {
			u.threPending = false
		}
	case regLCR:
		v = u.lcr
	case regMCR:
		v = u.mcr
	case regLSR:
		v = lsrTHRE | lsrTEMT // output never backs up: it is written at once
		if u.in.Len() > 0 {
			v |= lsrDR
		}
		if u.overrun {
			v |= lsrOE
			u.overrun = false
		}
	case regMSR:
		if u.mcr&mcrLoop != 0 {
			// In loopback the modem inputs follow the outputs; Linux's
			// probe checks this mapping.
			if u.mcr&mcrRTS != 0 {
				v |= msrCTS
			}
			if u.mcr&mcrDTR != 0 {
				v |= msrDSR
			}
			if u.mcr&mcrOUT1 != 0 {
				v |= msrRI
			}
			if u.mcr&mcrOUT2 != 0 {
				v |= msrDCD
			}
		} else {
			v = msrDCD | msrDSR | msrCTS
		}
	case regSCR:
		v = u.scr
	}
	data[0] = v
}

// Write implements bus.Device.
func (u *UART) Write(off uint64, data []byte) {
	if len(data) == 0 || u.Failed() {
		return
	}
	v := data[0]
	u.mu.Lock()
	var raise bool
	var out []byte
	switch off {
	case regData:
		if u.lcr&lcrDLAB != 0 {
			u.dll = v
			break
		}
		if u.mcr&mcrLoop != 0 {
			// The byte comes back as input, into the same bounded queue
			// as the host's: a guest looping back forever fills it once
			// and then overruns.
			if u.in.Push([]byte{v}) == 0 {
				u.overrun = true
			}
			raise = u.ier&ierRDI != 0
		} else {
			out = []byte{v}
		}
		// The byte left the holding register at once.
		u.threPending = true
		raise = raise || u.ier&ierTHRI != 0
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			u.dlm = v
			break
		}
		was := u.ier
		u.ier = v & 0x0f
		// Enabling THRI while the holding register is empty owes an
		// interrupt at once: 8250 drivers wait for it to start sending.
		if u.ier&ierTHRI != 0 && was&ierTHRI == 0 {
			u.threPending = true
			raise = true
		}
		if u.ier&ierRDI != 0 && u.in.Len() > 0 {
			raise = true
		}
	case regIIR: // FCR
		u.fifo = v&fcrEnableFIFO != 0
		if v&0x02 != 0 { // clear receive FIFO
			u.in.Reset()
		}
	case regLCR:
		u.lcr = v
	case regMCR:
		u.mcr = v & 0x1f
	case regSCR:
		u.scr = v
	}
	u.mu.Unlock()
	if out != nil && u.out != nil {
		u.out.Write(out)
	}
	if raise {
		u.trigger()
	}
}
