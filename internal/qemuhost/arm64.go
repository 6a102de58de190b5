package qemuhost

// Arm64GICv2 is the arm64 host with a GICv2 instead of a GICv3: the same
// QEMU virt board, kernel and cache, with gic-version=2. QEMU's GICv2
// model has the virtualization extensions (GICH/GICV) when the board has
// EL2, so the host's KVM offers guests a vGICv2 and no vGICv3: the
// fallback path of arch/arm64.
const Arm64GICv2 = "arm64-gicv2"

func init() {
	a := arches["arm64"]
	a.name = Arm64GICv2
	a.machine = []string{"-M", "virt,virtualization=on,gic-version=2", "-cpu", "max,pauth-impdef=on", "-accel", "tcg,thread=multi"}
	arches[Arm64GICv2] = a
}
