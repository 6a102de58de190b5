// Command infotainment is the infotainment guest's /init: a dashboard
// that receives the control guest's vehicle state over vsock, checks each
// message's end-to-end protection, shows the state once a second and
// counts faults by kind.
//
// Kernel command line:
//
//	tandem.port=PORT      the vsock port to listen on (default 5000)
//	tandem.stress=LIST    load to make while it runs: cpu, disk (comma-separated)
//	tandem.hang=DURATION  stop petting the watchdog after that long, to show
//	                      the VMM end the guest
//
// It also echoes whatever is sent to vsock port 5002, for round-trip and
// throughput measurements.
//
// Marker, once a second:
//
//	TANDEM-INFO received=N faults=F crc=C repeated=R reordered=O lost=L connections=K speed=… rpm=… gear=…
//
// A new connection starts a new sequence (the sender restarted or
// reconnected): its first message synchronises, it is not a fault.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/guests/internal/guestinit"
	"github.com/tandem-hv/tandem/guests/internal/vehicle"
)

type counters struct {
	mu                               sync.Mutex
	received, crc, repeated, reorder uint64
	lost, conns                      uint64
	last                             vehicle.State
}

func (c *counters) faults() uint64 { return c.crc + c.repeated + c.reorder + c.lost }

func main() {
	if err := guestinit.Boot(); err != nil {
		fmt.Println("TANDEM-INFO fail", err)
	}
	args := guestinit.CmdlineArgs()
	hang, _ := time.ParseDuration(args["hang"])
	if err := guestinit.Watchdog("TANDEM-INFO", hang); err != nil {
		fmt.Println("TANDEM-INFO fail", err)
	}
	port := uint32(5000)
	if p, err := strconv.ParseUint(args["port"], 10, 32); err == nil {
		port = uint32(p)
	}
	for _, s := range strings.Split(args["stress"], ",") {
		switch s {
		case "cpu":
			for range runtime.NumCPU() {
				go spin()
			}
		case "disk":
			go diskLoad("/dev/vda")
		}
	}
	go echo(5002)
	var c counters
	go report(&c)
	if err := serve(port, &c); err != nil {
		fmt.Println("TANDEM-INFO fail", err)
	}
	for {
		time.Sleep(time.Hour) // PID 1 must not exit
	}
}

func serve(port uint32, c *counters) error {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("vsock socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		return fmt.Errorf("vsock bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 4); err != nil {
		return err
	}
	fmt.Printf("TANDEM-INFO listening port=%d\n", port)
	for {
		nfd, sa, err := unix.Accept(fd)
		if err != nil {
			continue
		}
		peer := ""
		if vm, ok := sa.(*unix.SockaddrVM); ok {
			peer = fmt.Sprintf("%d:%d", vm.CID, vm.Port)
		}
		fmt.Printf("TANDEM-INFO connection from=%s\n", peer)
		c.mu.Lock()
		c.conns++
		c.mu.Unlock()
		go receive(os.NewFile(uintptr(nfd), "vsock"), c)
	}
}

// receive checks every message of one connection.
func receive(f *os.File, c *counters) {
	defer f.Close()
	var b [vehicle.Size]byte
	first := true
	var last uint32
	for {
		if _, err := io.ReadFull(f, b[:]); err != nil {
			fmt.Printf("TANDEM-INFO connection closed err=%q\n", err.Error())
			return
		}
		s, ok := vehicle.Decode(b[:])
		c.mu.Lock()
		c.received++
		switch {
		case !ok:
			c.crc++
		case first:
			first = false
		case s.Seq == last:
			c.repeated++
		case s.Seq < last:
			c.reorder++
		case s.Seq > last+1:
			c.lost += uint64(s.Seq - last - 1)
		}
		if ok {
			last = s.Seq
			c.last = s
		}
		c.mu.Unlock()
	}
}

func report(c *counters) {
	for range time.Tick(time.Second) {
		c.mu.Lock()
		fmt.Printf("TANDEM-INFO received=%d faults=%d crc=%d repeated=%d reordered=%d lost=%d connections=%d seq=%d speed=%.1f rpm=%d gear=%d\n",
			c.received, c.faults(), c.crc, c.repeated, c.reorder, c.lost, c.conns, c.last.Seq,
			float64(c.last.Speed)/100, c.last.RPM, c.last.Gear)
		c.mu.Unlock()
	}
}

func spin() {
	x := 0
	for {
		x++
	}
}

// diskLoad reads and rewrites the disk in 1 MiB blocks, forever.
func diskLoad(dev string) {
	f, err := os.OpenFile(dev, os.O_RDWR|os.O_SYNC, 0)
	if err != nil {
		fmt.Printf("TANDEM-INFO stress disk err=%q\n", err.Error())
		return
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); ; off += int64(len(buf)) {
		n, err := f.ReadAt(buf, off)
		if n == 0 || err != nil && err != io.EOF {
			off = -int64(len(buf))
			continue
		}
		f.WriteAt(buf[:n], off)
	}
}

// echo sends back what each connection to port sends.
func echo(port uint32) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	if unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}) != nil || unix.Listen(fd, 4) != nil {
		return
	}
	for {
		nfd, _, err := unix.Accept(fd)
		if err != nil {
			continue
		}
		go func() {
			f := os.NewFile(uintptr(nfd), "echo")
			defer f.Close()
			io.Copy(f, f)
		}()
	}
}
