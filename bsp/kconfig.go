// Package bsp is the board porting kit: it imports a vendor DTB into a new
// board package, and checks a board profile against its DTB, a host kernel
// configuration and a live host, reporting what is ready and how to fix
// what is not.
package bsp

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/tandem-hv/tandem/platforms"
)

// KernelConfig is a parsed kernel .config: CONFIG_ symbols and their
// values ("y", "m", a number or a quoted string). A "# CONFIG_X is not
// set" line records X as "n".
type KernelConfig struct {
	File string
	// Arch is the architecture the header names ("arm64", "arm", "x86"),
	// or the one CONFIG_ARM64/CONFIG_ARM/CONFIG_X86_64 implies.
	Arch string
	// Version is the kernel release from the header ("6.1.176"), or "".
	Version string
	Values  map[string]string
}

// ErrBadConfig wraps every parse error of a kernel configuration.
var ErrBadConfig = errors.New("bad kernel config")

// maxConfigSize bounds the input: real configs are about 300 KiB.
const maxConfigSize = 16 << 20

// headerRE matches the header kconfig writes: "# Linux/arm64 6.1.176 Kernel Configuration".
var headerRE = regexp.MustCompile(`^# Linux/(\S+) (\S+) Kernel Configuration$`)

// symbolRE is a kconfig symbol name.
var symbolRE = regexp.MustCompile(`^CONFIG_[A-Za-z0-9_]+$`)

// ParseKernelConfig parses a .config. file names it in errors.
func ParseKernelConfig(data []byte, file string) (*KernelConfig, error) {
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: %s:%d: %s", ErrBadConfig, file, line, fmt.Sprintf(format, args...))
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than the %d a kernel config can be", ErrBadConfig, file, len(data), maxConfigSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("%w: %s: contains NUL bytes: not a text .config", ErrBadConfig, file)
	}
	c := &KernelConfig{File: file, Values: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			if m := headerRE.FindStringSubmatch(line); m != nil {
				c.Arch, c.Version = m[1], m[2]
			}
			if sym, ok := strings.CutSuffix(strings.TrimPrefix(line, "# "), " is not set"); ok && symbolRE.MatchString(sym) {
				c.Values[sym] = "n"
			}
		default:
			sym, val, ok := strings.Cut(line, "=")
			if !ok {
				return nil, bad(n, "%q is neither CONFIG_X=value nor a comment", trunc(line))
			}
			if !symbolRE.MatchString(sym) {
				return nil, bad(n, "%q is not a CONFIG_ symbol", trunc(sym))
			}
			if strings.HasPrefix(val, `"`) {
				if _, err := strconv.Unquote(val); err != nil {
					return nil, bad(n, "%s has an unterminated or malformed string value", sym)
				}
			} else if val == "" {
				return nil, bad(n, "%s has an empty value", sym)
			}
			c.Values[sym] = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: line %d: %v", ErrBadConfig, file, n+1, err)
	}
	if len(c.Values) == 0 {
		return nil, fmt.Errorf("%w: %s: no CONFIG_ lines: not a kernel .config", ErrBadConfig, file)
	}
	if c.Arch == "" {
		switch {
		case c.Enabled("CONFIG_ARM64"):
			c.Arch = "arm64"
		case c.Enabled("CONFIG_ARM"):
			c.Arch = "arm"
		case c.Enabled("CONFIG_X86_64"), c.Enabled("CONFIG_X86"):
			c.Arch = "x86"
		}
	}
	return c, nil
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Value returns a symbol's value, or "" when the config does not mention it.
func (c *KernelConfig) Value(sym string) string { return c.Values[sym] }

// Enabled reports whether sym is built in or a module.
func (c *KernelConfig) Enabled(sym string) bool {
	v := c.Values[sym]
	return v == "y" || v == "m"
}

// VersionAtMost reports whether the config's kernel release is at most
// major.minor, and whether the release is known.
func (c *KernelConfig) VersionAtMost(major, minor int) (atMost, known bool) {
	parts := strings.SplitN(c.Version, ".", 3)
	if len(parts) < 2 {
		return false, false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false, false
	}
	return ma < major || (ma == major && mi <= minor), true
}

// Markers kernel/configs.c puts around the gzipped .config it embeds
// (CONFIG_IKCONFIG): "IKCFG_ST", the gzip stream, "IKCFG_ED".
const (
	ikconfigStart = "IKCFG_ST"
	ikconfigEnd   = "IKCFG_ED"
)

// ErrNoIKConfig: the kernel carries no embedded configuration.
var ErrNoIKConfig = errors.New("no embedded kernel config (IKCFG_ST marker)")

// maxPayload bounds what IKConfig decompresses of a compressed kernel:
// a decompressed arm64 or x86 kernel is well under it.
const maxPayload = 256 << 20

// maxGzipTries bounds how many gzip streams IKConfig opens in a
// compressed kernel looking for its payload.
const maxGzipTries = 16

// IKConfig returns the .config a kernel image carries (CONFIG_IKCONFIG):
// the gzip stream after the IKCFG_ST marker. A compressed kernel (an ARM
// zImage, an Image.gz) hides the marker inside its gzip-compressed
// payload, which IKConfig opens too.
func IKConfig(kernel []byte) ([]byte, error) {
	if c, err := ikconfigIn(kernel); !errors.Is(err, ErrNoIKConfig) {
		return c, err
	}
	magic := []byte{0x1f, 0x8b, 0x08} // RFC 1952: ID1, ID2, CM=deflate
	tries := 0
	for off := 0; tries < maxGzipTries; {
		i := bytes.Index(kernel[off:], magic)
		if i < 0 {
			break
		}
		off += i + 1
		payload, err := gunzip(kernel[off-1:], maxPayload)
		if err != nil {
			continue
		}
		tries++
		if c, err := ikconfigIn(payload); !errors.Is(err, ErrNoIKConfig) {
			return c, err
		}
	}
	return nil, ErrNoIKConfig
}

// ikconfigIn finds the marker in data and gunzips what follows it.
func ikconfigIn(data []byte) ([]byte, error) {
	i := bytes.Index(data, []byte(ikconfigStart))
	if i < 0 {
		return nil, ErrNoIKConfig
	}
	c, err := gunzip(data[i+len(ikconfigStart):], maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("%w: the embedded config after %s: %v", ErrBadConfig, ikconfigStart, err)
	}
	return c, nil
}

// gunzip decompresses the gzip stream at the start of b (trailing bytes
// are not part of it), at most limit bytes of output.
func gunzip(b []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("more than %d bytes decompressed", limit)
	}
	return out, nil
}

// kconfigArch is the kconfig architecture ("# Linux/ARCH ...") of a
// board's host.
func kconfigArch(a platforms.Arch) string {
	if a == platforms.X86 {
		return "x86"
	}
	return string(a)
}

// CanHost says whether a kernel built with c can host KVM on board b:
// it is built for the board's architecture and has KVM (for 32-bit ARM,
// a kernel of Linux 5.6 or older with KVM_ARM_HOST). why says what is
// missing; it is "" when it can.
func (c *KernelConfig) CanHost(b *platforms.Board) (ok bool, why string) {
	if want := kconfigArch(b.Arch); c.Arch != want {
		return false, fmt.Sprintf("it is built for %s, board %s needs a kernel built for %s", orUnknown(c.Arch), b.Name, want)
	}
	v := kvmVerdict(c)
	if strings.HasPrefix(v, "can host KVM") {
		return true, ""
	}
	return false, strings.TrimPrefix(v, "cannot host KVM: ")
}
