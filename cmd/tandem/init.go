package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/images/hostinit"
	"github.com/tandem-hv/tandem/system"
)

func init() {
	subcommands = append(subcommands, newInitCmd)
	// The kernel starts /init as PID 1 with no arguments: in the host
	// initramfs that is tandem itself, which then runs as `tandem init`.
	if os.Getpid() == 1 && len(os.Args) == 1 {
		os.Args = append(os.Args, "init")
	}
}

// stopGrace is how long the supervisor gets to stop its guests.
const stopGrace = 15 * time.Second

// newInitCmd is the host's init (hidden: only the kernel runs it). It
// prepares the host (hostinit.Boot), runs `tandem system` on the data
// partition's manifest, and powers off when the supervisor ends.
//
// tandem.runfor=DURATION on the kernel command line (demos, tests) stops
// the system after that long: init prints the status table (`tandem
// ps`), stops the supervisor with SIGTERM, and powers off.
func newInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "init",
		Short:  "Run as the host's init: mount, load modules, mount the data partition, run tandem system",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, out := cmd.ErrOrStderr(), cmd.OutOrStdout()
			if os.Getpid() != 1 {
				return fmt.Errorf("init: runs only as PID 1, in the host initramfs")
			}
			status := "system ended"
			manifest, err := hostinit.Boot(log)
			if err == nil {
				err = runSystem(manifest, out, log)
			}
			if err != nil {
				status = err.Error()
				fmt.Fprintf(log, "tandem init: %v\n", err)
				if _, serr := os.Stat("/bin/sh"); serr == nil {
					fmt.Fprintln(log, "tandem init: debug shell on the console; exit it to power off")
					sh := exec.Command("/bin/sh")
					sh.Stdin, sh.Stdout, sh.Stderr = os.Stdin, out, log
					sh.Run()
				} else {
					time.Sleep(5 * time.Second) // leave the message on the console
				}
			}
			fmt.Fprintf(log, "tandem init: %s; powering off\n", status)
			// PID 1 must not return: the kernel would panic.
			for {
				if err := hostinit.PowerOff(); err != nil {
					fmt.Fprintf(log, "tandem init: power off: %v\n", err)
				}
				time.Sleep(time.Second)
			}
		},
	}
}

func runSystem(manifest string, out, log io.Writer) error {
	runFor, err := cmdlineDuration("tandem.runfor")
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "tandem init: starting tandem system %s\n", manifest)
	sys := exec.Command("/proc/self/exe", "system", manifest)
	sys.Stdin, sys.Stdout, sys.Stderr = os.Stdin, out, log
	if err := sys.Start(); err != nil {
		return fmt.Errorf("starting tandem system: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sys.Wait() }()
	if runFor <= 0 {
		return <-done
	}
	select {
	case err := <-done:
		return err
	case <-time.After(runFor):
	}
	control := system.DefaultControlSocket
	if m, err := system.LoadManifest(manifest); err == nil && m.ControlSocket != "" {
		control = m.ControlSocket
	}
	fmt.Fprintf(log, "\ntandem init: tandem.runfor=%v is up: status, then stopping the system\n", runFor)
	ps := exec.Command("/proc/self/exe", "ps", "--control", control)
	ps.Stdout, ps.Stderr = out, log
	if err := ps.Run(); err != nil {
		fmt.Fprintf(log, "tandem init: tandem ps: %v\n", err)
	}
	sys.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopGrace):
		fmt.Fprintf(log, "tandem init: the supervisor did not stop within %v: killing it\n", stopGrace)
		sys.Process.Kill()
		<-done
	}
	return nil
}

// cmdlineDuration reads KEY=DURATION from the kernel command line (0 when
// absent).
func cmdlineDuration(key string) (time.Duration, error) {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return 0, fmt.Errorf("kernel command line %s=%q: want a duration such as 30s", key, v)
			}
			return d, nil
		}
	}
	return 0, nil
}
