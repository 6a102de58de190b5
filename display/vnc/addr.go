package vnc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// ErrRemote is returned for a TCP address that other hosts could reach
// without the caller's explicit consent.
var ErrRemote = errors.New("the VNC server has no password or encryption: anyone who reaches this address sees the screen and types into the guest")

// Addr is where a server listens: "unix:/run/tandem/NAME.vnc" or
// "tcp:127.0.0.1:5901".
type Addr struct {
	Network string // "unix" or "tcp"
	Address string // the socket's path, or host:port
}

func (a Addr) String() string { return a.Network + ":" + a.Address }

// ParseAddr reads "unix:PATH" or "tcp:HOST:PORT". A TCP host must be an
// IP address or "localhost"; one that is not loopback (or empty: every
// interface) is refused with ErrRemote unless allowRemote is set.
func ParseAddr(s string, allowRemote bool) (Addr, error) {
	network, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok || rest == "":
		return Addr{}, fmt.Errorf("%q: want unix:PATH or tcp:HOST:PORT", s)
	case network == "unix":
		if !strings.HasPrefix(rest, "/") {
			return Addr{}, fmt.Errorf("%q: the socket's path must be absolute", s)
		}
		return Addr{"unix", rest}, nil
	case network == "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return Addr{}, fmt.Errorf("%q: want tcp:HOST:PORT: %w", s, err)
		}
		if p, err := net.LookupPort("tcp", port); err != nil || p == 0 {
			return Addr{}, fmt.Errorf("%q: port %q: want a number from 1 to 65535", s, port)
		}
		loopback := host == "localhost"
		if ip := net.ParseIP(host); ip != nil {
			loopback = ip.IsLoopback()
		} else if host != "" && host != "localhost" {
			return Addr{}, fmt.Errorf("%q: host %q: give an IP address (127.0.0.1) or localhost", s, host)
		}
		if !loopback && !allowRemote {
			return Addr{}, fmt.Errorf("%q listens beyond this host: %w; listen on 127.0.0.1 or a unix: socket (and reach it through an SSH tunnel), or allow it explicitly (vnc-allow-remote: true)", s, ErrRemote)
		}
		return Addr{"tcp", rest}, nil
	}
	return Addr{}, fmt.Errorf("%q: network %q: want unix:PATH or tcp:HOST:PORT", s, network)
}

// Listen makes a's listening socket. A UNIX socket replaces a stale
// socket at its path (never another kind of file) and is left to its
// owner alone (0600).
func Listen(a Addr) (net.Listener, error) {
	if a.Network == "unix" {
		if st, err := os.Lstat(a.Address); err == nil {
			if st.Mode()&os.ModeSocket == 0 {
				return nil, fmt.Errorf("%s: exists and is not a socket", a.Address)
			}
			os.Remove(a.Address)
		}
		l, err := net.Listen("unix", a.Address)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(a.Address, 0o600); err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	}
	return net.Listen(a.Network, a.Address)
}
