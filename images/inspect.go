package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/platforms"
)

// Inspection is what Inspect finds in an image.
type Inspection struct {
	Size       int64
	Table      platforms.PartitionTable
	Partitions []Partition
	Info       *Info
	BootFiles  []fat.Entry
	Blobs      []BlobCheck
	// Script is the boot script's text (or startup.nsh on UEFI boards).
	Script string
	// Manifest is the data partition's system.yaml ("" if unreadable;
	// ManifestErr says why).
	Manifest    string
	ManifestErr string
}

// BlobCheck is a blob the image's info file lists, checked at its offset.
type BlobCheck struct {
	PlacedBlob
	// Found is the SHA256 of the bytes at the offset.
	Found string
	OK    bool
}

// Inspect reads an image Build wrote: its partition table, its boot
// partition's files, the blobs at their offsets (hashed against what the
// boot partition's tandem-image.json recorded), the boot script and the
// manifest (read with debugfs).
func Inspect(file string) (*Inspection, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	in := &Inspection{Size: st.Size()}
	head := make([]byte, (2+gptEntrySectors)*platforms.Sector)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("%s: reading the partition table: %w", file, err)
	}
	if in.Table, in.Partitions, err = ReadPartitions(head); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(in.Partitions) == 0 {
		return in, fmt.Errorf("%s: the partition table is empty", file)
	}
	boot := in.Partitions[0]
	fr, err := fat.Open(f, boot.Start)
	if err != nil {
		return in, fmt.Errorf("%s: boot partition: %w", file, err)
	}
	in.BootFiles, _ = fr.ReadDir("/")
	if b, err := fr.ReadFile(InfoName); err == nil {
		var info Info
		if err := json.Unmarshal(b, &info); err != nil {
			return in, fmt.Errorf("%s: %s: %w", file, InfoName, err)
		}
		in.Info = &info
		for _, bl := range info.Blobs {
			h := sha256.New()
			io.Copy(h, io.NewSectionReader(f, int64(bl.Offset), bl.Size))
			found := hex.EncodeToString(h.Sum(nil))
			in.Blobs = append(in.Blobs, BlobCheck{PlacedBlob: bl, Found: found, OK: found == bl.SHA256})
		}
	}
	for _, e := range in.BootFiles {
		name := strings.ToLower(e.Name)
		switch {
		case name == uefiScript:
			b, _ := fr.ReadFile(e.Name)
			in.Script = string(b)
		case strings.HasSuffix(name, ".scr"):
			b, err := fr.ReadFile(e.Name)
			if err != nil {
				return in, err
			}
			_, s, err := ParseScriptImage(b)
			if err != nil {
				return in, fmt.Errorf("%s: %s: %w", file, e.Name, err)
			}
			in.Script = string(s)
		}
	}
	if len(in.Partitions) > 1 {
		in.Manifest, in.ManifestErr = readExt4File(file, in.Partitions[1].Start, ManifestIn)
	}
	return in, nil
}

// readExt4File reads a file from the ext4 file system at off in img with
// debugfs, which takes the offset as an I/O option.
func readExt4File(img string, off int64, name string) (string, string) {
	debugfs, err := exec.LookPath("debugfs")
	if err != nil {
		return "", "debugfs not found: install Debian's e2fsprogs"
	}
	cmd := exec.Command(debugfs, "-R", "cat /"+name, fmt.Sprintf("%s?offset=%d", img, off))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || len(out) == 0 {
		return "", fmt.Sprintf("debugfs cat /%s: %v %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), ""
}

// Print writes the inspection for people.
func (in *Inspection) Print(w io.Writer) {
	fmt.Fprintf(w, "size: %d bytes (%s)\n", in.Size, humanBytes(in.Size))
	if in.Info != nil {
		fmt.Fprintf(w, "board: %s\nepoch: %d (%s), from %s\nhost command line: %s\n", in.Info.Board,
			in.Info.Epoch, time.Unix(in.Info.Epoch, 0).UTC().Format(time.RFC3339), in.Info.EpochSource, in.Info.Cmdline)
	}
	fmt.Fprintf(w, "partition table: %s\n", in.Table)
	for i, p := range in.Partitions {
		boot := ""
		if p.Bootable {
			boot = " bootable"
		}
		fmt.Fprintf(w, "  %d: %-8s start %#x size %s type %s%s\n", i+1, p.Name, p.Start, humanBytes(p.Size), p.Type, boot)
	}
	if len(in.Blobs) > 0 {
		fmt.Fprintln(w, "blobs:")
		for _, b := range in.Blobs {
			ok := "ok"
			if !b.OK {
				ok = "MISMATCH (found " + b.Found + ")"
			}
			fmt.Fprintf(w, "  %-10s %-28s at %#-8x %8d bytes of %8d  sha256 %s  %s\n", b.Name, b.File, b.Offset, b.Size, b.MaxLen, b.SHA256, ok)
		}
	}
	fmt.Fprintln(w, "boot partition:")
	for _, e := range in.BootFiles {
		if e.Dir {
			fmt.Fprintf(w, "  %s/\n", e.Name)
		} else {
			fmt.Fprintf(w, "  %-28s %10d bytes\n", e.Name, e.Size)
		}
	}
	if in.Script != "" {
		fmt.Fprintf(w, "boot script:\n%s", indent(in.Script))
	}
	if in.Manifest != "" {
		fmt.Fprintf(w, "manifest (data partition /%s):\n%s", ManifestIn, indent(in.Manifest))
	} else if in.ManifestErr != "" {
		fmt.Fprintf(w, "manifest: unreadable: %s\n", in.ManifestErr)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n"), "\n") {
		b.WriteString("    " + l)
	}
	b.WriteString("\n")
	return b.String()
}
