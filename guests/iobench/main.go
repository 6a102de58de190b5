// Command iobench is the init (PID 1) of `make bench`'s I/O guest. It
// runs on a stock Debian kernel under Tandem or under a peer VMM, measures
// the virtio devices the same way under both, prints one line per device
// and powers the VM off:
//
//	TANDEM-IO blk seq-read-MBps=… seq-write-MBps=… randread-qd1-iops=… randread-qd32-iops=… randwrite-qd1-iops=… randwrite-qd32-iops=…
//	TANDEM-IO vsock rtt-p50-us=… rtt-p99-us=… rtt-mean-us=…
//	TANDEM-IO net tx-MBps=…
//	TANDEM-IO done
//
// or "TANDEM-IO fail <why>". Which tests run comes from the kernel's
// command line: tandem.io=blk, tandem.io=vsock, tandem.io=net or several
// (comma-separated).
// The vsock test is the client of an echo service on the host (CID 2,
// port 5000): it sends fixed-size messages one at a time and times each
// until its echo is back (vsock.go). The net test gives the virtio-net NIC
// a static address and streams to a TCP sink at the host's address on the
// TAP behind it (net.go). The block tests read and write /dev/vda
// (its whole content is overwritten) with O_DIRECT, so every access
// reaches the device rather than the guest's page cache: sequentially in
// 1 MiB requests, and 4 KiB requests at random 4 KiB-aligned offsets, one
// at a time (queue depth 1) and 32 at a time (queue depth 32, from 32
// threads). Offsets come from a fixed seed, so both VMMs see the same
// requests.
//
// Like every guest program it uses only the standard library and x/sys.
package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/guests/internal/guestinit"
)

// marker starts every line the bench reads.
const marker = "TANDEM-IO"

// Sizes of the block tests.
const (
	seqChunk   = 1 << 20
	randChunk  = 4 << 10
	randOpsQD1 = 2000
	// randOpsQD32 requests are spread over qd32 threads.
	randOpsQD32 = 8000
	qd32        = 32
)

func main() {
	if err := run(); err != nil {
		say("fail " + err.Error())
	} else {
		say("done")
	}
	powerOff()
}

func say(s string) { fmt.Printf("\n%s %s\n", marker, s) }

func run() error {
	if err := guestinit.Boot(); err != nil {
		return err
	}
	tests := guestinit.CmdlineArgs()["io"]
	if tests == "" {
		return errors.New("no tests asked for (tandem.io=blk, tandem.io=vsock or tandem.io=net on the kernel command line)")
	}
	for _, t := range strings.Split(tests, ",") {
		switch t {
		case "blk":
			r, err := blockBench("/dev/vda")
			if err != nil {
				return fmt.Errorf("blk: %w", err)
			}
			say("blk " + r)
		case "vsock":
			r, err := vsockBench()
			if err != nil {
				return fmt.Errorf("vsock: %w", err)
			}
			say("vsock " + r)
		case "net":
			r, err := netBench()
			if err != nil {
				return fmt.Errorf("net: %w", err)
			}
			say("net " + r)
		default:
			return fmt.Errorf("unknown test %q (want blk, vsock or net)", t)
		}
	}
	return nil
}

// blockBench runs the block tests on dev and returns their results as
// key=value words.
func blockBench(dev string) (string, error) {
	if err := waitFor(dev, 10*time.Second); err != nil {
		return "", err
	}
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dev, err)
	}
	defer unix.Close(fd)
	size, err := unix.Seek(fd, 0, 2)
	if err != nil {
		return "", err
	}
	size -= size % seqChunk
	if size < seqChunk {
		return "", fmt.Errorf("%s: %d bytes, too small", dev, size)
	}
	var words []string
	for _, w := range []bool{true, false} { // write first: the reads then read what was written
		s, err := sequential(fd, size, w)
		if err != nil {
			return "", err
		}
		words = append(words, fmt.Sprintf("seq-%s-MBps=%.1f", rw(w), float64(size)/s/1e6))
	}
	for _, w := range []bool{false, true} {
		for _, qd := range []int{1, qd32} {
			ops := randOpsQD1
			if qd > 1 {
				ops = randOpsQD32
			}
			s, err := random(fd, size, w, qd, ops)
			if err != nil {
				return "", err
			}
			words = append(words, fmt.Sprintf("rand%s-qd%d-iops=%.0f", rw(w), qd, float64(ops)/s))
		}
	}
	return strings.Join(words, " "), nil
}

func rw(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

// sequential reads or writes the first size bytes of fd in seqChunk
// requests and returns the seconds it took.
func sequential(fd int, size int64, write bool) (float64, error) {
	buf, err := alignedBuffer(seqChunk)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(buf)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for off := int64(0); off < size; off += seqChunk {
		if err := transfer(fd, buf, off, write); err != nil {
			return 0, err
		}
	}
	return time.Since(start).Seconds(), nil
}

// random makes ops randChunk requests at random aligned offsets below
// size, qd at a time, and returns the seconds they took.
func random(fd int, size int64, write bool, qd, ops int) (float64, error) {
	blocks := uint64(size / randChunk)
	errs := make([]error, qd)
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < qd; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf, err := alignedBuffer(randChunk)
			if err != nil {
				errs[t] = err
				return
			}
			defer unix.Munmap(buf)
			rng := rand.New(rand.NewPCG(uint64(t), 0x5eed))
			for i := t; i < ops; i += qd {
				off := int64(rng.Uint64N(blocks)) * randChunk
				if err := transfer(fd, buf, off, write); err != nil {
					errs[t] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start).Seconds(), errors.Join(errs...)
}

func transfer(fd int, buf []byte, off int64, write bool) error {
	var n int
	var err error
	if write {
		n, err = unix.Pwrite(fd, buf, off)
	} else {
		n, err = unix.Pread(fd, buf, off)
	}
	if err != nil {
		return fmt.Errorf("%s of %d bytes at %d: %w", rw(write), len(buf), off, err)
	}
	if n != len(buf) {
		return fmt.Errorf("%s of %d bytes at %d: %d done", rw(write), len(buf), off, n)
	}
	return nil
}

// alignedBuffer returns n bytes of page-aligned memory, as O_DIRECT wants.
func alignedBuffer(n int) ([]byte, error) {
	return unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
}

// waitFor waits for a device node: the driver probes in the kernel's own
// threads after its module is loaded.
func waitFor(dev string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(dev); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %v", dev, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// powerOff ends the VM; PID 1 must not exit, so it sleeps if that fails.
func powerOff() {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		say("fail power off: " + err.Error())
	}
	for {
		time.Sleep(time.Hour)
	}
}
