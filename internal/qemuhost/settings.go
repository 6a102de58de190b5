package qemuhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// HostEnv names an environment variable that changes how the emulated
// x86 host is run, for comparing its steadiness (internal/cmd/hostboots)
// or for a test run that wants another setting: comma-separated KEY=VALUE
// pairs as ParseHost reads them, e.g.
//
//	TANDEM_X86_HOST=tcg=single,kernel=x86-6.12,cpu=EPYC-Rome
//
// Fields an Options.Host sets itself win over it.
const HostEnv = "TANDEM_X86_HOST"

// Host is how the emulated x86 host is run where it departs from the
// harness's defaults (the arches table). The zero value is the default.
type Host struct {
	// TCG is QEMU's TCG threading: "multi" (one host thread per
	// emulated CPU) or "single" (one thread runs all emulated CPUs in
	// turn).
	TCG string
	// CPU is QEMU's -cpu model ("max", "EPYC-Rome"); it must offer svm
	// and npt for kvm-amd's nested KVM.
	CPU string
	// Kernel is the test-data cache's directory holding the host kernel,
	// its modules and busybox ("x86-6.12", from scripts/testdata.sh
	// x86-6.12); the guests keep theirs.
	Kernel string
}

// ParseHost reads a Host from comma-separated KEY=VALUE pairs: tcg=single
// or tcg=multi, cpu=MODEL, kernel=CACHEDIR. The empty string is the
// default Host.
func ParseHost(s string) (Host, error) {
	var h Host
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || v == "" {
			return h, fmt.Errorf("host setting %q: want KEY=VALUE (tcg=single, cpu=EPYC-Rome, kernel=x86-6.12)", f)
		}
		switch k {
		case "tcg":
			if v != "single" && v != "multi" {
				return h, fmt.Errorf("host setting tcg=%s: want tcg=single or tcg=multi", v)
			}
			h.TCG = v
		case "cpu":
			h.CPU = v
		case "kernel":
			if strings.ContainsRune(v, '/') || v == ".." {
				return h, fmt.Errorf("host setting kernel=%s: want a directory name under the test-data cache (x86-6.12)", v)
			}
			h.Kernel = v
		default:
			return h, fmt.Errorf("host setting %q: unknown key %q (want tcg, cpu or kernel)", f, k)
		}
	}
	return h, nil
}

// String is the Host as ParseHost reads it; "default" for the zero Host.
func (h Host) String() string {
	var fs []string
	for _, kv := range [][2]string{{"tcg", h.TCG}, {"cpu", h.CPU}, {"kernel", h.Kernel}} {
		if kv[1] != "" {
			fs = append(fs, kv[0]+"="+kv[1])
		}
	}
	if len(fs) == 0 {
		return "default"
	}
	return strings.Join(fs, ",")
}

// withEnv fills the fields h leaves empty from HostEnv.
func (h Host) withEnv() (Host, error) {
	s := os.Getenv(HostEnv)
	if s == "" {
		return h, nil
	}
	e, err := ParseHost(s)
	if err != nil {
		return h, fmt.Errorf("%s=%s: %w", HostEnv, s, err)
	}
	if h.TCG == "" {
		h.TCG = e.TCG
	}
	if h.CPU == "" {
		h.CPU = e.CPU
	}
	if h.Kernel == "" {
		h.Kernel = e.Kernel
	}
	return h, nil
}

// apply returns the arch with h's departures from its defaults: its QEMU
// machine flags and the cache directory of its host kernel. Only the x86
// host takes them.
func (h Host) apply(a arch) (arch, error) {
	if h == (Host{}) {
		return a, nil
	}
	if a.name != "x86_64" {
		return a, fmt.Errorf("host settings %s: only the x86_64 host takes them, not %s", h, a.name)
	}
	m := append([]string{}, a.machine...)
	for i := 0; i+1 < len(m); i++ {
		switch {
		case m[i] == "-cpu" && h.CPU != "":
			m[i+1] = h.CPU
		case m[i] == "-accel" && h.TCG != "":
			m[i+1] = "tcg,thread=" + h.TCG
		}
	}
	a.machine = m
	if h.Kernel != "" {
		a.cacheSub = filepath.Clean(h.Kernel)
	}
	return a, nil
}
