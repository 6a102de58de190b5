// Package measure is Tandem's measured boot: the supervisor hashes each
// component of a guest before the guest's VMM starts, extends the digest
// into one PCR of the board's TPM 2.0 and keeps a TCG event log of what
// it extended; the image builder predicts that log and the PCR's value;
// attestation compares a running board with the prediction and names the
// component that differs.
//
// It talks to the TPM with go-tpm's tpm2 package, through /dev/tpmrm0 on
// a board or a software TPM's (swtpm's) UNIX socket in tests.
package measure

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// PCR is the PCR Tandem extends its guests' measurements into, in the
// SHA-256 bank. The TCG PC Client Platform Firmware Profile gives PCRs
// 0-7 to firmware and 8-15 to the operating system. Of those, boot
// loaders measure the host kernel, initrd and command line into 8 and 9
// (U-Boot's and GRUB's measured boot), IMA uses 10, unified kernel images
// and shim 11-14, and systemd 15 for the machine's identity (the UAPI
// group's PCR registry); a Tandem host boots no UKI, shim or systemd, so
// 15 is free there. Unlike 16 and 23 it is not resettable from locality
// 0 (the PC Client Platform TPM Profile's PCR attributes): nothing on the
// host can clear it and replay a log of its choosing, only a reset of the
// board starts it from zeros again. A PCR of the guests' own also keeps
// the predicted value independent of the board's firmware and boot
// loader.
const PCR = 15

// Component kinds, in the order each guest's are measured.
const (
	KindFirmware = "firmware" // the firmware a guest starts in, in place of a kernel
	KindKernel   = "kernel"   // the guest kernel file
	KindInitrd   = "initrd"   // its initramfs, if any
	KindHardware = "hardware" // what the VMM describes to the guest (device tree or ACPI tables)
	KindCmdline  = "cmdline"  // the kernel command line
	KindManifest = "manifest" // the guest's entry of system.yaml
)

// eventPrefix opens the data of every event Tandem extends, so its events
// are told apart from others in the same log.
const eventPrefix = "tandem"

// Component is one measured part of one guest.
type Component struct {
	Guest string
	Kind  string
	// Name says which, where a kind has one: the file as the manifest
	// names it.
	Name   string
	Digest [sha256.Size]byte
}

// String names the component for a person: "control kernel vmlinuz".
func (c Component) String() string {
	s := c.Guest + " " + c.Kind
	if c.Name != "" {
		s += " " + c.Name
	}
	return s
}

// Same reports whether c and o are the same component (not whether their
// digests are).
func (c Component) Same(o Component) bool {
	return c.Guest == o.Guest && c.Kind == o.Kind && c.Name == o.Name
}

// Hex is the digest in hex.
func (c Component) Hex() string { return hex.EncodeToString(c.Digest[:]) }

// Event is the component as an EV_IPL event of PCR: its data is
// "tandem GUEST KIND[ NAME]".
func (c Component) Event() Event {
	return Event{PCR: PCR, Type: EvIPL, Digest: c.Digest, Data: []byte(eventPrefix + " " + c.String())}
}

// ComponentOf reads a Tandem event back; ok is false for events Tandem
// did not write (another PCR, another type, other data).
func ComponentOf(e Event) (c Component, ok bool) {
	if e.PCR != PCR || e.Type != EvIPL {
		return c, false
	}
	f := strings.SplitN(string(e.Data), " ", 4)
	if len(f) < 3 || f[0] != eventPrefix {
		return c, false
	}
	c = Component{Guest: f[1], Kind: f[2], Digest: e.Digest}
	if len(f) == 4 {
		c.Name = f[3]
	}
	return c, true
}

// Components are the Tandem components among events, in order.
func Components(events []Event) []Component {
	var out []Component
	for _, e := range events {
		if c, ok := ComponentOf(e); ok {
			out = append(out, c)
		}
	}
	return out
}

// Events turns components into the events that measure them, in order.
func Events(cs []Component) []Event {
	out := make([]Event, len(cs))
	for i, c := range cs {
		out[i] = c.Event()
	}
	return out
}

// Digest hashes a component's bytes.
func Digest(b []byte) [sha256.Size]byte { return sha256.Sum256(b) }

// FormatLog prints events as `tandem measurements` shows them: one line
// each, with the PCR, the event type, the SHA-256 digest and the data.
func FormatLog(events []Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %-4s %-8s %-64s  %s\n", "#", "PCR", "TYPE", "SHA256", "EVENT")
	for i, e := range events {
		fmt.Fprintf(&b, "%-4d %-4d %-8s %-64s  %s\n", i+1, e.PCR, typeName(e.Type), hex.EncodeToString(e.Digest[:]), printable(e.Data))
	}
	return b.String()
}

func typeName(t uint32) string {
	switch t {
	case EvIPL:
		return "EV_IPL"
	case EvNoAction:
		return "NO_ACT"
	}
	return fmt.Sprintf("%#x", t)
}

// printable shows event data as text, replacing what a terminal would
// act on: the data of a log read from a file is not trusted.
func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '.'
		}
		return r
	}, string(b))
}
