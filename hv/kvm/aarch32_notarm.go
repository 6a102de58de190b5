//go:build !arm

package kvm

// HostAArch32 is the ABI of this host's KVM for 32-bit ARM guests: the
// AArch32 view of an arm64 vCPU. (Hosts other than arm64 never use it:
// vmm refuses AArch32 guests there first.)
var HostAArch32 = AArch32OnARM64
