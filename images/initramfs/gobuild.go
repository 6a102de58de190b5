package initramfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/tandem-hv/tandem/images/pgroup"
)

// buildGo builds e.Source as a static Linux binary for e.GOARCH into dir
// and returns its path. The flags make the binary independent of where
// and when it was built: -trimpath drops host paths, an empty build ID
// drops the hash of the build inputs' locations.
//
// Cancelling ctx interrupts go, its compiler and its linker as a Ctrl-C
// would (see pgroup). go keeps its work directory in dir (GOTMPDIR), so
// the caller's removal of dir takes it even when go dies before it can
// remove it itself.
func buildGo(ctx context.Context, e Entry, dir string, opt Options) (string, error) {
	goarch := e.GOARCH
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	out := filepath.Join(dir, strconv.Itoa(len(e.Path))+"-"+filepath.Base(e.Path))
	for i := 0; ; i++ {
		if _, err := os.Stat(out); os.IsNotExist(err) {
			break
		}
		out = fmt.Sprintf("%s.%d", out, i)
	}
	args := []string{"build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out}
	args = append(args, opt.GoFlags...)
	args = append(args, e.Source)
	cmd := pgroup.Command(ctx, goCommand(), args...)
	cmd.Dir = opt.GoDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOTMPDIR="+dir)
	if goarch == "arm" {
		// ARMv7 with hardware floating point: what armhf kernels run.
		cmd.Env = append(cmd.Env, "GOARM=7")
	}
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("go build %s for %s: %w\n%s", e.Source, goarch, err, stderr.Bytes())
	}
	return out, nil
}

// goCommand finds the go tool: the one that built this program (GOROOT)
// first, so the toolchain matches, then $PATH.
func goCommand() string {
	// The demo and the bench run under go run, which, unlike go test,
	// does not put its toolchain first on PATH. A binary copied away from
	// its GOROOT falls back to PATH's go.
	//lint:ignore SA1019 the build's GOROOT is the toolchain wanted, and it is checked to exist
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
