/*
 * kvmloop: the smallest KVM userspace loop that handles a guest's port or
 * MMIO writes, the baseline Tandem's exit path is measured against.
 *
 * The guests are internal/tinyguest's. On x86 (real mode, at 0x1000):
 *   pio:  1000: ee  out dx, al ; 1001: eb fd  jmp 0x1000
 *   mmio: 1000: b8 00 20  mov ax, 0x2000 ; 1003: 8e d8  mov ds, ax
 *         1005: a2 00 00  mov [0], al    ; 1008: eb fb  jmp 0x1005
 * On arm64 (EL1, MMU off, at 0x1000, x1 = 0x20000), mmio only:
 *   1000: b9000020  str w0, [x1] ; 1004: 17ffffff  b 0x1000
 * Each exit is "handled" by reading the written byte, as a device would.
 *
 * Usage: kvmloop pio|mmio N   prints "ns/exit <float>" for N exits.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

static void die(const char *what) { perror(what); exit(1); }

#if defined(__x86_64__)
static const uint8_t pio_code[] = {0xee, 0xeb, 0xfd};
static const uint8_t mmio_code[] = {0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xa2, 0x00, 0x00, 0xeb, 0xfb};

static void reset(int vm, int cpu) {
	(void)vm;
	struct kvm_sregs s;
	if (ioctl(cpu, KVM_GET_SREGS, &s) < 0) die("KVM_GET_SREGS");
	s.cs.base = 0; s.cs.selector = 0;
	if (ioctl(cpu, KVM_SET_SREGS, &s) < 0) die("KVM_SET_SREGS");
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
	if (ioctl(cpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
}
#elif defined(__aarch64__)
static const uint8_t pio_code[] = {0};
static const uint8_t mmio_code[] = {0x20, 0x00, 0x00, 0xb9, 0xff, 0xff, 0xff, 0x17};

static void set_core(int cpu, size_t off, uint64_t v) {
	struct kvm_one_reg r = {
		.id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (off / sizeof(uint32_t)),
		.addr = (uintptr_t)&v,
	};
	if (ioctl(cpu, KVM_SET_ONE_REG, &r) < 0) die("KVM_SET_ONE_REG");
}

static void reset(int vm, int cpu) {
	struct kvm_vcpu_init init;
	if (ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init) < 0) die("KVM_ARM_PREFERRED_TARGET");
	if (ioctl(cpu, KVM_ARM_VCPU_INIT, &init) < 0) die("KVM_ARM_VCPU_INIT");
	set_core(cpu, offsetof(struct kvm_regs, regs.pstate), 0x3c5); /* EL1h, DAIF masked */
	set_core(cpu, offsetof(struct kvm_regs, regs.regs[1]), 0x20000);
	set_core(cpu, offsetof(struct kvm_regs, regs.pc), 0x1000);
}
#else
#error "kvmloop: x86_64 or aarch64 only"
#endif

int main(int argc, char **argv) {
	int mmio = argc > 1 && strcmp(argv[1], "mmio") == 0;
	long n = argc > 2 ? atol(argv[2]) : 100000;
#if defined(__aarch64__)
	if (!mmio) { fprintf(stderr, "kvmloop: arm64 has no port I/O\n"); return 2; }
#endif
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) die("KVM_CREATE_VM");
	size_t ramsz = 0x10000;
	uint8_t *ram = mmap(NULL, ramsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) die("mmap");
	if (mmio) memcpy(ram + 0x1000, mmio_code, sizeof mmio_code);
	else memcpy(ram + 0x1000, pio_code, sizeof pio_code);
	struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = ramsz, .userspace_addr = (uintptr_t)ram};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
	int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (cpu < 0) die("KVM_CREATE_VCPU");
	int mmsz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, mmsz, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
	if (run == MAP_FAILED) die("mmap kvm_run");
	reset(vm, cpu);
	volatile uint8_t sink = 0;
	/* Warm up before timing, as the Go benchmark does (exitWarmUp). */
	for (int i = 0; i < 1000; i++) if (ioctl(cpu, KVM_RUN, 0) < 0) die("KVM_RUN");
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		if (ioctl(cpu, KVM_RUN, 0) < 0) die("KVM_RUN");
		if (run->exit_reason == KVM_EXIT_IO) sink = *((uint8_t *)run + run->io.data_offset);
		else if (run->exit_reason == KVM_EXIT_MMIO) sink = run->mmio.data[0];
		else { fprintf(stderr, "exit %u\n", run->exit_reason); return 1; }
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("ns/exit %.1f\n", ns / n);
	(void)sink;
	return 0;
}
