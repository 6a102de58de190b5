//go:build !amd64 && !arm64

package tinyguest

import (
	"fmt"
	"runtime"
)

// reset: tiny guests are written for x86 and arm64 hosts only.
func (g *Guest) reset() error {
	return fmt.Errorf("tiny guests run on amd64 and arm64 hosts, not %s", runtime.GOARCH)
}
