// Package images builds Tandem's flashable images: a partition table (MBR
// or GPT, as the board says), the board's raw bootloader blobs at their
// offsets, a FAT boot partition with the host kernel, the board DTB, the
// host initramfs and a U-Boot boot script (or a UEFI shell script), and an
// ext4 data partition with the system manifest and the guests' files. A
// block map (bmaptool's format) beside the image lets `bmaptool copy` and
// `tandem image flash` write only the blocks that hold data.
//
// Images are reproducible: every timestamp is the build's epoch
// (SOURCE_DATE_EPOCH, else the commit time of the Tandem source, else a
// fixed date; see Epoch), every identifier (disk GUIDs, UUIDs, serial
// numbers) is derived from the board, the manifest and the epoch, so two
// builds of the same inputs are byte-identical. They are written
// atomically: on any error, or a cancel, no output file is left behind.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/fsx"
	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/platforms"
)

// Names of the files in the boot partition.
const (
	KernelARM64 = "vmlinuz"
	KernelARM   = "zImage"
	InitrdName  = "initrd.img"
	InfoName    = "tandem-image.json"
	ManifestIn  = "system.yaml" // the manifest's name in the data partition
	BootLabel   = "TANDEM-BOOT"
	uefiDir     = "EFI/tandem"
	uefiScript  = "startup.nsh"
)

const mib = 1 << 20

// Errors callers branch on.
var (
	ErrBlobTooLarge = errors.New("blob larger than its slot")
	ErrMissing      = errors.New("missing input")
)

// Config is what goes into an image.
type Config struct {
	Board *platforms.Board
	// HostKernel is the host's kernel (an arm64 Image, an arm zImage, an
	// x86 bzImage with an EFI stub).
	HostKernel string
	// HostInitrd is the host's initramfs (images/hostinit builds it).
	HostInitrd string
	// DTB is the board's device tree; "" where the firmware provides it
	// (FirmwareDTB) or the board has none (x86).
	DTB string
	// Blobs maps each blob's File and each boot file's Name to the host
	// file holding it (FindBlobs fills it).
	Blobs map[string]string
	// Manifest is system.yaml; ManifestFiles the files it references
	// (system.Manifest.Files()), which must lie under its directory: the
	// data partition keeps their paths relative to the manifest.
	Manifest      string
	ManifestFiles []string
	// DataExtra are more files for the data partition, made by the
	// caller beside the manifest (the expected measurements).
	DataExtra []DataFile
	// Cmdline is appended to the host kernel's command line.
	Cmdline string
	// DataSize is the data partition's minimum size in bytes (0: what the
	// files need plus room to spare).
	DataSize int64
	// Epoch is every timestamp in the image, from MinEpoch to MaxEpoch;
	// 0 means Epoch()'s. EpochSource says where it came from, for the
	// info file.
	Epoch       int64
	EpochSource EpochSource
	// Progress reports the build (nil: silent).
	Progress *Progress
}

// Result describes a built image.
type Result struct {
	Image, Bmap string
	Size        int64
	Table       platforms.PartitionTable
	Partitions  []Partition
	Blobs       []PlacedBlob
	// BootFiles are the boot partition's files.
	BootFiles []string
	// Script is the boot script's text ("" on UEFI boards).
	Script string
	Mapped int64 // bytes in mapped blocks
	// DTBFixes says what the builder changed in the board's DTB.
	DTBFixes []string
	// Skipped are the board's optional boot files that were not given
	// (Image.BootFiles with Optional set): the image lacks them.
	Skipped []string

	mapped extents
}

// PlacedBlob is a blob as written.
type PlacedBlob struct {
	Name, File string
	Offset     uint64
	MaxLen     uint64
	Size       int64
	SHA256     string
}

// Info is the boot partition's tandem-image.json: what `tandem image
// inspect` needs to check an image without the inputs.
type Info struct {
	Board       string       `json:"board"`
	Epoch       int64        `json:"source_date_epoch"`
	EpochSource EpochSource  `json:"epoch_source,omitempty"`
	Cmdline     string       `json:"cmdline"`
	DataLabel   string       `json:"data_label"`
	Blobs       []PlacedBlob `json:"blobs,omitempty"`
}

