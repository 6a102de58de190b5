// The arm64 bare-metal test guest, for the virt-board layout of
// arch/armvirt. It runs at EL1 with the MMU off, as the boot protocol
// leaves the boot CPU (x0: the device tree's address), from any 2 KiB
// aligned load address (its vector table's alignment): every address of
// its own is PC-relative, so the same bytes run as an ELF executable (entered at e_entry, _start) and as a raw
// image (entered at its first byte, which is _start).
//
// It prints on the PL011:
//
//	TANDEM-BM64 cpu0 el=1 dtb=ok
//	TANDEM-BM64 cpu1 on mpidr=0x80000001 context=0x7a4d
//	TANDEM-BM64 gic=v3                   (or v2)
//	TANDEM-BM64 irq intid=27
//	TANDEM-BM64 system off
//
// and powers off with PSCI SYSTEM_OFF. The second line comes from the
// second CPU, which PSCI CPU_ON starts at `secondary` with x0 the context
// id; the fourth from the IRQ handler, taking the virtual timer's PPI
// through the GIC. Any other exception prints its vector offset, ESR,
// ELR and FAR and powers off.
//
// Registers: puts, puthex and putdec use x0-x4, x9 and x10 and return
// through x30; the program keeps its own state in x19-x28. The boot CPU
// has a stack, for the IRQ handler's saved registers.

	// arch/armvirt/layout.go: QEMU virt's map.
	.equ	UART, 0x09000000	// PL011
	.equ	GICD, 0x08000000	// GIC distributor
	.equ	GICC, 0x08010000	// GICv2 CPU interface
	.equ	GICR, 0x080a0000	// GICv3 redistributor of vCPU 0

	// PL011 TRM (ARM DDI 0183G) 3.3.
	.equ	UARTDR, 0x000
	.equ	UARTFR, 0x018
	.equ	UARTFR_TXFF, 5		// bit: transmit FIFO full

	// PSCI (ARM DEN 0022) 5.1, SMC32/SMC64 function ids, called with HVC
	// as the device tree's psci node says (method = "hvc").
	.equ	PSCI_CPU_OFF, 0x84000002
	.equ	PSCI_CPU_ON, 0xc4000003
	.equ	PSCI_SYSTEM_OFF, 0x84000008
	.equ	CPU1_MPIDR, 1		// target_cpu: Aff0 1
	.equ	CPU1_CONTEXT, 0x7a4d	// handed back in the secondary's x0

	// GIC architecture (ARM IHI 0069, IHI 0048) register offsets.
	.equ	GICD_CTLR, 0x0000
	.equ	GICD_IGROUPR0, 0x0080
	.equ	GICD_ISENABLER0, 0x0100
	.equ	GICD_IPRIORITYR, 0x0400
	.equ	GICD_CTLR_RWP, 31	// bit: register write pending (GICv3)
	.equ	GICR_WAKER, 0x0014
	.equ	GICR_WAKER_SLEEP, 1	// bit: ProcessorSleep
	.equ	GICR_WAKER_ASLEEP, 2	// bit: ChildrenAsleep
	.equ	GICR_SGI, 0x10000	// the SGI and PPI frame
	.equ	GICR_IGROUPR0, 0x0080
	.equ	GICR_ISENABLER0, 0x0100
	.equ	GICR_IPRIORITYR, 0x0400
	.equ	GICC_CTLR, 0x0000
	.equ	GICC_PMR, 0x0004
	.equ	GICC_IAR, 0x000c
	.equ	GICC_EOIR, 0x0010
	.equ	INTID_SPURIOUS, 1020	// 1020-1023 are special

	// The EL1 virtual timer's PPI: 11, INTID 16 + 11 (the device tree's
	// timer node; KVM's default).
	.equ	TIMER_INTID, 27
	.equ	TIMER_PRIORITY, 0xa0
	.equ	TIMER_HZ, 100		// fires 10 ms after it is set

	// ID_AA64PFR0_EL1.GIC, bits 27:24: the GICv3 system registers exist.
	.equ	PFR0_GIC_SHIFT, 24

	.macro	putc, reg		// \reg (a w register) to the PL011
	movz	x10, #(UART >> 16), lsl #16
