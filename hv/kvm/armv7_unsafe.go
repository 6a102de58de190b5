package kvm

import (
	"fmt"
	"unsafe"
)

// ARMSetDeviceAddr places a region of a legacy in-kernel device
// (KVM_ARM_SET_DEVICE_ADDR, ARMv7 and early arm64 hosts): id is
// ARMDeviceAddrID(ARMDeviceVGICV2, VGICV2AddrTypeDist) and the like.
func (vm *VM) ARMSetDeviceAddr(id, addr uint64) error {
	a := armDeviceAddr{ID: id, Addr: addr}
	if err := ioctlPtr(vm.fd, reqARMSetDeviceAddr, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("KVM_ARM_SET_DEVICE_ADDR %#x at %#x: %w", id, addr, err)
	}
	return nil
}
