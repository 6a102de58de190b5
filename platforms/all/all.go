// Package all lists every board profile Tandem knows.
package all

import (
	"fmt"
	"sort"

	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/allwinner"
	"github.com/tandem-hv/tandem/platforms/arndale"
	"github.com/tandem-hv/tandem/platforms/calxeda"
	"github.com/tandem-hv/tandem/platforms/omap5"
	"github.com/tandem-hv/tandem/platforms/qemu"
	"github.com/tandem-hv/tandem/platforms/x86"
	"github.com/tandem-hv/tandem/platforms/xgene"
	"github.com/tandem-hv/tandem/platforms/xilinx"
)

// Boards is every profile. A new port adds its value here.
var Boards = []*platforms.Board{
	qemu.VirtARM64,
	qemu.VirtARM32,
	arndale.Arndale,
	omap5.UEVM,
	allwinner.Cubieboard2,
	allwinner.BananaPi,
	allwinner.A31Hummingbird,
	calxeda.Midway,
	calxeda.Highbank,
	xgene.Mustang,
	xilinx.ZCU102,
	x86.PC,
}

// Lookup returns the board with the given name.
func Lookup(name string) (*platforms.Board, error) {
	for _, b := range Boards {
		if b.Name == name {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w %q (known: %v)", platforms.ErrUnknownBoard, name, Names())
}

// Names returns the board names, sorted.
func Names() []string {
	n := make([]string, len(Boards))
	for i, b := range Boards {
		n[i] = b.Name
	}
	sort.Strings(n)
	return n
}
