package kvm

import (
	"strings"
	"testing"
)

// TestARMv7Encodings pins the ARMv7 host ABI to the values of Linux 5.6's
// arch/arm/include/uapi/asm/kvm.h (the last kernel with 32-bit ARM KVM
// hosts) and include/uapi/linux/kvm.h. Each want is derived by hand from
// the header's macros in the comment; QEMU's target/arm/kvm32.c and
// kvmtool's arm/aarch32 use the same ids.
func TestARMv7Encodings(t *testing.T) {
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		// KVM_REG_ARM (0x4000000000000000) | KVM_REG_SIZE_U32 (0x0020000000000000)
		// | KVM_REG_ARM_CORE (0x10 << 16) | offsetof(struct kvm_regs, f) / 4
		{"KVM_REG_ARM_CORE_REG(usr_regs.ARM_r0)", ARMv7R(0), 0x4020000000100000},
		{"KVM_REG_ARM_CORE_REG(usr_regs.ARM_r1)", ARMv7R(1), 0x4020000000100001},
		{"KVM_REG_ARM_CORE_REG(usr_regs.ARM_r2)", ARMv7R(2), 0x4020000000100002},
		{"KVM_REG_ARM_CORE_REG(usr_regs.ARM_pc)", RegARMv7PC, 0x402000000010000f},
		{"KVM_REG_ARM_CORE_REG(usr_regs.ARM_cpsr)", RegARMv7CPSR, 0x4020000000100010},
		{"KVM_REG_ARM_CORE_REG(svc_regs[0]) (SP_svc)", ARMv7CoreReg(armv7SvcRegsOff), 0x4020000000100012},
		{"KVM_REG_ARM_CORE_REG(fiq_regs[7]) (SPSR_fiq)", ARMv7CoreReg(armv7FiqRegsOff + 7*4), 0x4020000000100025},
		{"sizeof(struct kvm_regs)", SizeofARMv7Regs, 152},
		// KVM_REG_ARM | KVM_REG_SIZE_U32 | 15 << KVM_REG_ARM_COPROC_SHIFT
		// | CRn << 11 | CRm << 7 | opc1 << 3 | opc2
		{"MPIDR (p15, 0, c0, c0, 5)", RegARMv7MPIDR, 0x40200000000f0005},
		{"CNTKCTL (p15, 0, c14, c1, 0)", ARMv7CP15Reg(0, 14, 1, 0), 0x40200000000f7080},
		{"VBAR (p15, 0, c12, c0, 0)", ARMv7CP15Reg(0, 12, 0, 0), 0x40200000000f6000},
		// KVM_REG_ARM | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW (0x14 << 16) | 0
		{"KVM_REG_ARM_PSCI_VERSION", RegARMv7PSCIVersion, 0x4030000000140000},
		{"KVM_ARM_TARGET_CORTEX_A15", ARMv7TargetCortexA15, 0},
		{"KVM_ARM_TARGET_CORTEX_A7", ARMv7TargetCortexA7, 1},
		{"KVM_ARM_VCPU_POWER_OFF", ARMv7VCPUPowerOff, 0},
		{"KVM_ARM_VCPU_PSCI_0_2", ARMv7VCPUPSCI02, 1},
		{"KVM_DEV_TYPE_ARM_VGIC_V2", DevTypeARMVGICV2, 5},
		// KVM_ARM_DEVICE_VGIC_V2 << KVM_ARM_DEVICE_ID_SHIFT | KVM_VGIC_V2_ADDR_TYPE_*
		{"KVM_VGIC_V2_ADDR_TYPE_DIST id", ARMDeviceAddrID(ARMDeviceVGICV2, VGICV2AddrTypeDist), 0x0},
		{"KVM_VGIC_V2_ADDR_TYPE_CPU id", ARMDeviceAddrID(ARMDeviceVGICV2, VGICV2AddrTypeCPU), 0x1},
		// _IOW(KVMIO, 0xab, struct kvm_arm_device_addr): 1 << 30 | 16 << 16 | 0xae << 8 | 0xab
		{"KVM_ARM_SET_DEVICE_ADDR", uint64(reqARMSetDeviceAddr), 0x4010aeab},
		{"KVM_GET_ONE_REG (the same number, on a vCPU)", uint64(reqGetOneReg), 0x4010aeab},
		{"KVM_CREATE_IRQCHIP", uint64(reqCreateIRQChip), 0xae60},
		{"KVM_ARM_VCPU_INIT", uint64(reqArmVCPUInit), 0x4020aeae},
		{"KVM_ARM_PREFERRED_TARGET", uint64(reqArmPreferredTarget), 0x8020aeaf},
		{"SVC_MODE | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT", CPSRModeSVC | CPSRA | CPSRI | CPSRF, 0x1d3},
		{"PSR_T_BIT", CPSRT, 0x20},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

// TestAArch32ABI checks that the two hosts' views name the same guest
// state: the arm64 view reaches the AArch32 registers through the 64-bit
// struct kvm_regs, whose regs[n] is rn and whose pstate is the CPSR.
func TestAArch32ABI(t *testing.T) {
	tests := []struct {
		name      string
		abi       AArch32ABI
		r2, cpsr  uint64
		psci02    uint
		needs32   bool
		mpidrBase uint64
	}{
		{"arm64", AArch32OnARM64, 0x6030000000100004, 0x6030000000100042, 2, true, 0x603000000013c005},
		{"ARMv7", AArch32OnARMv7, 0x4020000000100002, 0x4020000000100010, 1, false, 0x40200000000f0005},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.abi
			if a.R2 != tt.r2 || a.CPSR != tt.cpsr || a.PSCI02 != tt.psci02 || a.NeedsEL132Bit != tt.needs32 || a.MPIDR != tt.mpidrBase {
				t.Errorf("%s ABI = %+v, want r2 %#x, cpsr %#x, PSCI 0.2 bit %d, EL1_32BIT needed %v, MPIDR %#x", tt.name, a, tt.r2, tt.cpsr, tt.psci02, tt.needs32, tt.mpidrBase)
			}
		})
	}
	if HostArch == "arm" && HostAArch32.Host != "ARMv7" || HostArch == "arm64" && HostAArch32.Host != "arm64" {
		t.Errorf("HostAArch32 on %s = %s", HostArch, HostAArch32.Host)
	}
}

