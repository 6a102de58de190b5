package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/images/pgroup"
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
// dirs (what the user supplies: signed BL1, TrustZone, MLO), then in the
// board directory's blobs/ folder (platforms.Board.Blobs), then, for a
// blob Debian ships (Blob.Package "pkg:/path"), inside that package
// unpacked under cache (build/cache), downloading it with apt-get when
// fetch is set. Anything not found is left out of the map: Build says
// what is missing and how to get it. Cancelling ctx stops a download or
// an unpacking, leaving the cache as it was.
func FindBlobs(ctx context.Context, b *platforms.Board, dirs []string, cache string, fetch bool) (map[string]string, error) {
	found := map[string]string{}
	want := map[string]string{} // file → Debian package spec
	for _, bl := range b.Image.Blobs {
		want[bl.File] = bl.Package
	}
	for _, bf := range b.Image.BootFiles {
		if !bf.Generated() {
			want[bf.Name] = bf.Package
		}
	}
	if own := b.Blobs(); own != "" {
		dirs = append(slices.Clip(dirs), own)
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
		p, err := DebianFile(ctx, pkg, DebianArch(b.Arch), cache, fetch)
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
// there and fetch is not set. The .deb is downloaded, and the package
// unpacked, into temporary directories renamed into place when complete,
// so cancelling ctx leaves the cache as it was.
func DebianFile(ctx context.Context, spec, arch, cache string, fetch bool) (string, error) {
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
	matches := debsOf(debs, pkg, arch)
	if len(matches) == 0 {
		if !fetch {
			return "", nil
		}
		deb, err := downloadDeb(ctx, pkg, arch, debs)
		if err != nil {
			return "", err
		}
		matches = []string{deb}
	}
	deb := matches[len(matches)-1]
	tmp, err := os.MkdirTemp(filepath.Join(cache), ".unpack-"+pkg+"*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if out, err := pgroup.Command(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
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

// debsOf returns the .debs of pkg for arch in dir, or of pkg for every
// architecture ("all": firmware, data) where there are none for arch.
func debsOf(dir, pkg, arch string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*_"+arch+".deb"))
	if len(m) == 0 {
		m, _ = filepath.Glob(filepath.Join(dir, pkg+"_*_all.deb"))
	}
	return m
}

// downloadDeb downloads pkg for arch with `apt-get download` into a
// temporary directory under debs and moves the .deb into debs when apt
// is done: an interrupted download leaves no partial .deb for the next
// build to find.
func downloadDeb(ctx context.Context, pkg, arch, debs string) (string, error) {
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(debs, ".download-"+pkg+"*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	args := []string{"download", "-q"}
	if os.Geteuid() == 0 {
		// As root apt drops to _apt, who cannot write the cache.
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	cmd := pgroup.Command(ctx, "apt-get", append(args, pkg+":"+arch)...)
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("apt-get download %s:%s: %w (with apt's %s architecture enabled: dpkg --add-architecture %s; apt-get update)\n%s", pkg, arch, err, arch, arch, out.Bytes())
	}
	got := debsOf(tmp, pkg, arch)
	if len(got) == 0 {
		return "", fmt.Errorf("apt-get download %s:%s left no .deb in %s", pkg, arch, debs)
	}
	deb := filepath.Join(debs, filepath.Base(got[0]))
	if err := os.Rename(got[0], deb); err != nil {
		return "", err
	}
	return deb, nil
}
