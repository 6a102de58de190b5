package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// framesPerRound is how many 1280x720 frames a round of the frame part
// flushes.
const framesPerRound = 50

// frame measures what a flushed 1280x720 frame costs the host: the
// virtio-gpu device's BenchmarkGPUFrame (a full-frame
// TRANSFER_TO_HOST_2D from scattered guest pages and a RESOURCE_FLUSH,
// through the control queue) in each emulated host, its process's CPU
// time per frame. It has no peer (Cloud Hypervisor and Firecracker have
// no display), so the row is reported, not compared.
func (b *bench) frame() error {
	for _, arch := range b.arches {
		if err := b.frameIn(arch); err != nil {
			return fmt.Errorf("in the emulated %s host: %w", arch, err)
		}
	}
	return nil
}

func (b *bench) frameIn(arch string) error {
	bin, err := b.goBuild("./hv/devices/virtio", goarch(arch), true)
	if err != nil {
		return err
	}
	var script strings.Builder
	for i := 1; i <= b.rounds; i++ {
		fmt.Fprintf(&script, "echo \"FRAME %d $(/bin/virtio.test -test.run '^$' -test.bench 'GPUFrame$' -test.benchtime %dx 2>&1 | grep -o '[0-9.]* cpu-ns/frame')\"\n", i, framesPerRound)
	}
	fmt.Fprintf(os.Stderr, "bench: virtio-gpu frame cost, %d rounds of %d frames, in an emulated %s host\n", b.rounds, framesPerRound, arch)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    arch,
		Files:   map[string]string{"/bin/virtio.test": bin},
		Script:  script.String(),
		Memory:  "1G",
		Timeout: time.Duration(b.rounds) * 5 * time.Minute,
		Console: progress(),
		Icount:  b.icountFor(arch, "frame"),
	})
	if err != nil {
		return err
	}
	vs, err := parseFrames(res.Output, b.rounds)
	if err != nil {
		return fmt.Errorf("%w:\n%s", err, res.Tail(20))
	}
	for i, v := range vs {
		b.samples = append(b.samples, sample{"frame", arch, "1280x720 frame host CPU", "tandem", i + 1, v, "ns"})
	}
	b.strips = append(b.strips, strip{Title: "1280x720 frame, host CPU, " + arch, Unit: "ms", Tandem: scaled(vs, 1e-6)})
	b.rows = append(b.rows, row{name: fmt.Sprintf("1280x720 frame flushed (virtio-gpu), host CPU, %s", arch), tandem: median(vs) * 1e-6, unit: "ms", report: true})
	return nil
}

// frameLine is a result line of the frame script.
var frameLine = regexp.MustCompile(`FRAME (\d+) ([0-9.]+) cpu-ns/frame`)

// parseFrames returns each round's CPU nanoseconds per frame from the
// script's output, which must have all rounds.
func parseFrames(out string, rounds int) ([]float64, error) {
	var vs []float64
	for _, m := range frameLine.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("frame round %s: %w", m[1], err)
		}
		vs = append(vs, v)
	}
	if len(vs) != rounds {
		return nil, fmt.Errorf("%d frame results of %d rounds", len(vs), rounds)
	}
	return vs, nil
}
