package kvm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestStructSizes pins every mirror's size: the kernel encodes the size in
// each ioctl request and rejects a mismatch.
func TestStructSizes(t *testing.T) {
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_userspace_memory_region", unsafe.Sizeof(userspaceMemoryRegion{}), sizeofUserspaceMemoryRegion},
		{"kvm_irq_level", unsafe.Sizeof(irqLevel{}), sizeofIRQLevel},
		{"kvm_irqfd", unsafe.Sizeof(irqfd{}), sizeofIRQFD},
		{"kvm_ioeventfd", unsafe.Sizeof(ioeventfd{}), sizeofIOEventFD},
		{"kvm_enable_cap", unsafe.Sizeof(enableCap{}), sizeofEnableCap},
		{"kvm_one_reg", unsafe.Sizeof(oneReg{}), sizeofOneReg},
		{"kvm_create_device", unsafe.Sizeof(createDevice{}), sizeofCreateDevice},
		{"kvm_device_attr", unsafe.Sizeof(deviceAttr{}), sizeofDeviceAttr},
		{"kvm_vcpu_init", unsafe.Sizeof(VCPUInit{}), sizeofVCPUInit},
		{"kvm_run head", unsafe.Sizeof(runHeader{}), exitUnionOffset},
		{"kvm_run.io", unsafe.Sizeof(runIO{}), 16},
		{"kvm_run.mmio", unsafe.Sizeof(runMMIO{}), 24},
		{"kvm_run.system_event", unsafe.Sizeof(runSystemEvent{}), 136},
		{"kvm_regs", unsafe.Sizeof(Regs{}), sizeofRegs},
		{"kvm_translation", unsafe.Sizeof(translation{}), sizeofTranslation},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), sizeofSregs},
		{"kvm_fpu", unsafe.Sizeof(FPU{}), sizeofFPU},
		{"kvm_msr_entry", unsafe.Sizeof(MSREntry{}), 16},
		{"kvm_msrs", unsafe.Sizeof(msrsHeader{}), sizeofMSRs},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_cpuid2", unsafe.Sizeof(cpuid2Header{}), sizeofCPUID2},
		{"kvm_lapic_state", unsafe.Sizeof(LAPICState{}), sizeofLAPICState},
		{"kvm_pit_config", unsafe.Sizeof(pitConfig{}), sizeofPITConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("sizeof(%s) = %d, want %d", tt.name, tt.got, tt.want)
			}
		})
	}
}

