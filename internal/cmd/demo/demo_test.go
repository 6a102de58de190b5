package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestDemo runs `make demo` end to end with a shorter run: the image is
// built, U-Boot boots it under QEMU, both guests print on their consoles
// (prefixed by name), the status table shows both running, and the board
// powers off cleanly within the demo's time bound.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: boots an emulated board for about a minute")
	}
	testenv.RequireCommand(t, "qemu-system-aarch64", "qemu-system-arm")
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireFile(t, ubootBin, "install Debian's u-boot-qemu: make deps")
	root, _ := filepath.Abs("../../..")
	testenv.RequireFile(t, filepath.Join(root, "build/cache/arm64/release"), "run `make testdata`")
	work := t.TempDir()
	tandem := filepath.Join(work, "tandem")
	build := exec.Command("go", "build", "-o", tandem, "./cmd/tandem")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	var console bytes.Buffer
	start := time.Now()
	err := run(options{Root: root, Dir: filepath.Join(work, "demo"), Tandem: tandem, RunFor: 25 * time.Second, Timeout: 5 * time.Minute, Out: &console})
	if err != nil {
		t.Fatalf("run() = %v; console:\n%s", err, tail(console.String(), 40))
	}
	text := console.String()
	for _, re := range []string{
		`(?m)^control \| TANDEM-CONTROL `,
		`(?m)^infotainment \| TANDEM-INFO `,
		`(?m)^NAME\s+ROLE\s+STATE`,
		`(?m)^control\s+control\s+running`,
		`(?m)^infotainment\s+infotainment\s+running`,
		`reboot: Power down`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("console lacks %s; last lines:\n%s", re, tail(text, 40))
		}
	}
	// The channel: the infotainment guest received the control guest's
	// messages, and not one failed its end-to-end check.
	infos := regexp.MustCompile(`(?m)^infotainment \| TANDEM-INFO received=(\d+) faults=(\d+)`).FindAllStringSubmatch(text, -1)
	if len(infos) == 0 {
		t.Errorf("no TANDEM-INFO report from the infotainment guest")
	} else if last := infos[len(infos)-1]; last[1] == "0" || last[2] != "0" {
		t.Errorf("infotainment guest's last report: received=%s faults=%s; want messages and no faults", last[1], last[2])
	}
	t.Logf("demo took %v", time.Since(start).Round(time.Second))
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
