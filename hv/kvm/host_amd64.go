package kvm

// HostArch names the host architecture this build of Tandem runs on.
const HostArch = "x86_64"
