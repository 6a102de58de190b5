package kvm

// HostArch names the host architecture this build of Tandem runs on.
const HostArch = "arm"

// runningArchRequests: an ARM vCPU's pc and processor state.
var runningArchRequests = []Request{{"KVM_GET_ONE_REG", reqGetOneReg}}
