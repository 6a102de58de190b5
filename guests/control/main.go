// Command control is the control guest's /init: a 1 kHz periodic loop on
// absolute deadlines (clock_nanosleep TIMER_ABSTIME) that reports its
// deadline misses and wake-up jitter, and publishes the vehicle state at
// 100 Hz over vsock with end-to-end protection (sequence number, CRC-32).
//
// Kernel command line:
//
//	tandem.peer=CID:PORT    where to publish (default 4:5000)
//	tandem.probe=CID:PORT   try one connection there at start and report
//	                        whether it was refused (an allow-list check)
//	tandem.rtt=CID:PORT     measure round trips and throughput against an
//	                        echo service there, once, after 10 s
//	tandem.hang=DURATION    stop petting the watchdog after that long, to
//	                        show the VMM end the guest
//
// Markers: once, at start, the kernel it runs (preempt-rt=yes where
// uname -v says PREEMPT_RT, as Debian's linux-image-rt-arm64 does)
//
//	TANDEM-KERNEL release=R preempt-rt=yes|no
//
// then once a second:
//
//	TANDEM-CONTROL misses=N p50-us=X p99-us=Y max-us=Z cycles=C sent=S dropped=D connected=B
//
// misses counts cycles that woke a whole period (1 ms) or more after
// their deadline; the jitter is the wake-up lateness of every cycle in
// the last second. sent counts messages written, dropped those the
// publisher could not write because it had no connection.
package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/guests/internal/guestinit"
	"github.com/tandem-hv/tandem/guests/internal/vehicle"
)

const (
	period       = time.Millisecond
	publishEvery = 10 // cycles: 100 Hz
	reconnect    = 100 * time.Millisecond
)

func main() {
	if err := guestinit.Boot(); err != nil {
		fmt.Println("TANDEM-CONTROL fail", err)
	}
	printKernel()
	args := guestinit.CmdlineArgs()
	hang, _ := time.ParseDuration(args["hang"])
	if err := guestinit.Watchdog("TANDEM-CONTROL", hang); err != nil {
		fmt.Println("TANDEM-CONTROL fail", err)
	}
	peer := args["peer"]
	if peer == "" {
		peer = "4:5000"
	}
	if p := args["probe"]; p != "" {
		go probe(p)
	}
	if p := args["rtt"]; p != "" {
		go roundTrips(p)
	}
	pub := newPublisher(peer)
	go pub.run()
	loop(pub)
}

// probe tries one connection and says how it ended.
func probe(addr string) {
	time.Sleep(2 * time.Second)
	fd, err := dialVsock(addr)
	if err != nil {
		fmt.Printf("TANDEM-CONTROL probe=%s refused err=%q\n", addr, err.Error())
		return
	}
	unix.Close(fd)
	fmt.Printf("TANDEM-CONTROL probe=%s connected\n", addr)
}

