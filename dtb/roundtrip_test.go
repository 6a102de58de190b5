package dtb

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRoundTripTestdata: the committed blobs are all dtc's output, so Parse
// then Bytes must give them back byte for byte, and WriteDTS must print
// exactly what dtc prints for them.
func TestRoundTripTestdata(t *testing.T) {
	for name, b := range testdataDTBs(t) {
		t.Run(name, func(t *testing.T) {
			tr := mustParse(t, b)
			if got := mustBytes(t, tr); !bytes.Equal(got, b) {
				t.Errorf("Bytes(Parse(%s)) differs from the input (%d bytes, want %d)", name, len(got), len(b))
			}
			want, warn := runDTC(t, b, "-I", "dtb", "-O", "dts")
			if warn != "" {
				t.Errorf("dtc -I dtb warned on %s: %s", name, warn)
			}
			if got := derefDTS(t, tr, dts(t, tr)); got != string(want) {
				t.Errorf("WriteDTS() differs from dtc -O dts:\n%s", lineDiff(got, string(want)))
			}
		})
	}
}

// TestRoundTripQEMU dumps QEMU's own virt board trees, which libfdt built
// (a 1 MiB padded buffer, strings in libfdt's order), and checks that our
// re-encoding equals dtc's re-encoding of the same blob and that dtc reads
// ours without warnings.
func TestRoundTripQEMU(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		t.Skipf("qemu-system-aarch64 not installed: %v", err)
	}
	dtcPath(t)
	for _, tt := range []struct {
		name    string
		machine string
	}{
		{"gicv2", "virt"},
		{"gicv3-el2", "virt,virtualization=on,gic-version=3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "virt.dtb")
			cmd := exec.Command(qemu, "-M", tt.machine+",dumpdtb="+f, "-cpu", "max", "-smp", "2", "-m", "256", "-display", "none", "-nodefaults")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("qemu dumpdtb: %v\n%s", err, out)
			}
			orig, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tr := mustParse(t, orig)
			got := mustBytes(t, tr)
			want, _ := runDTC(t, orig, "-I", "dtb", "-O", "dtb")
			if !bytes.Equal(got, want) {
				t.Errorf("Bytes(Parse(qemu %s)) differs from dtc's re-encoding (%d bytes, want %d)", tt.machine, len(got), len(want))
			}
			wantDTS, _ := runDTC(t, orig, "-I", "dtb", "-O", "dts")
			gotDTS, warn := runDTC(t, got, "-I", "dtb", "-O", "dts")
			if warn != "" {
				t.Errorf("dtc -I dtb warned on our blob: %s", warn)
			}
			if !bytes.Equal(gotDTS, wantDTS) {
				t.Errorf("dtc decodes our blob differently:\n%s", lineDiff(string(gotDTS), string(wantDTS)))
			}
			if s := derefDTS(t, tr, dts(t, tr)); s != string(wantDTS) {
				t.Errorf("WriteDTS() differs from dtc -O dts:\n%s", lineDiff(s, string(wantDTS)))
			}
			if gic := tr.FindCompatible(map[string]string{"gicv2": "arm,cortex-a15-gic", "gicv3-el2": "arm,gic-v3"}[tt.name]); len(gic) != 1 {
				t.Errorf("FindCompatible(gic) found %d nodes, want 1", len(gic))
			}
		})
	}
}

