package images

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/platforms"
)

// DebianArch is the Debian architecture of a board's host.
func DebianArch(a platforms.Arch) string {
	switch a {
	case platforms.ARM:
		return "armhf"
	case platforms.X86:
		return "amd64"
	}
	return "arm64"
}

// FindBlobs locates each blob and boot file of b: first by file name in
// dirs (what the user supplies: signed BL1, TrustZone, MLO), then, for a
// blob Debian ships (Blob.Package "pkg:/path"), inside that package
// unpacked under cache (build/cache), downloading it with apt-get when
// fetch is set. Anything not found is left out of the map: Build says
// what is missing and how to get it.
func FindBlobs(b *platforms.Board, dirs []string, cache string, fetch bool) (map[string]string, error) {
	found := map[string]string{}
	want := map[string]string{} // file → Debian package spec
	for _, bl := range b.Image.Blobs {
		want[bl.File] = bl.Package
	}
	for _, bf := range b.Image.BootFiles {
		want[bf.Name] = bf.Package
	}
	for file, pkg := range want {
		for _, d := range dirs {
			p := filepath.Join(d, file)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				found[file] = p
				break
			}
		}
		if found[file] != "" || pkg == "" || cache == "" {
			continue
		}
		p, err := DebianFile(pkg, DebianArch(b.Arch), cache, fetch)
		if err != nil {
			return nil, fmt.Errorf("board %s, %s: %w", b.Name, file, err)
		}
		if p != "" {
			found[file] = p
		}
	}
	return found, nil
}

// DebianFile returns the path of a file of a Debian package, given as
// "package:/path/in/package", unpacked under cache/pkgs/PACKAGE_ARCH. The
// .deb is taken from cache/debs, downloaded there with `apt-get download`
// when fetch is set. It returns "" without error when the package is not
// there and fetch is not set.
func DebianFile(spec, arch, cache string, fetch bool) (string, error) {
	pkg, file, ok := strings.Cut(spec, ":")
	if !ok || !strings.HasPrefix(file, "/") {
		return "", fmt.Errorf("package file %q: want package:/path", spec)
	}
	root := filepath.Join(cache, "pkgs", pkg+"_"+arch)
	p := filepath.Join(root, file)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	debs := filepath.Join(cache, "debs")
	matches, _ := filepath.Glob(filepath.Join(debs, pkg+"_*_"+arch+".deb"))
	if len(matches) == 0 {
		if !fetch {
			return "", nil
		}
		if err := os.MkdirAll(debs, 0o755); err != nil {
			return "", err
		}
		args := []string{"download", "-q"}
		if os.Geteuid() == 0 {
			// As root apt drops to _apt, who cannot write the cache.
			args = append(args, "-o", "APT::Sandbox::User=root")
		}
		cmd := exec.Command("apt-get", append(args, pkg+":"+arch)...)
		cmd.Dir = debs
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("apt-get download %s:%s: %w (with apt's %s architecture enabled: dpkg --add-architecture %s; apt-get update)\n%s", pkg, arch, err, arch, arch, out.Bytes())
		}
		matches, _ = filepath.Glob(filepath.Join(debs, pkg+"_*_"+arch+".deb"))
		if len(matches) == 0 {
			return "", fmt.Errorf("apt-get download %s:%s left no .deb in %s", pkg, arch, debs)
		}
	}
	deb := matches[len(matches)-1]
	tmp, err := os.MkdirTemp(filepath.Join(cache), ".unpack-"+pkg+"*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %w\n%s", deb, err, out)
	}
	os.MkdirAll(filepath.Dir(root), 0o755)
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s has no %s", filepath.Base(deb), file)
	}
	return p, nil
}
