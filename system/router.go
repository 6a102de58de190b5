package system

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// serveVsockOut takes the connections a guest's VMM opens for its guest
// and routes each by CID, if the manifest's allow-list lets it. A refusal
// is an ERR answer, which the VMM turns into an RST to the guest.
func (s *Supervisor) serveVsockOut(l net.Listener, from *guestProc) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if err := from.vmmPeer(c); err != nil {
			s.logEvery(refusalLogInterval, "%s: vsock socket: %v", from.g.Name, err)
			c.Close()
			continue
		}
		go s.route(c, from)
	}
}

// vmmPeer checks that the process at the other end of c is the guest's
// running VMM: VMMs of one user can all reach each other's out sockets,
// and none may speak for another guest.
func (gp *guestProc) vmmPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	raw.Control(func(fd uintptr) { cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if credErr != nil {
		return fmt.Errorf("who connected: %w", credErr)
	}
	gp.mu.Lock()
	defer gp.mu.Unlock()
	if gp.cmd == nil || gp.cmd.Process == nil || int(cred.Pid) != gp.cmd.Process.Pid {
		return fmt.Errorf("refused a connection from pid %d, which is not its VMM", cred.Pid)
	}
	return nil
}

// refusalLogInterval bounds how often the same refusal is logged: a guest
// whose peer is down retries many times a second.
const refusalLogInterval = 5 * time.Second

func (s *Supervisor) route(c net.Conn, from *guestProc) {
	c.SetReadDeadline(time.Now().Add(dialTimeout))
	line, err := readLine(c)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	srcPort, dstCID, dstPort, err := parseConnect(line)
	refuse := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.logEvery(refusalLogInterval, "%s: vsock → %d:%d refused: %s", from.g.Name, dstCID, dstPort, msg)
		fmt.Fprintf(c, "ERR %s\n", msg)
		c.Close()
	}
	if err != nil {
		refuse("%v", err)
		return
	}
	if dstCID > 0xffffffff || !from.g.Vsock.Allows(uint32(dstCID), dstPort) {
		refuse("not in %s's vsock.allow", from.g.Name)
		return
	}
	var peer net.Conn
	if dstCID == HostCID {
		hs := from.g.Vsock.HostService(dstPort)
		if hs == nil {
			refuse("no host service on port %d in %s's vsock.host", dstPort, from.g.Name)
			return
		}
		if peer, err = net.DialTimeout("unix", hs.Socket, dialTimeout); err != nil {
			refuse("host service on port %d: %v", dstPort, err)
			return
		}
	} else {
		to := s.byCID[uint32(dstCID)]
		if to == nil {
			refuse("no guest has CID %d", dstCID)
			return
		}
		if peer, err = dialGuest(to, from.g.Vsock.CID, srcPort, dstPort); err != nil {
			refuse("%s: %v", to.g.Name, err)
			return
		}
	}
	fmt.Fprintf(c, "%s\n", answerOK)
	splice(c, peer)
}

// dialGuest opens a connection into a guest through its VMM's in socket,
// appearing to come from peerCID:peerPort.
func dialGuest(to *guestProc, peerCID uint32, peerPort, port uint32) (net.Conn, error) {
	d, err := net.DialTimeout("unix", to.inSocket(), dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("not running")
	}
	if _, err := fmt.Fprintf(d, "%s %d %d %d\n", opConnect, peerPort, peerCID, port); err != nil {
		d.Close()
		return nil, err
	}
	if err := answer(d); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// serveForward connects each client of a host socket to a guest port.
func (s *Supervisor) serveForward(l net.Listener, to *guestProc, port uint32) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			ep := ephemeralBase + s.nextEp.Add(1)%(1<<14)
			peer, err := dialGuest(to, HostCID, ep, port)
			if err != nil {
				s.logf("%s: forward to port %d: %v", to.g.Name, port, err)
				c.Close()
				return
			}
			splice(c, peer)
		}()
	}
}

// splice copies both ways until both directions end, passing half-closes
// on.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	one := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go one(b, a)
	go one(a, b)
	wg.Wait()
	a.Close()
	b.Close()
}
