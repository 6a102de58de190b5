package qemuhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestParseHost: ParseHost reads each key, keeps String's form, and
// rejects unknown keys, bad values and pairs without a value, naming the
// setting.
func TestParseHost(t *testing.T) {
	tests := []struct {
		in      string
		want    Host
		str     string
		wantErr string
	}{
		{in: "", want: Host{}, str: "default"},
		{in: "tcg=single", want: Host{TCG: "single"}, str: "tcg=single"},
		{in: "tcg=multi, cpu=EPYC-Rome,kernel=x86-6.12", want: Host{TCG: "multi", CPU: "EPYC-Rome", Kernel: "x86-6.12"}, str: "tcg=multi,cpu=EPYC-Rome,kernel=x86-6.12"},
		{in: "tcg=two", wantErr: "tcg=two: want tcg=single or tcg=multi"},
		{in: "cpu", wantErr: `"cpu": want KEY=VALUE`},
		{in: "cpu=", wantErr: `"cpu=": want KEY=VALUE`},
		{in: "smp=1", wantErr: `unknown key "smp"`},
		{in: "kernel=../x86", wantErr: "kernel=../x86: want a directory name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHost(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseHost(%q) = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseHost(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
		})
	}
}

// TestHostApply: a Host changes the x86 host's -cpu and TCG threading
// and the cache directory of its kernel, leaves what it does not set, and
// is refused for the arm64 host.
func TestHostApply(t *testing.T) {
	tests := []struct {
		name     string
		arch     string
		host     Host
		want     []string // in QEMU's arguments
		cacheSub string
		wantErr  bool
	}{
		{name: "default", arch: "x86_64", want: []string{"-cpu max", "tcg,thread=multi"}, cacheSub: "x86"},
		{name: "single thread", arch: "x86_64", host: Host{TCG: "single"}, want: []string{"-cpu max", "tcg,thread=single"}, cacheSub: "x86"},
		{name: "cpu model", arch: "x86_64", host: Host{CPU: "EPYC-Rome"}, want: []string{"-cpu EPYC-Rome", "tcg,thread=multi"}, cacheSub: "x86"},
		{name: "kernel", arch: "x86_64", host: Host{Kernel: "x86-6.12"}, want: []string{"-cpu max"}, cacheSub: "x86-6.12"},
		{name: "arm64 default", arch: "arm64", want: []string{"-cpu max"}, cacheSub: "arm64"},
		{name: "arm64 refuses", arch: "arm64", host: Host{TCG: "single"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := lookupArch(tt.arch)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.host.apply(a)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("apply(%s) on %s: no error", tt.host, tt.arch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			args := strings.Join(got.args(Options{CPUs: 2, Memory: "1G"}, "k", "i"), " ")
			for _, w := range tt.want {
				if !strings.Contains(args, w) {
					t.Errorf("args = %s, want %q in them", args, w)
				}
			}
			if got.cacheSub != tt.cacheSub {
				t.Errorf("cacheSub = %q, want %q", got.cacheSub, tt.cacheSub)
			}
			if b, _ := lookupArch(tt.arch); strings.Join(b.machine, " ") != strings.Join(a.machine, " ") {
				t.Errorf("apply changed the arches table: %v", b.machine)
			}
		})
	}
}

// TestHostEnv: HostEnv fills the fields Options.Host leaves empty, and a
// bad HostEnv is an error naming the variable.
func TestHostEnv(t *testing.T) {
	tests := []struct {
		env     string
		host    Host
		want    Host
		wantErr string
	}{
		{env: "", host: Host{CPU: "EPYC-v4"}, want: Host{CPU: "EPYC-v4"}},
		{env: "tcg=single,cpu=EPYC-Rome", host: Host{}, want: Host{TCG: "single", CPU: "EPYC-Rome"}},
		{env: "tcg=single,cpu=EPYC-Rome", host: Host{CPU: "EPYC-v4", TCG: "multi"}, want: Host{TCG: "multi", CPU: "EPYC-v4"}},
		{env: "kernel=x86-6.12", host: Host{TCG: "single"}, want: Host{TCG: "single", Kernel: "x86-6.12"}},
		{env: "tcg", wantErr: HostEnv + "=tcg"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(HostEnv, tt.env)
			got, err := tt.host.withEnv()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("withEnv() = %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("withEnv() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestHostKernelArtifacts: kernel=x86-6.12 takes the host's kernel,
// modules (with kvm-amd) and busybox from that cache directory.
func TestHostKernelArtifacts(t *testing.T) {
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "x86-6.12")
	testenv.RequireFile(t, filepath.Join(dir, "release"), "scripts/testdata.sh x86-6.12")
	a, err := lookupArch("x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if a, err = (Host{Kernel: "x86-6.12"}).apply(a); err != nil {
		t.Fatal(err)
	}
	art, err := a.artifacts(cache)
	if err != nil {
		t.Fatalf("artifacts() = %v", err)
	}
	if art.kernel != filepath.Join(dir, "vmlinuz") || art.busybox != filepath.Join(dir, "busybox") || !strings.HasPrefix(art.modules, dir) {
		t.Errorf("artifacts() = %+v, want all under %s", art, dir)
	}
	kvm, err := filepath.Glob(filepath.Join(art.modules, "kernel/arch/x86/kvm/kvm-amd.ko*"))
	if err != nil || len(kvm) == 0 {
		t.Errorf("no kvm-amd module under %s: the 6.12 host could not give /dev/kvm", art.modules)
	}
	if _, err := os.Stat(art.kernel); err != nil {
		t.Error(err)
	}
}
