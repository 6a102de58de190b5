//go:build !amd64 && !arm64 && !arm

package kvm

// HostArch names the host architecture this build of Tandem runs on. KVM
// guests on this host are not supported: Run returns an error naming it.
const HostArch = "unsupported"

// runningArchRequests: none, as no guest runs here.
var runningArchRequests []Request
