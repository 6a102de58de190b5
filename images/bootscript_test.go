package images

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/all"
)

// TestScriptImageMatchesMkimage compares ScriptImage with U-Boot's own
// mkimage, byte for byte (mkimage takes its time from SOURCE_DATE_EPOCH).
func TestScriptImageMatchesMkimage(t *testing.T) {
	mkimage := testenv.RequireCommand(t, "mkimage", "u-boot-tools")
	dir := t.TempDir()
	for _, tt := range []struct {
		script string
		arch   platforms.Arch
		mkArch string
	}{
		{"echo hello\n", platforms.ARM64, "arm64"},
		{"echo odd length", platforms.ARM, "arm"},
	} {
		src := filepath.Join(dir, "s.txt")
		os.WriteFile(src, []byte(tt.script), 0o644)
		out := filepath.Join(dir, "s.scr")
		cmd := exec.Command(mkimage, "-A", tt.mkArch, "-O", "linux", "-T", "script", "-C", "none", "-n", "Tandem test", "-d", src, out)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkimage: %v\n%s", err, b)
		}
		want, _ := os.ReadFile(out)
		got := ScriptImage([]byte(tt.script), tt.arch, "Tandem test", 1700000000)
		if !bytes.Equal(got, want) {
			t.Errorf("ScriptImage(%q, %s) = %x, want mkimage's %x", tt.script, tt.arch, got, want)
		}
	}
}

// TestParseScriptImageCorrupt corrupts a good script image one field at a
// time.
func TestParseScriptImageCorrupt(t *testing.T) {
	good := ScriptImage([]byte("echo hi\n"), platforms.ARM64, "x", 1)
	if _, s, err := ParseScriptImage(good); err != nil || string(s) != "echo hi\n" {
		t.Fatalf("ParseScriptImage(good) = %q, %v", s, err)
	}
	for _, tt := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:40] }},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"header crc", func(b []byte) []byte { b[4] ^= 1; return b }},
		{"type", func(b []byte) []byte { b[30] = 2; return fixHCRC(b) }},
		{"size too large", func(b []byte) []byte { binary.BigEndian.PutUint32(b[12:], 1<<20); return fixHCRC(b) }},
		{"data crc", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated data", func(b []byte) []byte { return b[:len(b)-4] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(append([]byte(nil), good...))
			if _, _, err := ParseScriptImage(b); !errors.Is(err, ErrBadScript) {
				t.Errorf("ParseScriptImage() = %v, want ErrBadScript", err)
			}
		})
	}
}

func fixHCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[4:], 0)
	binary.BigEndian.PutUint32(b[4:], crc32.ChecksumIEEE(b[:legacyHdrLen]))
	return b
}

func FuzzParseScriptImage(f *testing.F) {
	f.Add(ScriptImage([]byte("echo hi\n"), platforms.ARM64, "x", 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseScriptImage(b)
	})
}

// TestBootScriptLoadAddresses: every U-Boot board's script loads to its
// profile's addresses with the boot command of its architecture.
func TestBootScriptLoadAddresses(t *testing.T) {
	for _, b := range all.Boards() {
		if UEFI(b) || b.GuestOnly {
			continue
		}
		dtb := "board.dtb"
		if FirmwareDTB(b) {
			dtb = ""
		}
		s, err := BootScript(b, HostCmdline(b, ""), "k", "i", dtb)
		if err != nil {
			t.Errorf("BootScript(%s) = %v", b.Name, err)
			continue
		}
		boot, wants := "booti", []string{"load ${devtype} ${devnum}:${distro_bootpart} " + fmt.Sprintf("%#x", b.Image.Load.Initrd) + " i "}
		switch {
		case b.Arch == platforms.ARM:
			boot = "bootz"
		case b.Image.BootEFI:
			// The EFI stub loads the initramfs: U-Boot does not, and the
			// kernel is the last file it loads (the stub's volume).
			boot, wants = "bootefi", []string{" initrd=i\"", fmt.Sprintf("%#x k || exit\nbootefi %#x ", b.Image.Load.Kernel, b.Image.Load.Kernel)}
			if strings.Contains(s, " i || exit") {
				t.Errorf("BootScript(%s) boots through bootefi but loads the initramfs itself:\n%s", b.Name, s)
			}
		}
		for _, want := range append(wants, boot+" ", "console="+b.Console.Linux) {
			if !strings.Contains(s, want) {
				t.Errorf("BootScript(%s) lacks %q:\n%s", b.Name, want, s)
			}
		}
		if FirmwareDTB(b) != strings.Contains(s, "${fdtcontroladdr}") {
			t.Errorf("BootScript(%s): firmware DTB %v but script:\n%s", b.Name, FirmwareDTB(b), s)
		}
	}
	if _, err := BootScript(all.Boards()[0], `bad "quote`, "k", "i", ""); err == nil {
		t.Errorf("BootScript(cmdline with a quote) = nil error, want one")
	}
}