// TestARMv7HostCheck: an ARMv7 host without /dev/kvm is told why, and
// which kernel would work.
func TestARMv7HostCheck(t *testing.T) {
	tests := []struct {
		release string
		haveKVM bool
		want    []string // "" for nil
	}{
		{"5.4.0-1-armmp-lpae", true, nil},
		{"6.1.0-50-armmp-lpae", false, []string{"kernel 6.1 has no KVM", "Linux 5.7 removed 32-bit ARM KVM hosts", "5.6 or older (5.4 LTS)", "CONFIG_KVM=y"}},
		{"5.7.0", false, []string{"kernel 5.7 has no KVM", "Linux 5.7 removed"}},
		{"5.6.19-bsp", false, []string{"kernel 5.6 has no /dev/kvm", "CONFIG_KVM=y", "HYP mode"}},
		{"4.19.232-rt104", false, []string{"kernel 4.19 has no /dev/kvm", "HYP mode"}},
		{"3.9.0", false, []string{"kernel 3.9 has no /dev/kvm"}},
		{"3.4.113-sun7i", false, []string{"kernel 3.4 predates KVM", "3.9 to 5.6"}},
		{"", false, []string{`kernel "" has no /dev/kvm`, "3.9 to 5.6"}},
		{"unknown", false, []string{`kernel "unknown"`}},
		{"10", false, []string{`kernel "10"`}},
	}
	for _, tt := range tests {
		err := ARMv7HostCheck(tt.release, tt.haveKVM)
		if tt.want == nil {
			if err != nil {
				t.Errorf("ARMv7HostCheck(%q, %v) = %v, want nil", tt.release, tt.haveKVM, err)
			}
			continue
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("ARMv7HostCheck(%q, %v) = %v, want it to contain %q", tt.release, tt.haveKVM, err, w)
			}
		}
	}
}