// FirmwareDTB reports whether the board's device tree comes from its
// firmware at boot rather than from the boot partition: the QEMU virt
// boards, whose profile DTB is a dump of what QEMU generates (its
// contents follow -m and -smp), so U-Boot hands the kernel its own
// control DTB.
func FirmwareDTB(b *platforms.Board) bool { return strings.HasPrefix(b.Image.DTB, "qemu/") }

// UEFI reports whether the board boots through UEFI (no boot script).
func UEFI(b *platforms.Board) bool { return b.Image.BootScript == "" }

// CheckBoard says whether an image can be built for b: its profile holds
// (platforms.Board.Validate), says all an image needs
// (ImageProblems: a U-Boot board's load addresses), and boots from a
// file system the builder writes.
func CheckBoard(b *platforms.Board) error {
	if err := b.Validate(); err != nil {
		return err
	}
	if err := platforms.Join(b.ImageProblems()); err != nil {
		return err
	}
	if b.Image.BootFS != "vfat" {
		return fmt.Errorf("board %s: boot file system %q, the image builder writes vfat", b.Name, b.Image.BootFS)
	}
	return nil
}

// HostCmdline is the host kernel's command line for b.
func HostCmdline(b *platforms.Board, extra string) string {
	c := "console=" + b.Console.Linux
	if b.Console.Baud != 0 {
		c += "," + strconv.Itoa(b.Console.Baud)
	}
	c += " quiet panic=10 tandem.data=" + DataLabel
	if extra != "" {
		c += " " + extra
	}
	return c
}

// Build writes the image to out and its block map beside it (BmapPath).
// Cancelling ctx stops the build soon after (mke2fs and debugfs are
// killed, copies end at their next write) and removes its temporary
// files; out and its block map are renamed into place only when complete.
func Build(ctx context.Context, out string, cfg Config) (*Result, error) {
	b := cfg.Board
	if b == nil {
		return nil, errors.New("image build: no board")
	}
	if err := CheckBoard(b); err != nil {
		return nil, err
	}
	if cfg.Epoch == 0 {
		var err error
		if cfg.Epoch, cfg.EpochSource, err = Epoch(); err != nil {
			return nil, fmt.Errorf("image build: %w", err)
		}
	}
	if err := checkEpoch(cfg.Epoch); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pr := cfg.Progress
	pr.Stage("checking inputs", 0)
	plan, err := planImage(cfg)
	if err != nil {
		pr.Stop()
		return nil, err
	}
	dir := filepath.Dir(out)
	work, err := os.MkdirTemp(dir, "."+filepath.Base(out)+".work*")
	if err != nil {
		pr.Stop()
		return nil, fmt.Errorf("creating work directory beside %s: %w", out, err)
	}
	defer os.RemoveAll(work)
	res, err := writeAtomically(ctx, out, func(f *os.File) (*Result, error) { return plan.write(ctx, f, work, pr) })
	if err != nil {
		pr.Stop()
		return nil, err
	}
	pr.Done()
	return res, nil
}

