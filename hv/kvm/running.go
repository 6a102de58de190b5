package kvm

// Request is an ioctl request number with its name in linux/kvm.h, for a
// seccomp filter's list (package sandbox) and its messages.
type Request struct {
	Name   string
	Number uintptr
}

// RunningRequests are the KVM requests a VM makes once it is built, on
// this host: entering the guest, and reading a vCPU's state for DumpState
// and for a guest's end reason. Everything else (creating the VM, its
// memory, devices and vCPUs, setting registers) is done before the guest
// runs, so a sandboxed VMM's filter allows only these.
func RunningRequests() []Request {
	rs := []Request{{"KVM_RUN", reqRun}, {"KVM_GET_MP_STATE", reqGetMPState}}
	return append(rs, runningArchRequests...)
}
