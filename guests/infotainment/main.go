// Command infotainment is the infotainment guest's /init: a dashboard
// that receives the control guest's vehicle state over vsock, checks each
// message's end-to-end protection, reports the state once a second on
// its console, counts faults by kind, and, with a display, draws it on
// the framebuffer ten times a second (dash.go): a touch or a key
// switches the page; when messages stop, the screen says so.
//
// Kernel command line:
//
//	tandem.port=PORT      the vsock port to listen on (default 5000)
//	tandem.stress=LIST    load to make while it runs (comma-separated): cpu
//	                      (a spinning thread per CPU), disk (rewrites
//	                      /dev/vda), channel (floods the channel: writes
//	                      back on every connection it accepts, as fast as
//	                      the sender's credit allows, and tries connections
//	                      to tandem.flood over and over)
//	tandem.flood=CID:PORT where the channel flood tries to connect: a port
//	                      the manifest does not allow it to reach
//	tandem.hang=DURATION  stop petting the watchdog after that long, to show
//	                      the VMM end the guest
//	tandem.stale=DURATION how long without a message the dashboard shows the
//	                      link down (default 500ms; the demo's board, emulated
//	                      in software, takes 2s)
//
// It also echoes whatever is sent to vsock port 5002, for round-trip and
// throughput measurements.
//
// Marker, once a second:
//
//	TANDEM-INFO received=N faults=F crc=C repeated=R reordered=O lost=L connections=K speed=… rpm=… gear=…
//	TANDEM-INFO flood attempts=A refused=R reached=C written=W (with channel stress)
//
// and once, with a display: TANDEM-INFO display fb=/dev/fb0 size=WxH
// bits=B (or display err="…" when there is no framebuffer).
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
	"sync/atomic"
	"syscall"
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
	lastAt                           time.Time // when last came
	// flood: whether to write back on every accepted connection.
	flood bool
}

// floodStats counts the channel flood's connection attempts.
type floodStats struct {
	attempts, refused, reached, written atomic.Uint64
}

var flood floodStats

func (c *counters) faults() uint64 { return c.crc + c.repeated + c.reorder + c.lost }

func main() {
	if err := guestinit.Boot(); err != nil {
		fmt.Println("TANDEM-INFO fail", err)
	}
	args := guestinit.CmdlineArgs()
	staleAfter = parseStale(args["stale"])
	hang, _ := time.ParseDuration(args["hang"])
	if err := guestinit.Watchdog("TANDEM-INFO", hang); err != nil {
		fmt.Println("TANDEM-INFO fail", err)
	}
	var c counters
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
		case "channel":
			c.flood = true
			if t := args["flood"]; t != "" {
				go floodConnect(t)
			}
		}
	}
	go echo(5002)
	go report(&c)
	go func() {
		// Without a display (no DRM card) there is nothing to say.
		if err := dashboard(&c, time.Now()); err != nil && hasDisplay() {
			fmt.Printf("TANDEM-INFO display err=%q\n", err.Error())
		}
	}()
	if err := serve(port, &c); err != nil {
		fmt.Println("TANDEM-INFO fail", err)
	}
	for {
		time.Sleep(time.Hour) // PID 1 must not exit
	}
}

// listener is a vsock listening socket on Go's poller: a goroutine
// waiting to accept parks on the poller, not in a blocking accept(2)
// holding a thread, and the connections it accepts are on the poller
// too.
type listener struct{ rc syscall.RawConn }

// listen opens a vsock listener on port, non-blocking.
func listen(port uint32) (*listener, error) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("vsock socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vsock bind port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 4); err != nil {
		unix.Close(fd)
		return nil, err
	}
	rc, err := os.NewFile(uintptr(fd), fmt.Sprintf("vsock:%d", port)).SyscallConn()
	if err != nil {
		return nil, err
	}
	return &listener{rc}, nil
}

// accept waits on the poller for the next connection.
func (l *listener) accept() (*os.File, unix.Sockaddr, error) {
	var nfd int
	var sa unix.Sockaddr
	var aerr error
	err := l.rc.Read(func(fd uintptr) bool {
		nfd, sa, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		return aerr != unix.EAGAIN
	})
	if err == nil {
		err = aerr
	}
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(nfd), "vsock"), sa, nil
}

func serve(port uint32, c *counters) error {
	l, err := listen(port)
	if err != nil {
		return err
	}
	fmt.Printf("TANDEM-INFO listening port=%d\n", port)
	var lastErr string
	for {
		f, sa, err := l.accept()
		if err != nil {
			// Said once per kind: a failing accept may repeat fast.
			if err.Error() != lastErr {
				lastErr = err.Error()
				fmt.Printf("TANDEM-INFO accept err=%q\n", lastErr)
			}
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
		if c.flood {
			go floodBack(f)
		}
		go receive(f, c)
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
			c.last, c.lastAt = s, time.Now()
		}
		c.mu.Unlock()
	}
}

func report(c *counters) {
	for range time.Tick(time.Second) {
		// Formatted under the lock, printed after it: the console is
		// slow, and the receiver and the dashboard must not wait on it.
		c.mu.Lock()
		line := fmt.Sprintf("TANDEM-INFO received=%d faults=%d crc=%d repeated=%d reordered=%d lost=%d connections=%d seq=%d speed=%.1f rpm=%d gear=%d\n",
			c.received, c.faults(), c.crc, c.repeated, c.reorder, c.lost, c.conns, c.last.Seq,
			float64(c.last.Speed)/100, c.last.RPM, c.last.Gear)
		flooding := c.flood
		c.mu.Unlock()
		fmt.Print(line)
		if flooding {
			fmt.Printf("TANDEM-INFO flood attempts=%d refused=%d reached=%d written=%d\n",
				flood.attempts.Load(), flood.refused.Load(), flood.reached.Load(), flood.written.Load())
		}
	}
}

// floodBack writes to the sender of a connection as fast as it will
// take: the sender never reads, so its receive credit is all this can
// use up.
func floodBack(f *os.File) {
	buf := make([]byte, 4096)
	for {
		n, err := f.Write(buf)
		flood.written.Add(uint64(n))
		if err != nil {
			return
		}
	}
}

// floodConnect tries connections to addr over and over. The manifest
// does not allow addr, so every try should be refused; one that
// connects is counted as reached.
func floodConnect(addr string) {
	c, p, _ := strings.Cut(addr, ":")
	cid, err1 := strconv.ParseUint(c, 10, 32)
	port, err2 := strconv.ParseUint(p, 10, 32)
	if err1 != nil || err2 != nil {
		fmt.Printf("TANDEM-INFO stress channel err=%q\n", "bad tandem.flood address "+addr)
		return
	}
	for {
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		flood.attempts.Add(1)
		if err := unix.Connect(fd, &unix.SockaddrVM{CID: uint32(cid), Port: uint32(port)}); err != nil {
			flood.refused.Add(1)
		} else {
			flood.reached.Add(1)
		}
		unix.Close(fd)
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
	l, err := listen(port)
	if err != nil {
		return
	}
	for {
		f, _, err := l.accept()
		if err != nil {
			continue
		}
		go func() {
			defer f.Close()
			io.Copy(f, f)
		}()
	}
}
