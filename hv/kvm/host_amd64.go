package kvm

// HostArch names the host architecture this build of Tandem runs on.
const HostArch = "x86_64"

// runningArchRequests: an x86 vCPU's registers, and where an address of
// the guest's is in its RAM (DumpState's stack words).
var runningArchRequests = []Request{{"KVM_GET_REGS", reqGetRegs}, {"KVM_GET_SREGS", reqGetSregs}, {"KVM_TRANSLATE", reqTranslate}}