// uapiProbe is compiled against the host's <linux/kvm.h> to print the
// kernel's own values, which TestAgainstKernelHeaders compares with ours.
const uapiProbe = `#include <stdio.h>
#include <stddef.h>
#include <linux/kvm.h>
#define P(name, v) printf("%s %llu\n", name, (unsigned long long)(v))
int main(void) {
	P("KVM_GET_API_VERSION", KVM_GET_API_VERSION);
	P("KVM_CREATE_VM", KVM_CREATE_VM);
	P("KVM_CHECK_EXTENSION", KVM_CHECK_EXTENSION);
	P("KVM_GET_VCPU_MMAP_SIZE", KVM_GET_VCPU_MMAP_SIZE);
	P("KVM_CREATE_VCPU", KVM_CREATE_VCPU);
	P("KVM_SET_USER_MEMORY_REGION", KVM_SET_USER_MEMORY_REGION);
	P("KVM_CREATE_IRQCHIP", KVM_CREATE_IRQCHIP);
	P("KVM_IRQ_LINE", KVM_IRQ_LINE);
	P("KVM_IRQFD", KVM_IRQFD);
	P("KVM_IOEVENTFD", KVM_IOEVENTFD);
	P("KVM_RUN", KVM_RUN);
	P("KVM_GET_MP_STATE", KVM_GET_MP_STATE);
	P("KVM_SET_MP_STATE", KVM_SET_MP_STATE);
	P("KVM_ENABLE_CAP", KVM_ENABLE_CAP);
	P("KVM_GET_ONE_REG", KVM_GET_ONE_REG);
	P("KVM_SET_ONE_REG", KVM_SET_ONE_REG);
	P("KVM_CREATE_DEVICE", KVM_CREATE_DEVICE);
	P("KVM_SET_DEVICE_ATTR", KVM_SET_DEVICE_ATTR);
	P("KVM_HAS_DEVICE_ATTR", KVM_HAS_DEVICE_ATTR);
	P("KVM_CAP_ARM_PMU_V3", KVM_CAP_ARM_PMU_V3);
	P("KVM_CAP_ARM_SVE", KVM_CAP_ARM_SVE);
#if defined(__aarch64__) || defined(__arm__)
	P("KVM_ARM_VCPU_INIT", KVM_ARM_VCPU_INIT);
	P("KVM_ARM_PREFERRED_TARGET", KVM_ARM_PREFERRED_TARGET);
	P("KVM_ARM_VCPU_FINALIZE", KVM_ARM_VCPU_FINALIZE);
#endif
#ifdef __x86_64__
	P("KVM_SET_TSS_ADDR", KVM_SET_TSS_ADDR);
	P("KVM_SET_IDENTITY_MAP_ADDR", KVM_SET_IDENTITY_MAP_ADDR);
	P("KVM_CREATE_PIT2", KVM_CREATE_PIT2);
	P("KVM_GET_SUPPORTED_CPUID", KVM_GET_SUPPORTED_CPUID);
	P("KVM_GET_REGS", KVM_GET_REGS);
	P("KVM_SET_REGS", KVM_SET_REGS);
	P("KVM_GET_SREGS", KVM_GET_SREGS);
	P("KVM_SET_SREGS", KVM_SET_SREGS);
	P("KVM_TRANSLATE", KVM_TRANSLATE);
	P("KVM_SET_MSRS", KVM_SET_MSRS);
	P("KVM_GET_FPU", KVM_GET_FPU);
	P("KVM_SET_FPU", KVM_SET_FPU);
	P("KVM_GET_LAPIC", KVM_GET_LAPIC);
	P("KVM_SET_LAPIC", KVM_SET_LAPIC);
	P("KVM_SET_CPUID2", KVM_SET_CPUID2);
#endif
	P("offsetof(kvm_run.io)", offsetof(struct kvm_run, io));
	P("offsetof(kvm_run.mmio.len)", offsetof(struct kvm_run, mmio.len));
	P("offsetof(kvm_run.system_event.ndata)", offsetof(struct kvm_run, system_event.ndata));
	P("offsetof(kvm_run.io.data_offset)", offsetof(struct kvm_run, io.data_offset));
	return 0;
}
`

