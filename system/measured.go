package system

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/tandem-hv/tandem/system/measure"
)

// ExpectedMeasurements is the file of expected measurements (`tandem
// image build` writes it into the data partition) that the supervisor
// looks for beside the manifest.
const ExpectedMeasurements = "measurements.json"

// MeasurementLog is the TCG event log the supervisor keeps in its run
// directory, of everything it extended into the TPM.
const MeasurementLog = "measurements.log"

// guestEntries returns each guest's entry of the manifest as measured: the
// node re-encoded as YAML, so the digest depends on the entry's content
// (comments included) and not on its indentation or its place in the
// file.
func guestEntries(root *yaml.Node) [][]byte {
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil
	}
	var out [][]byte
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "guests" || top.Content[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, n := range top.Content[i+1].Content {
			b, err := yaml.Marshal(n)
			if err != nil {
				b = nil // the node decoded already, so it encodes
			}
			out = append(out, b)
		}
	}
	return out
}

// hardwareDescription is the virtual hardware the VMM builds for the
// guest and describes to it in the device tree it generates (ARM) or its
// ACPI tables (x86), one line per part. The tables themselves are not
// what is measured: each boot's tree carries fresh random seeds
// (/chosen/rng-seed, kaslr-seed), and values KVM chooses on the board
// (the GIC's version, the PSCI version), so no image builder could
// predict it; this is everything else it is generated from, with the
// defaults applied.
func (g *Guest) hardwareDescription() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "cpus %d\nmemory %d\n", g.CPUs, g.Memory)
	for i, d := range g.Disks {
		fmt.Fprintf(&b, "virtio-blk %d readonly=%t\n", i, d.ReadOnly)
	}
	for i, n := range g.Nets {
		fmt.Fprintf(&b, "virtio-net %d mac=%x\n", i, n.MAC)
	}
	if g.Vsock != nil {
		fmt.Fprintf(&b, "virtio-vsock cid=%d\n", g.Vsock.CID)
	}
	if d := g.Display; d != nil {
		fmt.Fprintf(&b, "virtio-gpu %dx%d\nvirtio-input keyboard\nvirtio-input touchscreen\n", d.Width, d.Height)
	}
	if w := g.Watchdog; w.Timeout > 0 {
		fmt.Fprintf(&b, "watchdog timeout=%v grace=%v\n", w.Timeout, w.Grace)
	}
	for _, p := range g.Passthrough {
		fmt.Fprintf(&b, "passthrough %s no-interrupts=%t\n", p.Node, p.NoInterrupts)
	}
	if g.VTPM {
		b.WriteString("tpm tis\n")
	}
	return b.Bytes()
}

// Components hashes what the guest boots, in the order it is measured:
// its firmware or kernel, its initrd, its hardware, its command line and
// its entry of the manifest. An unreadable file is an error naming it.
func (g *Guest) Components() ([]measure.Component, error) {
	var out []measure.Component
	for _, f := range []struct{ kind, name, path string }{
		{measure.KindFirmware, g.firmwareName, g.Firmware},
		{measure.KindKernel, g.kernelName, g.Kernel},
		{measure.KindInitrd, g.initrdName, g.Initrd},
	} {
		if f.path == "" {
			continue
		}
		d, err := hashFile(f.path)
		if err != nil {
			return nil, g.errorf(f.kind, "measuring %s: %v", f.path, err)
		}
		out = append(out, measure.Component{Guest: g.Name, Kind: f.kind, Name: f.name, Digest: d})
	}
	return append(out,
		measure.Component{Guest: g.Name, Kind: measure.KindHardware, Digest: measure.Digest(g.hardwareDescription())},
		measure.Component{Guest: g.Name, Kind: measure.KindCmdline, Digest: measure.Digest([]byte(g.Cmdline))},
		measure.Component{Guest: g.Name, Kind: measure.KindManifest, Digest: measure.Digest(g.entry)},
	), nil
}

func hashFile(path string) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return d, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return d, err
	}
	h.Sum(d[:0])
	return d, nil
}

// Predict is what a board running this manifest measures once every
// guest has started: the guests in start order, each guest's components
// in order, extended into a freshly reset PCR.
func (m *Manifest) Predict() (*measure.Expected, error) {
	order, err := m.StartOrder()
	if err != nil {
		return nil, err
	}
	var cs []measure.Component
	for _, g := range order {
		gc, err := g.Components()
		if err != nil {
			return nil, err
		}
		cs = append(cs, gc...)
	}
	return measure.Predict(cs), nil
}

// DefaultStateDir is where the supervisor keeps what guests keep across
// restarts (their virtual TPMs' state): "state" beside the manifest, on
// the data partition of a board.
func (m *Manifest) DefaultStateDir() string {
	return filepath.Join(filepath.Dir(m.Path), "state")
}

// DefaultExpected is where the supervisor looks for the expected
// measurements of a manifest: ExpectedMeasurements beside it.
func (m *Manifest) DefaultExpected() string {
	return filepath.Join(filepath.Dir(m.Path), ExpectedMeasurements)
}
