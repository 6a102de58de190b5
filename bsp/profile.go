package bsp

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/strictyaml"
)

// TodoMarker starts the comments Import leaves in a board.yaml for what a
// DTB cannot tell; CheckProfile reports each one left.
const TodoMarker = "TODO:"

// CheckProfile says whether an image for board b can be built and boot,
// as far as its profile tells: each broken invariant (Validate) and each
// thing an image needs that the profile lacks (ImageProblems, such as a
// U-Boot board's load addresses) is a blocker, named by its board.yaml
// field with its line; so is each TODO that Import left on a field an
// image needs (arch, image.*), while the others (reset, denylist, ...)
// and the blobs the user still has to supply are advisory. A guest-only
// board is a blocker: no host image is built for it.
func CheckProfile(b *platforms.Board) Section {
	title := "Profile " + b.Name
	if b.File != "" && b.Dir != "" {
		title += " (" + b.File + ")"
	}
	type located struct {
		line int
		Item
	}
	var items []located
	reported := map[string]bool{}
	for _, p := range append(b.Problems(), b.ImageProblems()...) {
		it := Item{Check: p.Field, Detail: p.Msg, Fix: p.Fix}
		w := p.Where()
		if w != "" {
			it.Detail += " (" + w + ")"
		}
		switch {
		case it.Fix != "":
		case w != "":
			it.Fix = "correct it at " + w
		default:
			it.Fix = "correct the profile"
		}
		items = append(items, located{p.Line, it})
		reported[p.Field] = true
	}
	if b.GuestOnly {
		_, why := b.CanHostKVM()
		items = append(items, located{strictyaml.Line(b.Source(), "guest-only"), Item{Check: "guest-only", Detail: why,
			Fix: "none for this board: Tandem builds guests for it, never a host image; pick a Cortex-A7/A15 or ARMv8 board as the host"}})
		reported["guest-only"] = true
	}
	for _, n := range strictyaml.Notes(b.Source(), TodoMarker) {
		if reported[n.Field] {
			continue
		}
		items = append(items, located{n.Line, Item{
			Check:    n.Field,
			Detail:   fmt.Sprintf("left for the porter (TODO at %s:%d)", b.File, n.Line),
			Fix:      strings.TrimSuffix(n.Text, ".") + "; then delete the TODO",
			Advisory: !imageNeeds(n.Field),
		}})
	}
	// In the file's order, as a porter reads it.
	slices.SortStableFunc(items, func(a, b located) int { return a.line - b.line })
	s := Section{Title: title}
	var blockers []string
	for _, it := range items {
		s.Items = append(s.Items, it.Item)
		if !it.Advisory {
			blockers = append(blockers, it.Check)
		}
	}
	s.Items = append(s.Items, suppliedFiles(b)...)
	ok, why := b.CanHostKVM()
	switch {
	case len(blockers) > 0:
		s.Verdict = "no image for this board yet: blocked by " + strings.Join(slices.Compact(blockers), ", ")
	case ok:
		s.Items = append([]Item{{Check: "profile", OK: true, Detail: "its invariants hold, and it says all an image needs"}}, s.Items...)
		s.Verdict = "can host KVM with a current kernel"
	default:
		s.Items = append([]Item{{Check: "profile", OK: true, Detail: "its invariants hold, and it says all an image needs"}}, s.Items...)
		s.Verdict = why
	}
	return s
}

// imageNeeds reports whether a board.yaml field is one an image for the
// board cannot be right without.
func imageNeeds(field string) bool {
	return field == "arch" || field == "image" || strings.HasPrefix(field, "image.")
}

// suppliedFiles lists, as advisory items, the blobs and boot files the
// user supplies (no Debian package) that are not in the board directory's
// blobs/ folder: `tandem image build` needs them there or in --blobs.
func suppliedFiles(b *platforms.Board) []Item {
	var items []Item
	need := func(field, what, file, where string) {
		if own := b.Blobs(); own != "" {
			if st, err := os.Stat(filepath.Join(own, file)); err == nil && st.Mode().IsRegular() {
				return
			}
		}
		it := Item{Check: field, Advisory: true, Detail: fmt.Sprintf("%s %s comes from the user: Debian does not ship it; it goes %s", what, file, where),
			Fix: fmt.Sprintf("copy %s from the board vendor's BSP into a directory and pass --blobs DIR to image build", file)}
		if own := b.Blobs(); own != "" {
			it.Fix = fmt.Sprintf("copy %s from the board vendor's BSP into %s (or pass --blobs DIR to image build)", file, own)
		}
		items = append(items, it)
	}
	for i, bl := range b.Image.Blobs {
		if bl.Package == "" && !bl.Optional {
			need(fmt.Sprintf("image.blobs[%d]", i), "blob "+bl.Name, bl.File, fmt.Sprintf("at byte %#x of the media, before the first partition", bl.Offset))
		}
	}
	for i, bf := range b.Image.BootFiles {
		if bf.Package == "" && !bf.Generated() {
			what := "boot file"
			if bf.Optional {
				// The image builds without it (see image build's note),
				// but the board does not boot.
				what = "optional boot file"
			}
			need(fmt.Sprintf("image.boot-files[%d]", i), what, bf.Name, "into the boot partition's root")
		}
	}
	return items
}
