package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/system"
)

// Console commands: with tandem.commands=1 on the kernel command line,
// tandem init reads the board's serial console while the system runs,
// and runs each line that is one of
//
//	tandem ps
//	tandem stop|start|restart|kill|threads|logs NAME
//	tandem input NAME TEXT        (TEXT with Go escapes: 'ls\n')
//	tandem screenshot NAME
//
// as the command would on a shell, through the supervisor's control
// socket. It prints the line as "tandem init: $ LINE", the answer as
// "tandem init: > …" lines and its status as "tandem init: $? 0" (1 for
// an error), in one write; a screenshot comes out as the
// base64 screen lines tandem emulate decodes (emulate.WriteScreen, shot
// N/0: taken on request). This is how a board under CI, whose only way in
// and out is its serial console, is driven by `tandem emulate`'s test
// files. Off by default: a production board's console does not take
// commands.
const commandsParam = "tandem.commands"

// consoleCommandsOn reports whether the kernel command line turns console
// commands on.
func consoleCommandsOn() bool {
	v, ok := cmdlineValue(commandsParam)
	return ok && (v == "1" || v == "on")
}

// consoleHelp is what an unknown line gets.
const consoleHelp = "the console takes: tandem ps; tandem stop|start|restart|kill|threads|logs|screenshot NAME; tandem input NAME TEXT"

var inputLine = regexp.MustCompile(`^tandem\s+input\s+(\S+)\s(.*)$`)

// serveConsoleCommands runs the command lines read from in (the console)
// until it ends, printing to log. The console's echo is turned off first,
// so that a typed command is not taken for a line the board printed.
func serveConsoleCommands(in io.Reader, fd int, control string, log io.Writer) {
	if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		t.Lflag &^= unix.ECHO | unix.ECHONL
		unix.IoctlSetTermios(fd, unix.TCSETS, t)
	}
	c := &consoleCommands{control: control, log: log, shots: map[string]int{}}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			c.run(line)
		}
	}
}

type consoleCommands struct {
	control string
	log     io.Writer
	shots   map[string]int // screenshots printed per guest
}

// run runs one command line and prints it with its answer.
func (c *consoleCommands) run(line string) {
	var answer bytes.Buffer
	err := c.do(line, &answer)
	if err != nil {
		fmt.Fprintf(&answer, "error: %v\n", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "tandem init: $ %s\n", line)
	for _, l := range strings.Split(strings.TrimRight(answer.String(), "\n"), "\n") {
		fmt.Fprintf(&b, "tandem init: > %s\n", l)
	}
	status := 0
	if err != nil {
		status = 1
	}
	fmt.Fprintf(&b, "tandem init: $? %d\n", status)
	c.log.Write(b.Bytes())
}

func (c *consoleCommands) do(line string, w io.Writer) error {
	if m := inputLine.FindStringSubmatch(line); m != nil {
		text, err := unescape(m[2])
		if err != nil {
			return fmt.Errorf("input %s: TEXT %q: %v: write it with Go escapes, e.g. ls\\n", m[1], m[2], err)
		}
		answer, err := system.Input(c.control, m[1], []byte(text))
		if err != nil {
			return err
		}
		fmt.Fprintln(w, answer)
		return nil
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 2 && f[0] == "tandem" && f[1] == "ps":
		return system.Control(c.control, "ps", nil, w)
	case len(f) == 3 && f[0] == "tandem" && f[1] == "screenshot":
		var png bytes.Buffer
		if err := system.Control(c.control, "screenshot "+f[2], nil, &png); err != nil {
			return err
		}
		c.shots[f[2]]++
		if err := emulate.WriteScreen(c.log, f[2], c.shots[f[2]], 0, png.Bytes()); err != nil {
			return err
		}
		fmt.Fprintf(w, "screen %s %d: a PNG of %d bytes\n", f[2], c.shots[f[2]], png.Len())
		return nil
	case len(f) == 3 && f[0] == "tandem" && emulate.RunCommands[f[1]]:
		return system.Control(c.control, f[1]+" "+f[2], nil, w)
	}
	return fmt.Errorf("%q: %s", line, consoleHelp)
}
