package main

import "sync/atomic"

// spinBatch is how many additions a spinner makes between two leaveGuest
// calls: well under a millisecond on real hardware.
const spinBatch = 1 << 14

// spun counts the spinners' additions; atomic, so the compiler keeps
// the work.
var spun atomic.Uint64

// spin is the CPU stress: one thread of arithmetic that never sleeps. Every
// spinBatch additions it leaves the guest once (leaveGuest), which on real
// hardware costs about a microsecond. Under QEMU's software-emulated
// nested SVM it is what lets the emulated host's CPU take its own
// interrupts again: a guest loop with no exit at all (Go compiled the old
// spinner to a bare jmp to itself) was seen holding an emulated CPU for
// minutes, with the host's timer interrupts and NMIs never delivered
// (README, Testing).
func spin() {
	for {
		for range spinBatch {
			spun.Add(1)
		}
		leaveGuest()
	}
}