// writeAtomically writes out and its block map through temporary files in
// the same directory, synced and renamed into place only on success and
// only while ctx is live.
func writeAtomically(ctx context.Context, out string, write func(*os.File) (*Result, error)) (res *Result, err error) {
	dir := filepath.Dir(out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", out, err)
	}
	bm, err := os.CreateTemp(dir, "."+filepath.Base(BmapPath(out))+".tmp*")
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("creating %s: %w", BmapPath(out), err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			bm.Close()
			os.Remove(tmp.Name())
			os.Remove(bm.Name())
		}
	}()
	res, err = write(tmp)
	if err != nil {
		return nil, err
	}
	m, err := makeBmap(ctx, tmp, res.Size, res.mapped)
	if err != nil {
		return nil, err
	}
	res.Mapped = m.Mapped() * m.BlockSize
	if _, err := bm.Write(m.Marshal()); err != nil {
		return nil, fmt.Errorf("writing %s: %w", BmapPath(out), err)
	}
	for _, f := range []*os.File{tmp, bm} {
		if err := f.Chmod(0o644); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("syncing %s: %w", f.Name(), err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	// The last moment to stop: past it the image is complete.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.Rename(bm.Name(), BmapPath(out)); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		os.Remove(BmapPath(out))
		return nil, err
	}
	syncDir(dir)
	res.Image, res.Bmap = out, BmapPath(out)
	return res, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// plan is an image's layout, checked before anything is written.
type plan struct {
	cfg       Config
	bootFiles []fat.File
	dataFiles []DataFile
	blobs     []PlacedBlob
	blobSrc   []string
	info      Info
	script    string
	boot      Partition
	data      Partition
	size      int64
	seed      [32]byte
	dtbFixes  []string
	// skipped are the optional boot files not given.
	skipped []string
}

// planImage checks the inputs and lays the image out, in this order:
// the input files, the blobs, the boot partition's files, the data
// partition's files, the identifiers and the info file, the partitions.
func planImage(cfg Config) (*plan, error) {
	p := &plan{cfg: cfg}
	if err := checkInputs(cfg); err != nil {
		return nil, err
	}
	if err := p.placeBlobs(); err != nil {
		return nil, err
	}
	cmdline := HostCmdline(cfg.Board, cfg.Cmdline)
	files, err := p.bootPartitionFiles(cmdline)
	if err != nil {
		return nil, err
	}
	if p.dataFiles, err = dataPartitionFiles(cfg); err != nil {
		return nil, err
	}
	info, err := p.makeInfo(cmdline)
	if err != nil {
		return nil, err
	}
	p.bootFiles = append(files, info)
	if err := p.layOut(); err != nil {
		return nil, err
	}
	return p, nil
}

// needFile checks that file, the input what, was given and is a regular
// file; fix says how to provide it.
func needFile(what, file, fix string) error {
	if file == "" {
		return fmt.Errorf("%w: no %s given (%s)", ErrMissing, what, fix)
	}
	st, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v (%s)", ErrMissing, what, file, fsx.UnwrapPathError(err), fix)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s %s: not a regular file", what, file)
	}
	return nil
}

// checkInputs checks the inputs every image has: the host kernel, the
// host initramfs and the manifest.
func checkInputs(cfg Config) error {
	if err := needFile("host kernel", cfg.HostKernel, "pass --host-kernel, or run `make testdata` for Debian's"); err != nil {
		return err
	}
	if err := needFile("host initramfs", cfg.HostInitrd, "build it with images/hostinit"); err != nil {
		return err
	}
	return needFile("manifest", cfg.Manifest, "pass --manifest system.yaml")
}

// placeBlobs checks the board's blobs, every one present (unless
// optional) and within its slot, before a byte is written, and records
// them in p.blobs and p.blobSrc.
func (p *plan) placeBlobs() error {
	b, cfg := p.cfg.Board, p.cfg
	for _, bl := range b.Image.Blobs {
		src := cfg.Blobs[bl.File]
		if src == "" {
			if bl.Optional {
				continue
			}
			return fmt.Errorf("%w: board %s needs its %s blob %s, written at byte %#x of the image: %s", ErrMissing, b.Name, bl.Name, bl.File, bl.Offset, blobFix(b, bl))
		}
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("%w: %s blob %s: %v (%s)", ErrMissing, bl.Name, src, fsx.UnwrapPathError(err), blobFix(b, bl))
		}
		if uint64(st.Size()) > bl.MaxLen {
			return fmt.Errorf("%w: %s blob %s is %d bytes, its slot at offset %#x on %s holds %d (%d too many): use the %s built for this board",
				ErrBlobTooLarge, bl.Name, src, st.Size(), bl.Offset, b.Name, bl.MaxLen, uint64(st.Size())-bl.MaxLen, bl.File)
		}
		p.blobs = append(p.blobs, PlacedBlob{Name: bl.Name, File: bl.File, Offset: bl.Offset, MaxLen: bl.MaxLen, Size: st.Size()})
		p.blobSrc = append(p.blobSrc, src)
	}
	return nil
}

