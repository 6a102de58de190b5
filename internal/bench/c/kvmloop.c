/*
 * kvmloop: the smallest KVM userspace loop that handles a guest's port
 * writes, the baseline Tandem's exit path is measured against.
 *
 * The guest is the same as hv/kvm's loopCode (real mode at 0x1000):
 *   1000: ee     out dx, al
 *   1001: eb fd  jmp 0x1000
 * Each KVM_EXIT_IO is "handled" by reading the byte, as a device would.
 *
 * Usage: kvmloop N   prints "ns/exit <float>" for N exits.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 100000;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) die("KVM_CREATE_VM");
	size_t ramsz = 0x10000;
	uint8_t *ram = mmap(NULL, ramsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) die("mmap");
	const uint8_t code[] = {0xee, 0xeb, 0xfd};
	memcpy(ram + 0x1000, code, sizeof code);
	struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = ramsz, .userspace_addr = (uintptr_t)ram};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
	int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (cpu < 0) die("KVM_CREATE_VCPU");
	int mmsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, mmsz, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
	if (run == MAP_FAILED) die("mmap kvm_run");
	struct kvm_sregs s;
	if (ioctl(cpu, KVM_GET_SREGS, &s) < 0) die("KVM_GET_SREGS");
	s.cs.base = 0; s.cs.selector = 0;
	if (ioctl(cpu, KVM_SET_SREGS, &s) < 0) die("KVM_SET_SREGS");
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
	if (ioctl(cpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
	volatile uint8_t sink = 0;
	/* Warm up, as the Go benchmark's first iterations do. */
	for (int i = 0; i < 1000; i++) if (ioctl(cpu, KVM_RUN, 0) < 0) die("KVM_RUN");
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (ioctl(cpu, KVM_RUN, 0) < 0) die("KVM_RUN");
		if (run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "exit %u\n", run->exit_reason); return 1; }
		sink = *((uint8_t *)run + run->io.data_offset);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("ns/exit %.1f\n", ns / n);
	(void)sink;
	return 0;
}