// TestRoundTripRealDTBs reads the Debian kernel DTBs that "make testdata"
// unpacks under build/cache.
func TestRoundTripRealDTBs(t *testing.T) {
	files := cachedDTBs(t)
	if len(files) == 0 {
		t.Skipf("no build/cache/**/*.dtb: run make testdata to fetch Debian's kernel DTBs")
	}
	_, dtcErr := exec.LookPath("dtc")
	for _, f := range files {
		name, _ := filepath.Rel(filepath.Join("..", "build", "cache"), f)
		t.Run(name, func(t *testing.T) {
			orig, err := os.ReadFile(f)
			if errors.Is(err, fs.ErrNotExist) {
				t.Skipf("%s was removed while the test ran (make testdata at work?)", f)
			}
			if err != nil {
				t.Fatal(err)
			}
			tr := mustParse(t, orig)
			got := mustBytes(t, tr)
			if bytes.Equal(got, orig) {
				return
			}
			// The kernel build may pad blobs; then dtc's compact
			// re-encoding is the reference.
			if dtcErr != nil {
				t.Skipf("Bytes() differs from %s and dtc is not installed to re-encode it", f)
			}
			want, _ := runDTC(t, orig, "-I", "dtb", "-O", "dtb")
			if !bytes.Equal(got, want) {
				t.Errorf("Bytes(Parse(%s)) differs from the file and from dtc's re-encoding", f)
			}
		})
	}
}

// TestDTSCompiles: every tree's DTS compiles back with dtc, without
// warnings, to the same blob.
func TestDTSCompiles(t *testing.T) {
	for name, b := range testdataDTBs(t) {
		t.Run(name, func(t *testing.T) {
			tr := mustParse(t, b)
			out, warn := runDTC(t, []byte(dts(t, tr)), "-I", "dts", "-O", "dtb")
			if warn != "" {
				t.Errorf("dtc -I dts warned: %s", warn)
			}
			if !bytes.Equal(out, b) {
				t.Errorf("dtc(WriteDTS(Parse(%s))) differs from the input", name)
			}
		})
	}
}

// TestGuessKind pins the dtc heuristic on the values where it is subtle.
func TestGuessKind(t *testing.T) {
	for _, tt := range []struct {
		name string
		v    []byte
		want string
	}{
		{"string", []byte("okay\x00"), ` = "okay";`},
		{"one char string", []byte("/\x00"), ` = "/";`},
		{"string list", []byte("a\x00bc\x00"), ` = "a\0bc";`},
		{"more NULs than chars", []byte("a\x00\x00\x00"), ` = <0x61000000>;`},
		{"empty strings", []byte{0, 0}, ` = [00 00];`},
		{"cell", []byte{0, 0, 0, 1}, ` = <0x01>;`},
		{"cells", []byte{0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78}, ` = <0x01 0x12345678>;`},
		{"bytes", []byte{1, 2, 3}, ` = [01 02 03];`},
		{"escapes", []byte("a\t\"\\\n\x00"), ` = "a\t\"\\\n";`},
		{"empty", nil, `;`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := New()
			tr.Root.Set("p", tt.v)
			got := dts(t, tr)
			want := "/dts-v1/;\n\n/ {\n\tp" + tt.want + "\n};\n"
			if got != want {
				t.Errorf("WriteDTS(%q) = %q, want %q", tt.v, got, want)
			}
			if _, err := exec.LookPath("dtc"); err == nil {
				b, _ := runDTC(t, []byte(got), "-I", "dts", "-O", "dtb")
				if p := mustParse(t, b).Root.Prop("p"); !bytes.Equal(p.Value, tt.v) {
					t.Errorf("dtc(WriteDTS()) value = %q, want %q", p.Value, tt.v)
				}
			}
		})
	}
}

var pathRef = regexp.MustCompile(`&\{(/[^}]*)\}`)

// derefDTS turns WriteDTS's path references back into the phandle numbers
// dtc prints, so the rest of the text can be compared with dtc's.
func derefDTS(t *testing.T, tr *Tree, s string) string {
	t.Helper()
	return pathRef.ReplaceAllStringFunc(s, func(ref string) string {
		n, err := tr.Lookup(pathRef.FindStringSubmatch(ref)[1])
		if err != nil {
			t.Fatalf("WriteDTS() printed %s: %v", ref, err)
		}
		return fmt.Sprintf("0x%02x", n.PhandleOf())
	})
}

// lineDiff reports the first differing line, enough to see what is wrong.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + itoa(i+1) + ":\n got: " + gl + "\nwant: " + wl
		}
	}
	return "(same lines)"
}

func itoa(i int) string {
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	if len(b) == 0 {
		return "0"
	}
	return string(b)
}