// TestAgainstKernelHeaders compiles a probe against the installed kernel
// UAPI headers and checks every request number and offset we encode.
func TestAgainstKernelHeaders(t *testing.T) {
	if _, err := os.Stat("/usr/include/linux/kvm.h"); err != nil {
		t.Skipf("no kernel UAPI headers (/usr/include/linux/kvm.h): install linux-libc-dev to run this check")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skipf("no C compiler to build the UAPI probe: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte(uapiProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("building UAPI probe: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running UAPI probe: %v", err)
	}
	kernel := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("probe line %q: %v", line, err)
		}
		kernel[f[0]] = v
	}
	ours := map[string]uint64{
		"KVM_GET_API_VERSION": uint64(reqGetAPIVersion), "KVM_CREATE_VM": uint64(reqCreateVM),
		"KVM_CHECK_EXTENSION": uint64(reqCheckExtension), "KVM_GET_VCPU_MMAP_SIZE": uint64(reqGetVCPUMmapSize),
		"KVM_CREATE_VCPU": uint64(reqCreateVCPU), "KVM_SET_USER_MEMORY_REGION": uint64(reqSetUserMemoryRegion),
		"KVM_CREATE_IRQCHIP": uint64(reqCreateIRQChip), "KVM_IRQ_LINE": uint64(reqIRQLine),
		"KVM_IRQFD": uint64(reqIRQFD), "KVM_IOEVENTFD": uint64(reqIOEventFD), "KVM_RUN": uint64(reqRun),
		"KVM_GET_MP_STATE": uint64(reqGetMPState), "KVM_SET_MP_STATE": uint64(reqSetMPState),
		"KVM_ENABLE_CAP": uint64(reqEnableCap), "KVM_GET_ONE_REG": uint64(reqGetOneReg),
		"KVM_SET_ONE_REG": uint64(reqSetOneReg), "KVM_CREATE_DEVICE": uint64(reqCreateDevice),
		"KVM_SET_DEVICE_ATTR": uint64(reqSetDeviceAttr), "KVM_HAS_DEVICE_ATTR": uint64(reqHasDeviceAttr),
		"KVM_ARM_VCPU_INIT": uint64(reqArmVCPUInit), "KVM_ARM_PREFERRED_TARGET": uint64(reqArmPreferredTarget),
		"KVM_ARM_VCPU_FINALIZE": uint64(reqArmVCPUFinalize),
		"KVM_CAP_ARM_PMU_V3":    uint64(CapARMPMUv3), "KVM_CAP_ARM_SVE": uint64(CapARMSVE),
		"KVM_SET_TSS_ADDR": uint64(reqKVMSetTSSAddr), "KVM_SET_IDENTITY_MAP_ADDR": uint64(reqKVMSetIdentityMapAddr),
		"KVM_CREATE_PIT2": uint64(reqCreatePIT2), "KVM_GET_SUPPORTED_CPUID": uint64(reqGetSupportedCPUID),
		"KVM_GET_REGS": uint64(reqGetRegs), "KVM_SET_REGS": uint64(reqSetRegs),
		"KVM_GET_SREGS": uint64(reqGetSregs), "KVM_SET_SREGS": uint64(reqSetSregs), "KVM_TRANSLATE": uint64(reqTranslate),
		"KVM_SET_MSRS": uint64(reqSetMSRs), "KVM_GET_FPU": uint64(reqGetFPU), "KVM_SET_FPU": uint64(reqSetFPU),
		"KVM_GET_LAPIC": uint64(reqGetLAPIC), "KVM_SET_LAPIC": uint64(reqSetLAPIC),
		"KVM_SET_CPUID2":                       uint64(reqSetCPUID2),
		"offsetof(kvm_run.io)":                 exitUnionOffset,
		"offsetof(kvm_run.mmio.len)":           exitUnionOffset + uint64(unsafe.Offsetof(runMMIO{}.Len)),
		"offsetof(kvm_run.system_event.ndata)": exitUnionOffset + uint64(unsafe.Offsetof(runSystemEvent{}.NData)),
		"offsetof(kvm_run.io.data_offset)":     exitUnionOffset + uint64(unsafe.Offsetof(runIO{}.DataOffset)),
	}
	for name, want := range kernel {
		t.Run(name, func(t *testing.T) {
			got, ok := ours[name]
			if !ok {
				t.Fatalf("%s: no value of ours to compare", name)
			}
			if got != want {
				t.Errorf("%s = %#x, want %#x (linux/kvm.h)", name, got, want)
			}
		})
	}
	if !bytes.Contains(out, []byte("KVM_RUN")) {
		t.Fatalf("probe printed no request numbers:\n%s", out)
	}
	// The sandbox's list names each request as linux/kvm.h does.
	for _, r := range RunningRequests() {
		if want, ok := kernel[r.Name]; !ok || uint64(r.Number) != want {
			t.Errorf("RunningRequests(): %s = %#x, want %#x (linux/kvm.h)", r.Name, r.Number, want)
		}
	}
}
