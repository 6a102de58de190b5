package kvm

// HostAArch32 is the ABI of this host's KVM for 32-bit ARM guests: an
// ARMv7 host's own.
var HostAArch32 = AArch32OnARMv7