// bootPartitionFiles returns the boot partition's files but the info file: the
// board's boot files, then the kernel, initramfs, device tree and boot
// script, laid out for UEFI or for U-Boot. It sets p.script and
// p.dtbFixes.
func (p *plan) bootPartitionFiles(cmdline string) ([]fat.File, error) {
	b, cfg := p.cfg.Board, p.cfg
	dtb := ""
	if b.Image.DTB != "" && !FirmwareDTB(b) {
		if err := needFile("board device tree", cfg.DTB, "pass --dtb, or run `make testdata` to unpack Debian's DTBs into build/cache/boards"); err != nil {
			return nil, err
		}
		dtb = path.Base(b.Image.DTB)
	}
	var files []fat.File
	for _, bf := range b.Image.BootFiles {
		if bf.Generated() {
			files = append(files, fat.File{Path: bf.Name, Data: []byte(bf.Content), First: true})
			continue
		}
		src := cfg.Blobs[bf.Name]
		if src == "" && bf.Optional {
			p.skipped = append(p.skipped, bf.Name)
			continue
		}
		if err := needFile("boot file "+bf.Name+" (for the boot partition)", src, bootFileFix(b, bf)); err != nil {
			return nil, err
		}
		files = append(files, fat.File{Path: bf.Name, Source: src, First: true})
	}
	if UEFI(b) {
		return append(files, p.uefiFiles(cmdline, dtb)...), nil
	}
	more, err := p.ubootFiles(cmdline, dtb)
	if err != nil {
		return nil, err
	}
	return append(files, more...), nil
}

