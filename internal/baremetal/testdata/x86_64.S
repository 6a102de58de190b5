# The x86_64 bare-metal test guest (baremetal.X86Code): entered in
# 64-bit mode with RSI the zero page, it prints a marker and the command
# line boot_params.hdr.cmd_line_ptr points at over COM1, then powers off
# through the ACPI sleep control register (SLP_TYP 5, SLP_EN).
	.intel_syntax noprefix
	.code64
	.text
_start:
	mov  esp, 0x102000
	lea  rdi, [rip + hello]
	call puts
	mov  edi, [rsi + 0x228]
	call puts
	lea  rdi, [rip + bye]
	call puts
	mov  dx, 0x600
	mov  al, 0x34
	out  dx, al
1:	hlt
	jmp  1b
puts:
	mov  dx, 0x3f8
2:	mov  al, [rdi]
	test al, al
	jz   3f
	out  dx, al
	inc  rdi
	jmp  2b
3:	ret
hello:	.asciz "TANDEM-BAREMETAL-OK cmdline=["
bye:	.asciz "]\n"
