package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const xlTestdata = "../../system/xen/testdata/"

// TestImport checks the import commands: the manifest on stdout or in
// -o's file, warnings on stderr, and a failed import leaving -o's file as
// it was.
func TestImport(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.cfg")
	if err := os.WriteFile(bad, []byte("name = 'g'\nkernel = '/k'\nmemory = 'lots'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(dir, "kept.yaml")
	if err := os.WriteFile(kept, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	written := filepath.Join(dir, "system.yaml")

	tests := []struct {
		name      string
		args      []string
		stdout    []string // each must appear
		stderr    []string
		err       []string // empty: success
		file      string   // and its content must contain fileWants
		fileWants []string
	}{
		{
			name:   "xl to stdout",
			args:   []string{"import", "xl", xlTestdata + "infotainment.cfg", "--role", "infotainment"},
			stdout: []string{"guests:", "- name: infotainment", "role: infotainment", "host-cpus: [2, 3]", "policy: on-failure"},
			stderr: []string{"infotainment.cfg:19: warning: vfb:", "infotainment.cfg:12: warning: cpus:"},
		},
		{
			name:      "xl to a file",
			args:      []string{"import", "xl", xlTestdata + "control.cfg", "-o", written},
			stderr:    []string{"control.cfg:8: warning: dtdev:", "not supported by import", "wrote " + written + ": 1 guest\n"},
			file:      written,
			fileWants: []string{"- name: control", "memory: 128M"},
		},
		{
			name: "xl bad input keeps the file",
			args: []string{"import", "xl", bad, "-o", kept},
			err:  []string{bad + ":3:", "memory:", "not a number", "memory = 512"},
			file: kept, fileWants: []string{"old"},
		},
		{
			name: "xl unknown role",
			args: []string{"import", "xl", xlTestdata + "control.cfg", "--role", "contrl"},
			err:  []string{"--role", `"contrl"`, "control or infotainment"},
		},
		{
			name: "xl output directory missing",
			args: []string{"import", "xl", xlTestdata + "control.cfg", "-o", filepath.Join(dir, "no", "system.yaml")},
			err:  []string{"writing", "no such file"},
		},
		{
			name: "xl missing file",
			args: []string{"import", "xl", filepath.Join(dir, "none.cfg")},
			err:  []string{"import xl", "none.cfg", "no such file"},
		},
		{
			name:   "dom0less with a kernel mapping",
			args:   []string{"import", "dom0less", xlTestdata + "dom0less.dtb", "--kernel", "domU1=/boot/Image-domU1"},
			stdout: []string{"- name: domU1", "kernel: /boot/Image-domU1", "kernel: FILL-IN/domU2-kernel", "memory: 64M"},
			stderr: []string{"dom0less.dtb: warning: /chosen/domU2/module@4c000000: reg:", "--kernel domU2=PATH"},
		},
		{
			name: "dom0less bad mapping",
			args: []string{"import", "dom0less", xlTestdata + "dom0less.dtb", "--kernel", "Image"},
			err:  []string{"--kernel", `"Image"`, "DOMAIN=PATH"},
		},
		{
			name: "dom0less on a DTS",
			args: []string{"import", "dom0less", xlTestdata + "dom0less.dts", "-o", kept},
			err:  []string{"dom0less.dts:", "not a readable device tree", "dtc -I dts -O dtb"},
			file: kept, fileWants: []string{"old"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tt.args, &stdout, &stderr)
			if len(tt.err) == 0 && err != nil {
				t.Fatalf("run(%q) = %v, want nil", tt.args, err)
			}
			if len(tt.err) > 0 {
				if err == nil {
					t.Fatalf("run(%q) = nil, want an error", tt.args)
				}
				for _, w := range tt.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("run() = %q, want it to mention %q", err, w)
					}
				}
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tt.file != "" {
				b, err := os.ReadFile(tt.file)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range tt.fileWants {
					if !strings.Contains(string(b), w) {
						t.Errorf("%s lacks %q:\n%s", tt.file, w, b)
					}
				}
			}
		})
	}
	// Nothing half-written is left behind.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}
