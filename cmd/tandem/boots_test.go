package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/vmm"
)

// fakeBootEnv makes the test binary one boot of a guest for runBoots:
// its value is a directory holding "ends", the exit statuses of the
// boots in turn ("wait" for one that runs until SIGTERM, then ends as
// stopped), and "count", how many boots came before.
const fakeBootEnv = "TANDEM_TEST_FAKE_BOOT"

// fakeBoot is one boot: it opens the console as a boot does
// (openConsole), writes "boot N" to it, and ends as "ends" says.
func fakeBoot(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "count"))
	n, _ := strconv.Atoi(string(b))
	os.WriteFile(filepath.Join(dir, "count"), []byte(strconv.Itoa(n+1)), 0o644)
	ends, _ := os.ReadFile(filepath.Join(dir, "ends"))
	end := strings.Fields(string(ends))[min(n, len(strings.Fields(string(ends)))-1)]
	var cfg vmm.Config
	spec, _ := os.ReadFile(filepath.Join(dir, "console"))
	closeConsole, err := openConsole(string(spec), 0, &cfg, io.Discard)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(cfg.Console.Out, "boot %d\n", n+1)
	closeConsole()
	if end == "wait" {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		os.WriteFile(filepath.Join(dir, "waiting"), nil, 0o644)
		<-sigs
		return int(vmm.ExitStopped)
	}
	code, _ := strconv.Atoi(end)
	return code
}

// TestRunBoots runs a guest that restarts on reset one boot per child
// process, as a sandboxed `tandem run --restart` does: a reset (status
// 2) starts the next boot, any other end ends the loop with that status,
// a stop (SIGTERM, Ctrl-C) ends the boot and the loop; a file console is
// emptied once and each boot appends to it.
func TestRunBoots(t *testing.T) {
	tests := []struct {
		name  string
		ends  string
		stop  bool // cancel the context once a boot waits
		want  int  // the loop's exit status
		boots int
	}{
		{"a power-off after two resets", "2 2 0", false, 0, 3},
		{"a crash after a reset", "2 3", false, int(vmm.ExitCrash), 2},
		{"the watchdog", "5", false, int(vmm.ExitWatchdog), 1},
		{"stopped while it runs", "2 wait", true, int(vmm.ExitStopped), 2},
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "console.log")
			os.WriteFile(out, []byte("an earlier run\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "ends"), []byte(tt.ends), 0o644)
			os.WriteFile(filepath.Join(dir, "console"), []byte("file:"+out), 0o644)
			t.Setenv(fakeBootEnv, dir)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.stop {
				go func() {
					for {
						if _, err := os.Stat(filepath.Join(dir, "waiting")); err == nil {
							cancel()
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()
			}
			err := runBoots(ctx, []string{exe}, "file:"+out, io.Discard)
			got := 0
			if err != nil {
				e, ok := err.(exitCoder)
				if !ok || err.Error() != "" {
					t.Fatalf("runBoots() = %v, want an exit status only (the boot said why)", err)
				}
				got = e.ExitCode()
			}
			if got != tt.want {
				t.Errorf("runBoots() exit status = %d, want %d", got, tt.want)
			}
			var want strings.Builder
			for i := 1; i <= tt.boots; i++ {
				fmt.Fprintf(&want, "boot %d\n", i)
			}
			if b, _ := os.ReadFile(out); string(b) != want.String() {
				t.Errorf("console file = %q, want %q: emptied once, then each boot's line", b, want.String())
			}
		})
	}
}
