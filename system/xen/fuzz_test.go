package xen

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzImportXL feeds ImportXL arbitrary files: it may refuse them, with
// an ErrInput error, but never panic, and what it accepts renders as YAML.
func FuzzImportXL(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.cfg")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(base + "disk = ['phy:/dev/vg/lv,xvda,w', 'file:/img,xvdb,r']\ncpus = ['2', '3-8,^5']\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ImportXL("f.cfg", data, XLOptions{})
		if err != nil {
			if !errors.Is(err, ErrInput) {
				t.Fatalf("ImportXL() = %v, not an ErrInput", err)
			}
			return
		}
		if _, err := res.Manifest.YAML(); err != nil {
			t.Fatalf("YAML() = %v", err)
		}
	})
}

// FuzzImportDom0less feeds ImportDom0less arbitrary blobs, seeded with
// the testdata trees.
func FuzzImportDom0less(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.dtb")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ImportDom0less("f.dtb", data, Dom0lessOptions{})
		if err != nil {
			if !errors.Is(err, ErrInput) {
				t.Fatalf("ImportDom0less() = %v, not an ErrInput", err)
			}
			return
		}
		if _, err := res.Manifest.YAML(); err != nil {
			t.Fatalf("YAML() = %v", err)
		}
	})
}
