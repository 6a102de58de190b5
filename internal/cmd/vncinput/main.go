// Command vncinput is the display tests' VNC client inside an emulated
// host: it connects to a guest's VNC server, presses and releases one key
// and touches the screen once at a position (pointer button 1 down, then
// up), and returns once the server has answered a framebuffer update
// request sent after them, which it reads only after the events.
//
//	vncinput unix:PATH|tcp:HOST:PORT KEYSYM X Y
//
// KEYSYM is an X keysym, in decimal or 0x hex ('a' is 0x61).
package main

import (
	"fmt"
	"image"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/internal/rfbclient"
)

// replyWait bounds the wait for the server's update: the guest's VMM
// runs nested under software emulation.
const replyWait = 30 * time.Second

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vncinput:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: vncinput unix:PATH|tcp:HOST:PORT KEYSYM X Y")
	}
	network, addr, ok := strings.Cut(args[0], ":")
	if !ok || network != "unix" && network != "tcp" {
		return fmt.Errorf("address %q: want unix:PATH or tcp:HOST:PORT", args[0])
	}
	var nums [3]uint64
	for i, a := range args[1:] {
		n, err := strconv.ParseUint(a, 0, 32)
		if err != nil {
			return fmt.Errorf("argument %d (%q): %w", i+2, a, err)
		}
		nums[i] = n
	}
	keysym, x, y := uint32(nums[0]), int(nums[1]), int(nums[2])
	c, err := rfbclient.Dial(network, addr)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", args[0], err)
	}
	defer c.Close()
	if x >= c.W || y >= c.H {
		return fmt.Errorf("position %d,%d outside the %dx%d screen", x, y, c.W, c.H)
	}
	for _, send := range []func() error{
		func() error { return c.Key(keysym, true) },
		func() error { return c.Key(keysym, false) },
		func() error { return c.Pointer(1, x, y) },
		func() error { return c.Pointer(0, x, y) },
		// The server handles a client's messages in order: its answer
		// to this request says it has passed the events on.
		func() error { return c.Request(false, image.Rect(0, 0, 1, 1)) },
	} {
		if err := send(); err != nil {
			return err
		}
	}
	if _, err := c.ReadUpdate(replyWait); err != nil {
		return fmt.Errorf("waiting for the update after the events: %w", err)
	}
	fmt.Fprintf(stdout, "vncinput: sent keysym %#x and a touch at %d,%d to %s (%dx%d, %q)\n", keysym, x, y, args[0], c.W, c.H, c.Name)
	return nil
}