func dialVsock(addr string) (int, error) {
	c, p, _ := strings.Cut(addr, ":")
	cid, err1 := strconv.ParseUint(c, 10, 32)
	port, err2 := strconv.ParseUint(p, 10, 32)
	if err1 != nil || err2 != nil {
		return -1, fmt.Errorf("bad address %q", addr)
	}
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrVM{CID: uint32(cid), Port: uint32(port)}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// publisher writes state messages off the loop's thread: the loop never
// blocks on the channel, the peer or a reconnection.
type publisher struct {
	addr      string
	msgs      chan [vehicle.Size]byte
	sent      atomic.Uint64
	dropped   atomic.Uint64
	connected atomic.Bool
}

func newPublisher(addr string) *publisher {
	return &publisher{addr: addr, msgs: make(chan [vehicle.Size]byte, 64)}
}

// offer hands a message over, or counts it dropped.
func (p *publisher) offer(m [vehicle.Size]byte) {
	if !p.connected.Load() {
		p.dropped.Add(1)
		return
	}
	select {
	case p.msgs <- m:
	default:
		p.dropped.Add(1)
	}
}

func (p *publisher) run() {
	for {
		fd, err := dialVsock(p.addr)
		if err != nil {
			time.Sleep(reconnect)
			continue
		}
		fmt.Printf("TANDEM-CONTROL connected peer=%s\n", p.addr)
		p.connected.Store(true)
		for m := range p.msgs {
			if _, err := unix.Write(fd, m[:]); err != nil {
				fmt.Printf("TANDEM-CONTROL disconnected peer=%s err=%q\n", p.addr, err.Error())
				break
			}
			p.sent.Add(1)
		}
		p.connected.Store(false)
		unix.Close(fd)
	drain:
		for {
			select {
			case <-p.msgs:
				p.dropped.Add(1)
			default:
				break drain
			}
		}
	}
}

// loop is the periodic task. It runs on its own locked thread and sleeps
// to absolute deadlines, so lateness does not accumulate.
func loop(pub *publisher) {
	runtime.LockOSThread()
	var next unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &next)
	var (
		seq     uint32
		late    []time.Duration
		misses  uint64
		cycles  uint64
		lastRep = time.Now()
	)
	for {
		next = unix.NsecToTimespec(unix.TimespecToNsec(next) + int64(period))
		for {
			err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &next, nil)
			if err != unix.EINTR {
				break
			}
		}
		var now unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
		l := time.Duration(unix.TimespecToNsec(now) - unix.TimespecToNsec(next))
		late = append(late, l)
		cycles++
		if l >= period {
			misses++
			// Skip the deadlines already past instead of running a burst
			// of late cycles.
			skipped := int64(l / period)
			next = unix.NsecToTimespec(unix.TimespecToNsec(next) + skipped*int64(period))
		}
		// The work of a cycle: advance the vehicle model.
		if cycles%publishEvery == 0 {
			t := float64(cycles) / 1000
			s := vehicle.State{Seq: seq, Speed: uint16(5000 + 3000*sin(t/5)), RPM: uint16(2000 + 800*sin(t/3)), Gear: uint8(3 + int(t/10)%3)}
			var m [vehicle.Size]byte
			s.Encode(m[:])
			pub.offer(m)
			seq++
		}
		if time.Since(lastRep) >= time.Second {
			slices.Sort(late)
			fmt.Printf("TANDEM-CONTROL misses=%d p50-us=%d p99-us=%d max-us=%d cycles=%d sent=%d dropped=%d connected=%v\n",
				misses, pct(late, 50).Microseconds(), pct(late, 99).Microseconds(), late[len(late)-1].Microseconds(),
				cycles, pub.sent.Load(), pub.dropped.Load(), pub.connected.Load())
			late = late[:0]
			lastRep = time.Now()
		}
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

func sin(x float64) float64 { return math.Sin(x) }

// roundTrips measures 64-byte round trips and bulk throughput against an
// echo service, off the loop's thread, and prints
// TANDEM-CONTROL rtt-p50-us=… rtt-p99-us=… throughput-mibs=….
func roundTrips(addr string) {
	time.Sleep(10 * time.Second)
	fd, err := dialVsock(addr)
	for i := 0; err != nil && i < 40; i++ { // the peer may still be booting
		time.Sleep(500 * time.Millisecond)
		fd, err = dialVsock(addr)
	}
	if err != nil {
		fmt.Printf("TANDEM-CONTROL rtt fail err=%q\n", err.Error())
		return
	}
	defer unix.Close(fd)
	f := os.NewFile(uintptr(fd), "rtt")
	msg, back := make([]byte, 64), make([]byte, 64)
	var rtts []time.Duration
	for range 100 {
		t0 := time.Now()
		if _, err := f.Write(msg); err != nil {
			fmt.Printf("TANDEM-CONTROL rtt fail n=%d err=%q\n", len(rtts), err.Error())
			return
		}
		if _, err := io.ReadFull(f, back); err != nil {
			fmt.Printf("TANDEM-CONTROL rtt fail n=%d err=%q\n", len(rtts), err.Error())
			return
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	const total = 1 << 20
	chunk := make([]byte, 64<<10)
	t0 := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, f, total)
		done <- err
	}()
	for sent := 0; sent < total; sent += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			fmt.Printf("TANDEM-CONTROL rtt fail throughput err=%q\n", err.Error())
			return
		}
	}
	if err := <-done; err != nil {
		fmt.Printf("TANDEM-CONTROL rtt fail throughput err=%q\n", err.Error())
		return
	}
	mibs := float64(total) / (1 << 20) / time.Since(t0).Seconds()
	fmt.Printf("TANDEM-CONTROL rtt-p50-us=%d rtt-p99-us=%d rtt-n=%d throughput-mibs=%.1f\n",
		pct(rtts, 50).Microseconds(), pct(rtts, 99).Microseconds(), len(rtts), mibs)
}

// printKernel prints the TANDEM-KERNEL marker.
func printKernel() {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		fmt.Println("TANDEM-CONTROL fail uname:", err)
		return
	}
	rt := "no"
	if strings.Contains(unix.ByteSliceToString(u.Version[:]), "PREEMPT_RT") {
		rt = "yes"
	}
	fmt.Printf("TANDEM-KERNEL release=%s preempt-rt=%s\n", unix.ByteSliceToString(u.Release[:]), rt)
}
