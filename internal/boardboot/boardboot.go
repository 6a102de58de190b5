// Package boardboot proves board images on QEMU's emulations of the real
// boards. Its tests build a board's image with `tandem image build` and
// the demo system (internal/e2e) and boot it the way `tandem emulate`
// does (package emulate: for the ZCU102, QEMU loads the image's kernel,
// the board's device tree and the host initramfs with its boot script's
// command line, as the board's U-Boot would, and the image is the SD
// card), once through the test harness (internal/qemuhost, BoardImage)
// and once through emulate.Run: the host must find its own board, start
// KVM, mount the data partition from the card and run both guests to
// their markers, then power off.
//
// What QEMU's model cannot do the board's firmware does (load BOOT.BIN,
// run U-Boot). docs/emulated-hosts.md says what each emulated board
// lacks.
package boardboot
