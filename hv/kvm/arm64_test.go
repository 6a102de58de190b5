package kvm

import "testing"

// TestARM64Encodings pins every arm64 register id, feature bit and vGIC
// constant to the value of the kernel's UAPI headers (Linux 6.1,
// arch/arm64/include/uapi/asm/kvm.h and include/uapi/linux/kvm.h, as
// shipped in Debian's linux-libc-dev:arm64). The register ids are the
// well-known ones QEMU and crosvm use too (MPIDR_EL1 0x603000000013c005).
func TestARM64Encodings(t *testing.T) {
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		// KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | offsetof(struct kvm_regs, f)/4
		{"KVM_REG_ARM_CORE_REG(regs.regs[0])", ARM64XReg(0), 0x6030000000100000},
		{"KVM_REG_ARM_CORE_REG(regs.regs[1])", ARM64XReg(1), 0x6030000000100002},
		{"KVM_REG_ARM_CORE_REG(regs.regs[30])", ARM64XReg(30), 0x603000000010003c},
		{"KVM_REG_ARM_CORE_REG(regs.sp)", RegARM64SP, 0x603000000010003e},
		{"KVM_REG_ARM_CORE_REG(regs.pc)", RegARM64PC, 0x6030000000100040},
		{"KVM_REG_ARM_CORE_REG(regs.pstate)", RegARM64PState, 0x6030000000100042},
		{"ARM64_SYS_REG(3, 0, 0, 0, 5) MPIDR_EL1", RegMPIDR, 0x603000000013c005},
		{"KVM_REG_ARM_TIMER_CNT = ARM64_SYS_REG(3, 3, 14, 3, 2)", ARM64SysReg(3, 3, 14, 3, 2), 0x603000000013df1a},
		{"KVM_REG_ARM_PSCI_VERSION", RegPSCIVersion, 0x6030000000140000},
		{"KVM_ARM_VCPU_POWER_OFF", ARMVCPUPowerOff, 0},
		{"KVM_ARM_VCPU_EL1_32BIT", ARMVCPUEL132Bit, 1},
		{"KVM_ARM_VCPU_PSCI_0_2", ARMVCPUPSCI02, 2},
		{"KVM_ARM_VCPU_PMU_V3", ARMVCPUPMUv3, 3},
		{"KVM_ARM_VCPU_SVE", ARMVCPUSVE, 4},
		{"KVM_ARM_VCPU_PMU_V3_CTRL", ARMVCPUPMUv3Ctrl, 0},
		{"KVM_ARM_VCPU_PMU_V3_IRQ", ARMVCPUPMUv3IRQ, 0},
		{"KVM_ARM_VCPU_PMU_V3_INIT", ARMVCPUPMUv3Init, 1},
		{"KVM_CAP_ARM_PMU_V3", uint64(CapARMPMUv3), 126},
		{"KVM_CAP_ARM_SVE", uint64(CapARMSVE), 170},
		{"KVM_ARM_VCPU_FINALIZE = _IOW(KVMIO, 0xc2, int)", uint64(reqArmVCPUFinalize), 0x4004aec2},
		{"KVM_ARM_IRQ_TYPE_SPI, INTID 33", uint64(ARMIRQ(ARMIRQTypeSPI, 0, 33)), 0x01000021},
		{"KVM_ARM_IRQ_TYPE_PPI, vCPU 3, INTID 27", uint64(ARMIRQ(ARMIRQTypePPI, 3, 27)), 0x0203001b},
		{"KVM_ARM_IRQ_TYPE_PPI, vCPU 257 (VCPU2)", uint64(ARMIRQ(ARMIRQTypePPI, 257, 27)), 0x1201001b},
		{"KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2", SystemEventResetFlagPSCIReset2, 1},
		{"PSR_MODE_EL1h|PSR_{D,A,I,F}_BIT", PStateModeEL1h | PStateD | PStateA | PStateI | PStateF, 0x3c5},
		{"KVM_DEV_TYPE_ARM_VGIC_V2", DevTypeARMVGICV2, 5},
		{"KVM_DEV_TYPE_ARM_VGIC_V3", DevTypeARMVGICV3, 7},
		{"KVM_DEV_TYPE_ARM_VGIC_ITS", DevTypeARMVGICITS, 8},
		{"KVM_DEV_ARM_VGIC_GRP_ADDR", VGICGrpAddr, 0},
		{"KVM_DEV_ARM_VGIC_GRP_DIST_REGS", VGICGrpDistRegs, 1},
		{"KVM_DEV_ARM_VGIC_GRP_CPU_REGS", VGICGrpCPURegs, 2},
		{"KVM_DEV_ARM_VGIC_GRP_NR_IRQS", VGICGrpNrIRQs, 3},
		{"KVM_DEV_ARM_VGIC_GRP_CTRL", VGICGrpCtrl, 4},
		{"KVM_DEV_ARM_VGIC_CTRL_INIT", VGICCtrlInit, 0},
		{"KVM_VGIC_V2_ADDR_TYPE_DIST", VGICV2AddrTypeDist, 0},
		{"KVM_VGIC_V2_ADDR_TYPE_CPU", VGICV2AddrTypeCPU, 1},
		{"KVM_VGIC_V3_ADDR_TYPE_DIST", VGICV3AddrTypeDist, 2},
		{"KVM_VGIC_V3_ADDR_TYPE_REDIST", VGICV3AddrTypeRedist, 3},
		{"KVM_VGIC_ITS_ADDR_TYPE", VGICITSAddrType, 4},
		{"KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION", VGICV3AddrTypeRedistRegion, 5},
		{"KVM_VGIC_V2_DIST_SIZE", VGICV2DistSize, 0x1000},
		{"KVM_VGIC_V2_CPU_SIZE", VGICV2CPUSize, 0x2000},
		{"KVM_VGIC_V3_DIST_SIZE", VGICV3DistSize, 0x10000},
		{"KVM_VGIC_V3_REDIST_SIZE", VGICV3RedistSize, 0x20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
			}
		})
	}
}

func TestVCPUInitSetFeature(t *testing.T) {
	var i VCPUInit
	i.SetFeature(ARMVCPUPSCI02)
	i.SetFeature(ARMVCPUPowerOff)
	i.SetFeature(33)
	if i.Features[0] != 0b101 || i.Features[1] != 0b10 {
		t.Errorf("Features = %#x, want [0x5 0x2 ...]", i.Features)
	}
}