// uefiFiles are the files a UEFI board boots the host from: the kernel
// (an EFI stub), the initramfs and the device tree under uefiDir, and
// the UEFI shell's startup.nsh. dtb is the device tree's file name, ""
// for none.
func (p *plan) uefiFiles(cmdline, dtb string) []fat.File {
	cfg := p.cfg
	kernel := uefiDir + "/vmlinuz.efi"
	files := []fat.File{{Path: kernel, Source: cfg.HostKernel}, {Path: uefiDir + "/" + InitrdName, Source: cfg.HostInitrd}}
	cmd := `\` + strings.ReplaceAll(kernel, "/", `\`) + ` initrd=\` + strings.ReplaceAll(uefiDir, "/", `\`) + `\` + InitrdName
	if dtb != "" {
		files = append(files, fat.File{Path: uefiDir + "/" + dtb, Source: cfg.DTB})
		cmd += ` dtb=\` + strings.ReplaceAll(uefiDir, "/", `\`) + `\` + dtb
	}
	// The UEFI shell runs startup.nsh from the first file system it
	// finds when no boot option takes over; the kernel's EFI stub
	// takes initrd= and dtb= from its load options.
	p.script = "@echo -off\r\necho \"Tandem: starting the host\"\r\n" + cmd + " " + cmdline + "\r\n"
	return append(files, fat.File{Path: uefiScript, Data: []byte(p.script)})
}

// ubootFiles are the files U-Boot boots the host from: the kernel, the
// initramfs, the board's device tree as the builder fixes it, and the
// boot script. dtb is the device tree's file name, "" for none.
func (p *plan) ubootFiles(cmdline, dtb string) ([]fat.File, error) {
	b, cfg := p.cfg.Board, p.cfg
	kernel := KernelARM64
	if b.Arch == platforms.ARM {
		kernel = KernelARM
	}
	files := []fat.File{{Path: kernel, Source: cfg.HostKernel}, {Path: InitrdName, Source: cfg.HostInitrd}}
	if dtb != "" {
		data, fixes, err := boardDTB(b, cfg.DTB)
		if err != nil {
			return nil, err
		}
		p.dtbFixes = fixes
		files = append(files, fat.File{Path: dtb, Data: data})
	}
	s, err := BootScript(b, cmdline, kernel, InitrdName, dtb)
	if err != nil {
		return nil, err
	}
	p.script = s
	return append(files, fat.File{Path: b.Image.BootScript, Data: ScriptImage([]byte(s), b.Arch, "Tandem "+b.Name, uint32(cfg.Epoch))}), nil
}

// dataPartitionFiles returns the data partition's files: the manifest, as
// ManifestIn, and the files it names, which keep their paths relative to
// it and so must lie under its directory.
func dataPartitionFiles(cfg Config) ([]DataFile, error) {
	mdir, err := filepath.Abs(filepath.Dir(cfg.Manifest))
	if err != nil {
		return nil, err
	}
	files := []DataFile{{Path: ManifestIn, Source: cfg.Manifest}}
	for _, f := range cfg.ManifestFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(mdir, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("manifest %s names %s, outside its directory %s: the data partition keeps paths relative to the manifest, so move the file under %s and name it relatively", cfg.Manifest, f, mdir, mdir)
		}
		if err := needFile("file named by manifest "+cfg.Manifest+":", f, "fix the path in the manifest or create the file"); err != nil {
			return nil, err
		}
		if rel == ManifestIn {
			continue
		}
		files = append(files, DataFile{Path: rel, Source: f})
	}
	for _, x := range cfg.DataExtra {
		for _, f := range files {
			if f.Path == x.Path {
				return nil, fmt.Errorf("manifest %s names %s, the name of the file the builder writes beside it: rename the file", cfg.Manifest, x.Path)
			}
		}
		files = append(files, x)
	}
	return files, nil
}

// makeInfo derives the plan's seed for its identifiers, hashes the blobs
// and returns the info file, having set p.seed and p.info.
func (p *plan) makeInfo(cmdline string) (fat.File, error) {
	b, cfg := p.cfg.Board, p.cfg
	h := sha256.New()
	fmt.Fprintf(h, "tandem image\x00%s\x00%d\x00%s\x00", b.Name, cfg.Epoch, cmdline)
	if m, err := os.ReadFile(cfg.Manifest); err == nil {
		h.Write(m)
	}
	copy(p.seed[:], h.Sum(nil))
	p.info = Info{Board: b.Name, Epoch: cfg.Epoch, EpochSource: cfg.EpochSource, Cmdline: cmdline, DataLabel: DataLabel}
	// Blob hashes go into the info file, so they are read now.
	for i := range p.blobs {
		sum, err := hashFile(p.blobSrc[i], int64(p.blobs[i].MaxLen))
		if err != nil {
			return fat.File{}, err
		}
		p.blobs[i].SHA256 = sum
	}
	p.info.Blobs = p.blobs
	infoJSON, _ := json.MarshalIndent(p.info, "", "  ")
	return fat.File{Path: InfoName, Data: append(infoJSON, '\n')}, nil
}

// layOut sizes the partitions for p.bootFiles and p.dataFiles and places
// them after the board's first-partition offset, with the types and
// GUIDs of the board's partition table; it sets p.boot, p.data and
// p.size.
func (p *plan) layOut() error {
	b, cfg := p.cfg.Board, p.cfg
	bootSize := bootPartitionSize(p.bootFiles)
	dataSize, err := dataPartitionSize(p.dataFiles, cfg.DataSize)
	if err != nil {
		return err
	}
	start := roundUp(int64(b.Image.FirstPartition), mib)
	p.boot = Partition{Name: "boot", Start: start, Size: bootSize, Bootable: true}
	p.data = Partition{Name: "data", Start: start + bootSize, Size: dataSize}
	p.size = p.data.End()
	if b.Image.Table == platforms.GPT {
		p.size += mib // the backup GPT
		p.boot.Type, p.data.Type = GUIDBasicData, GUIDLinuxFS
		if b.Image.ESP {
			p.boot.Type = GUIDESP
		}
		p.boot.GUID, p.data.GUID = p.uuid("boot partition"), p.uuid("data partition")
	} else {
		p.boot.Type, p.data.Type = fmt.Sprintf("%02x", mbrTypeFAT16LBA), fmt.Sprintf("%02x", mbrTypeLinux)
		if b.Image.ESP {
			p.boot.Type = fmt.Sprintf("%02x", mbrTypeESP)
		}
	}
	return nil
}

// bootPartitionSize is the boot partition's size for files: what they
// take in 32 KiB clusters, an eighth more and 4 MiB for the file system,
// in whole MiB and at least 16 MiB.
func bootPartitionSize(files []fat.File) int64 {
	var need int64
	for _, f := range files {
		n := int64(len(f.Data))
		if f.Source != "" {
			st, _ := os.Stat(f.Source)
			n = st.Size()
		}
		need += roundUp(n, 32<<10)
	}
	size := roundUp(need+need/8+4*mib, mib)
	if size < 16*mib {
		size = 16 * mib
	}
	return size
}

// dataPartitionSize is the data partition's size for files: what they
// take in 4 KiB blocks with an inode block each, an eighth more and
// 40 MiB for the file system, in whole MiB; atLeast, rounded up to a
// MiB, where that is larger.
func dataPartitionSize(files []DataFile, atLeast int64) (int64, error) {
	var need int64
	for _, f := range files {
		n := int64(len(f.Data))
		if f.Source != "" {
			st, err := os.Stat(f.Source)
			if err != nil {
				return 0, err
			}
			n = st.Size()
		}
		need += roundUp(n, 4096) + 4096
	}
	size := roundUp(need+need/8+40*mib, mib)
	if atLeast > size {
		size = roundUp(atLeast, mib)
	}
	return size, nil
}

func blobFix(b *platforms.Board, bl platforms.Blob) string {
	if bl.Package != "" {
		return fmt.Sprintf("Debian ships it in %s (install the package, or pass --blobs DIR holding %s)", bl.Package, bl.File)
	}
	return "Debian does not ship it: " + supplyFix(b, bl.File)
}

func bootFileFix(b *platforms.Board, bf platforms.BootFile) string {
	if bf.Package != "" {
		return fmt.Sprintf("Debian ships it in %s (install the package, or pass --blobs DIR holding %s)", bf.Package, bf.Name)
	}
	return supplyFix(b, bf.Name)
}

// supplyFix says where to put a file the user supplies for board b.
func supplyFix(b *platforms.Board, file string) string {
	if own := b.Blobs(); own != "" {
		return fmt.Sprintf("copy %s from the board vendor's BSP into %s, or into a directory and pass --blobs DIR", file, own)
	}
	return fmt.Sprintf("copy %s from the board vendor's BSP into a directory and pass --blobs DIR", file)
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// uuid derives a version-4-shaped UUID from the plan's seed and a purpose.
func (p *plan) uuid(what string) string {
	h := sha256.Sum256(append(p.seed[:], what...))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return strings.ToUpper(x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32])
}

func (p *plan) u32(what string) uint32 {
	h := sha256.Sum256(append(p.seed[:], what...))
	return binary.LittleEndian.Uint32(h[:])
}

func hashFile(file string, limit int64) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, limit)); err != nil {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (p *plan) write(ctx context.Context, f *os.File, work string, pr *Progress) (*Result, error) {
	b := p.cfg.Board
	res := &Result{Size: p.size, Table: b.Image.Table, Partitions: []Partition{p.boot, p.data}, Blobs: p.blobs, Script: p.script, DTBFixes: p.dtbFixes, Skipped: p.skipped}
	for _, bf := range p.bootFiles {
		res.BootFiles = append(res.BootFiles, bf.Path)
	}
	if err := f.Truncate(p.size); err != nil {
		return nil, fmt.Errorf("sizing image: %w", err)
	}
	put := func(off int64, data []byte) error {
		if _, err := f.WriteAt(data, off); err != nil {
			return err
		}
		res.mapped.add(off, int64(len(data)))
		return nil
	}
	pr.Stage(fmt.Sprintf("writing the %s partition table", b.Image.Table), 0)
	switch b.Image.Table {
	case platforms.GPT:
		g, err := writeGPT(res.Partitions, p.size, p.uuid("disk"))
		if err != nil {
			return nil, err
		}
		if err := put(0, g.primary); err != nil {
			return nil, err
		}
		if err := put(p.size-int64(len(g.backup)), g.backup); err != nil {
			return nil, err
		}
	default:
		m, err := writeMBR(res.Partitions, p.u32("mbr signature"))
		if err != nil {
			return nil, err
		}
		if err := put(0, m); err != nil {
			return nil, err
		}
	}
	for i, bl := range p.blobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pr.Stage(fmt.Sprintf("writing %s (%s) at %#x", bl.Name, bl.File, bl.Offset), bl.Size)
		if err := copyBlob(f, p.blobSrc[i], bl, pr); err != nil {
			return nil, err
		}
		res.mapped.add(int64(bl.Offset), bl.Size)
	}
	pr.Stage(fmt.Sprintf("writing the boot partition (FAT16, %s)", humanBytes(p.boot.Size)), totalSize(p.bootFiles))
	ranges, err := fat.Write(progressWriterAt{ctx, f, pr}, p.boot.Start, p.bootFiles, fat.Options{
		Size: p.boot.Size, Label: BootLabel, Serial: p.u32("fat serial"),
		Time: time.Unix(p.cfg.Epoch, 0), HiddenSectors: uint32(p.boot.Start / platforms.Sector),
	})
	if err != nil {
		return nil, fmt.Errorf("boot partition: %w", err)
	}
	for _, r := range ranges {
		res.mapped.add(p.boot.Start+r.Off, r.Len)
	}
	pr.Stage(fmt.Sprintf("building the data partition (ext4, %s)", humanBytes(p.data.Size)), 0)
	ext := filepath.Join(work, "data.ext4")
	if err := makeExt4(ctx, ext, filepath.Join(work, "data"), p.dataFiles, ext4Params{Size: p.data.Size, Label: DataLabel, UUID: p.uuid("data fs"), Epoch: p.cfg.Epoch}); err != nil {
		return nil, fmt.Errorf("data partition: %w", err)
	}
	ef, err := os.Open(ext)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	ex, err := dataExtents(ef)
	if err != nil {
		return nil, fmt.Errorf("data partition: %w", err)
	}
	var total int64
	for _, r := range ex {
		total += r.Len
	}
	pr.Stage("copying the data partition", total)
	for _, r := range ex {
		if _, err := io.Copy(ctxWriter{ctx, pr.Writer(io.NewOffsetWriter(f, p.data.Start+r.Off))}, io.NewSectionReader(ef, r.Off, r.Len)); err != nil {
			return nil, fmt.Errorf("copying the data partition: %w", err)
		}
		res.mapped.add(p.data.Start+r.Off, r.Len)
	}
	pr.Stage("writing the block map", 0)
	return res, nil
}

func totalSize(files []fat.File) int64 {
	var n int64
	for _, f := range files {
		if f.Source != "" {
			if st, err := os.Stat(f.Source); err == nil {
				n += st.Size()
			}
		} else {
			n += int64(len(f.Data))
		}
	}
	return n
}

// copyBlob copies a blob to its offset with a length limit: a file that
// grew past its slot since it was checked is an error, not an overwrite
// of the next blob.
func copyBlob(w io.WriterAt, src string, bl PlacedBlob, pr *Progress) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, bl.MaxLen+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if uint64(n) > bl.MaxLen {
		return fmt.Errorf("%w: %s blob %s grew past its %d-byte slot while the image was written", ErrBlobTooLarge, bl.Name, src, bl.MaxLen)
	}
	if int64(n) != bl.Size {
		return fmt.Errorf("%s blob %s changed size while the image was written", bl.Name, src)
	}
	if _, err := w.WriteAt(buf[:n], int64(bl.Offset)); err != nil {
		return err
	}
	pr.Add(int64(n))
	return nil
}