9:	ldr	w9, [x10, #UARTFR]
	tbnz	w9, #UARTFR_TXFF, 9b
	strb	\reg, [x10, #UARTDR]
	.endm

	.macro	say, label		// the string at \label
	adr	x0, \label
	bl	puts
	.endm

	.text
	.globl	_start
_start:
	mov	x19, x0			// the device tree
	adr	x0, vectors
	msr	vbar_el1, x0
	isb
	adr	x1, __bss_start
	adr	x2, __bss_end
1:	cmp	x1, x2
	b.hs	2f
	str	xzr, [x1], #8
	b	1b
2:	adr	x1, stack_top
	mov	sp, x1
	say	msg_cpu0
	mrs	x0, CurrentEL
	lsr	x0, x0, #2
	bl	putdec
	say	msg_dtb
	adr	x0, msg_ok
	ldr	w1, [x19]
	ldr	w2, =0xedfe0dd0		// FDT magic 0xd00dfeed, big-endian
	cmp	w1, w2
	b.eq	1f
	adr	x0, msg_bad
1:	bl	puts
	say	msg_nl

	// Start the second CPU and wait until it has printed its line.
	ldr	x0, =PSCI_CPU_ON
	mov	x1, #CPU1_MPIDR
	adr	x2, secondary
	mov	x3, #CPU1_CONTEXT
	hvc	#0
	cbz	x0, 1f
	mov	x20, x0
	say	msg_cpu_on_failed
	mov	x0, x20
	bl	puthex
	say	msg_nl
	b	system_off
1:	adr	x1, cpu1_up
2:	ldr	w2, [x1]
	cbz	w2, 2b

	// The GIC: its system registers where ID_AA64PFR0_EL1 says they
	// exist and ICC_SRE_EL1.SRE sticks (GICv3), else the memory-mapped
	// CPU interface (GICv2).
	mov	x24, #2
	mrs	x1, id_aa64pfr0_el1
	ubfx	x1, x1, #PFR0_GIC_SHIFT, #4
	cbz	x1, 1f
	mrs	x1, icc_sre_el1
	orr	x1, x1, #1
	msr	icc_sre_el1, x1
	isb
	mrs	x1, icc_sre_el1
	tbz	x1, #0, 1f
	mov	x24, #3
1:	movz	x21, #(GICD >> 16), lsl #16
	movz	x22, #(GICC >> 16), lsl #16
	movz	x23, #(GICR >> 16), lsl #16
	cmp	x24, #3
	b.ne	gicv2

gicv3:
	// Affinity routing and both groups on (KVM's vGICv3 has a single
	// security state: GICD_CTLR.DS is 1).
	mov	w1, #(1 << 4) | (1 << 1) | (1 << 0)
	str	w1, [x21, #GICD_CTLR]
1:	ldr	w1, [x21, #GICD_CTLR]
	tbnz	w1, #GICD_CTLR_RWP, 1b
	// Wake this CPU's redistributor.
	ldr	w1, [x23, #GICR_WAKER]
	bic	w1, w1, #(1 << GICR_WAKER_SLEEP)
	str	w1, [x23, #GICR_WAKER]
1:	ldr	w1, [x23, #GICR_WAKER]
	tbnz	w1, #GICR_WAKER_ASLEEP, 1b
	// The timer's PPI: group 1, a middle priority, enabled.
	add	x2, x23, #GICR_SGI
	ldr	w1, [x2, #GICR_IGROUPR0]
	orr	w1, w1, #(1 << TIMER_INTID)
	str	w1, [x2, #GICR_IGROUPR0]
	mov	w1, #TIMER_PRIORITY
	strb	w1, [x2, #GICR_IPRIORITYR + TIMER_INTID]
	mov	w1, #(1 << TIMER_INTID)
	str	w1, [x2, #GICR_ISENABLER0]
	// The CPU interface: every priority passes, group 1 on.
	mov	x1, #0xff
	msr	icc_pmr_el1, x1
	mov	x1, #1
	msr	icc_igrpen1_el1, x1
	isb
	say	msg_gicv3
	b	timer

gicv2:
	// The timer's PPI: group 0 (signalled as IRQ while GICC_CTLR.FIQEn
	// is 0), a middle priority, enabled; distributor and CPU interface
	// on for both groups, every priority passing.
	ldr	w1, [x21, #GICD_IGROUPR0]
	bic	w1, w1, #(1 << TIMER_INTID)
	str	w1, [x21, #GICD_IGROUPR0]
	mov	w1, #TIMER_PRIORITY
	strb	w1, [x21, #GICD_IPRIORITYR + TIMER_INTID]
	mov	w1, #(1 << TIMER_INTID)
	str	w1, [x21, #GICD_ISENABLER0]
	mov	w1, #(1 << 1) | (1 << 0)
	str	w1, [x21, #GICD_CTLR]
	mov	w1, #0xff
	str	w1, [x22, #GICC_PMR]
	mov	w1, #(1 << 1) | (1 << 0)
	str	w1, [x22, #GICC_CTLR]
	say	msg_gicv2

timer:
	// The virtual timer, TIMER_HZ⁻¹ s from now, its interrupt unmasked;
	// then wait for the handler to have taken it.
	mrs	x1, cntfrq_el0
	mov	x2, #TIMER_HZ
	udiv	x1, x1, x2
	msr	cntv_tval_el0, x1
	mov	x1, #1			// ENABLE, IMASK clear
	msr	cntv_ctl_el0, x1
	isb
	msr	daifclr, #2		// IRQs on
	adr	x20, timer_seen
1:	wfi
	ldr	w1, [x20]
	cbz	w1, 1b
	msr	daifset, #2

system_off:
	say	msg_off
	ldr	x0, =PSCI_SYSTEM_OFF
	hvc	#0
	say	msg_off_failed
halt:	wfi
	b	halt

// secondary is where PSCI CPU_ON starts the second CPU, x0 the context
// id. It prints its line, says so in cpu1_up and turns itself off.
secondary:
	mov	x19, x0
	adr	x0, vectors
	msr	vbar_el1, x0
	isb
	say	msg_cpu1
	mrs	x0, mpidr_el1
	bl	puthex
	say	msg_context
	mov	x0, x19
	bl	puthex
	say	msg_nl
	adr	x1, cpu1_up
	mov	w2, #1
	str	w2, [x1]
	ldr	x0, =PSCI_CPU_OFF
	hvc	#0
	say	msg_cpu_off_failed
	b	halt

// irq takes an interrupt from the GIC (x24: its version), prints its
// INTID, turns the timer off if it was the timer's, and ends it. It
// keeps every register it uses on the stack.
irq:
	stp	x0, x1, [sp, #-80]!
	stp	x2, x3, [sp, #16]
	stp	x4, x9, [sp, #32]
	stp	x10, x25, [sp, #48]
	stp	x26, x30, [sp, #64]
	cmp	x24, #3
	b.ne	1f
	mrs	x25, icc_iar1_el1
	b	2f
1:	ldr	w25, [x22, #GICC_IAR]
2:	and	x26, x25, #0x3ff
	say	msg_irq
	mov	x0, x26
	bl	putdec
	say	msg_nl
	cmp	x26, #INTID_SPURIOUS
	b.hs	3f
	cmp	x26, #TIMER_INTID
	b.ne	1f
	msr	cntv_ctl_el0, xzr	// the line drops
	isb
	adr	x1, timer_seen
	mov	w2, #1
	str	w2, [x1]
1:	cmp	x24, #3
	b.ne	2f
	msr	icc_eoir1_el1, x25
	b	3f
2:	str	w25, [x22, #GICC_EOIR]
3:	ldp	x26, x30, [sp, #64]
	ldp	x10, x25, [sp, #48]
	ldp	x4, x9, [sp, #32]
	ldp	x2, x3, [sp, #16]
	ldp	x0, x1, [sp], #80
	eret

// unexpected reports any other exception (x28: its vector's offset) and
// powers off.
unexpected:
	say	msg_unexpected
	mov	x0, x28
	bl	puthex
	say	msg_esr
	mrs	x0, esr_el1
	bl	puthex
	say	msg_elr
	mrs	x0, elr_el1
	bl	puthex
	say	msg_far
	mrs	x0, far_el1
	bl	puthex
	say	msg_nl
	b	system_off

// puts prints the NUL-terminated string at x0.
puts:
	ldrb	w1, [x0], #1
	cbz	w1, 1f
	putc	w1
	b	puts
1:	ret

// puthex prints x0 in hexadecimal, 0x and no leading zeros.
puthex:
	mov	w1, #'0'
	putc	w1
	mov	w1, #'x'
	putc	w1
	mov	x2, #60			// the nibble's shift
	mov	x3, #0			// a digit printed yet
1:	lsr	x1, x0, x2
	and	x1, x1, #0xf
	orr	x3, x3, x1
	cbnz	x2, 2f
	mov	x3, #1			// the last digit always
2:	cbz	x3, 4f
	cmp	x1, #10
	b.lo	3f
	add	x1, x1, #('a' - '0' - 10)
3:	add	w1, w1, #'0'
	putc	w1
4:	cbz	x2, 5f
	sub	x2, x2, #4
	b	1b
5:	ret

// putdec prints x0 in decimal.
putdec:
	mov	x2, #10
	mov	x3, #1			// the power of ten of the next digit
1:	mul	x4, x3, x2
	cmp	x4, x0
	b.hi	2f
	mov	x3, x4
	b	1b
2:	udiv	x4, x0, x3
	msub	x0, x4, x3, x0
	add	w4, w4, #'0'
	putc	w4
	udiv	x3, x3, x2
	cbnz	x3, 2b
	ret

	.ltorg

// The vector table (Arm ARM D1.10.2): 16 entries of 0x80 bytes, 2 KiB
// aligned. This program runs on SP_EL1, so its IRQs come to 0x280.
	.macro	vector, off
	.balign	0x80
	.if	\off == 0x280
	b	irq
	.else
	mov	x28, #\off
	b	unexpected
	.endif
	.endm

	.balign	0x800
vectors:
	.irp	off, 0x000, 0x080, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0x480, 0x500, 0x580, 0x600, 0x680, 0x700, 0x780
	vector	\off
	.endr

msg_cpu0:		.asciz	"TANDEM-BM64 cpu0 el="
msg_dtb:		.asciz	" dtb="
msg_ok:			.asciz	"ok"
msg_bad:		.asciz	"bad"
msg_cpu1:		.asciz	"TANDEM-BM64 cpu1 on mpidr="
msg_context:		.asciz	" context="
msg_gicv3:		.asciz	"TANDEM-BM64 gic=v3\n"
msg_gicv2:		.asciz	"TANDEM-BM64 gic=v2\n"
msg_irq:		.asciz	"TANDEM-BM64 irq intid="
msg_off:		.asciz	"TANDEM-BM64 system off\n"
msg_cpu_on_failed:	.asciz	"TANDEM-BM64 PSCI CPU_ON failed: "
msg_cpu_off_failed:	.asciz	"TANDEM-BM64 PSCI CPU_OFF returned\n"
msg_off_failed:		.asciz	"TANDEM-BM64 PSCI SYSTEM_OFF returned\n"
msg_unexpected:		.asciz	"TANDEM-BM64 unexpected exception: vector="
msg_esr:		.asciz	" esr="
msg_elr:		.asciz	" elr="
msg_far:		.asciz	" far="
msg_nl:			.asciz	"\n"

	.bss
	.balign	8
cpu1_up:	.word	0	// set by the second CPU once it has printed
timer_seen:	.word	0	// set by the IRQ handler on the timer's INTID
	.balign	16
stack:		.space	4096	// the boot CPU's
stack_top:
