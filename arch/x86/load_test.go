package x86

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/mem"
)

// realKernel is where the project's download step caches Debian's
// linux-image-cloud-amd64 bzImage (relative to this package).
const realKernel = "../../build/cache/x86/vmlinuz"

// Fields of the synthetic bzImage below.
const (
	fakeSetupSects = 4
	fakePayloadLen = 0x3000
	fakeInitSize   = 0x100000
)

// fakeBzImage returns a minimal bzImage of protocol 2.15: a setup of
// four sectors and a payload that starts with code (at offset 0x200, the
// 64-bit entry) and is otherwise a counting pattern.
func fakeBzImage(code []byte) []byte {
	setup := (fakeSetupSects + 1) * sectorLen
	b := make([]byte, setup+fakePayloadLen)
	le := binary.LittleEndian
	b[hdrSetupSects] = fakeSetupSects
	le.PutUint32(b[hdrSyssize:], fakePayloadLen/16)
	le.PutUint16(b[hdrBootFlag:], bootFlag)
	b[hdrJump], b[hdrJump+1] = 0xeb, 0x6a // jmp to 0x26c, the 2.15 header's end
	le.PutUint32(b[hdrHeader:], hdrMagic)
	le.PutUint16(b[hdrVersion:], 0x020f)
	b[hdrLoadflags] = loadedHigh
	le.PutUint32(b[hdrInitrdAddrMax:], 0x7fffffff)
	le.PutUint32(b[hdrKernelAlignment:], 0x200000)
	le.PutUint16(b[hdrXloadflags:], xlfKernel64)
	le.PutUint32(b[hdrCmdlineSize:], 0x7ff)
	le.PutUint64(b[hdrPrefAddress:], KernelAddr)
	le.PutUint32(b[hdrInitSize:], fakeInitSize)
	for i := setup; i < len(b); i++ {
		b[i] = byte(i)
	}
	copy(b[setup+entry64Offset:], code)
	return b
}

func newTestMemory(t testing.TB, size uint64) *mem.Memory {
	t.Helper()
	m, err := mem.New(MemoryRanges(size), mem.Options{})
	if err != nil {
		t.Fatalf("mem.New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMemoryRanges(t *testing.T) {
	tests := []struct {
		name string
		size uint64
		want []mem.Range
	}{
		{"small", 256 << 20, []mem.Range{{GPA: 0, Size: 256 << 20}}},
		{"exactly 3 GiB", 3 << 30, []mem.Range{{GPA: 0, Size: 3 << 30}}},
		{"split", 6 << 30, []mem.Range{{GPA: 0, Size: 3 << 30}, {GPA: 4 << 30, Size: 3 << 30}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MemoryRanges(tt.size)
			if len(got) != len(tt.want) {
				t.Fatalf("MemoryRanges(%#x) = %v, want %v", tt.size, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("MemoryRanges(%#x) = %v, want %v", tt.size, got, tt.want)
				}
			}
		})
	}
}

func TestVirtioSlot(t *testing.T) {
	seen := map[uint32]bool{}
	for i := 0; i < NumVirtioSlots; i++ {
		p, err := VirtioSlot(i)
		if err != nil {
			t.Fatalf("VirtioSlot(%d) = %v", i, err)
		}
		if want := (devices.Placement{Base: VirtioBase + uint64(i)*0x1000, Size: 0x1000, IRQ: p.IRQ}); p != want {
			t.Errorf("VirtioSlot(%d) = %+v, want %+v", i, p, want)
		}
		if p.Base < LowMemEnd || p.Base+p.Size > IOAPICAddr {
			t.Errorf("VirtioSlot(%d) at %#x: outside the hole below the IOAPIC", i, p.Base)
		}
		switch {
		case p.IRQ == 8 || p.IRQ == 9 || p.IRQ <= COM1IRQ || p.IRQ > 23:
			t.Errorf("VirtioSlot(%d).IRQ = %d: reserved or past the IOAPIC's 24 pins", i, p.IRQ)
		case seen[p.IRQ]:
			t.Errorf("VirtioSlot(%d).IRQ = %d: shared with another slot", i, p.IRQ)
		}
		seen[p.IRQ] = true
	}
	for _, i := range []int{-1, NumVirtioSlots} {
		if _, err := VirtioSlot(i); !errors.Is(err, ErrNoSlot) {
			t.Errorf("VirtioSlot(%d) = %v, want %v", i, err, ErrNoSlot)
		}
	}
}

func TestLoadSynthetic(t *testing.T) {
	const memSize = 64 << 20
	m := newTestMemory(t, memSize)
	img := fakeBzImage([]byte{0xf4})
	kernel := writeFile(t, "bzImage", img)
	initrd := bytes.Repeat([]byte("initrd!"), 1000)
	initrdPath := writeFile(t, "initrd", initrd)
	const cmdline = "console=ttyS0 panic=-1"
	b, err := Load(m, Guest{Kernel: kernel, Initrd: initrdPath, Cmdline: cmdline, CPUs: 2, Serial: true})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if b.Entry != KernelAddr+0x200 || b.LoadAddr != KernelAddr {
		t.Errorf("Load() entry %#x at %#x, want %#x at %#x", b.Entry, b.LoadAddr, KernelAddr+0x200, KernelAddr)
	}
	payload := make([]byte, fakePayloadLen)
	if err := m.ReadAt(payload, KernelAddr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, img[(fakeSetupSects+1)*sectorLen:]) {
		t.Errorf("protected-mode kernel at %#x differs from the image's payload", KernelAddr)
	}
	zp := make([]byte, pageSize)
	if err := m.ReadAt(zp, ZeroPageAddr); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if !bytes.Equal(zp[hdrSetupSects:hdrTypeOfLoader], img[hdrSetupSects:hdrTypeOfLoader]) {
		t.Errorf("zero page setup header differs from the image's")
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"type_of_loader", uint64(zp[hdrTypeOfLoader]), loaderUndefined},
		{"loadflags", uint64(zp[hdrLoadflags]), loadedHigh | canUseHeap},
		{"heap_end_ptr", uint64(le.Uint16(zp[hdrHeapEndPtr:])), heapEnd},
		{"cmd_line_ptr", uint64(le.Uint32(zp[hdrCmdLinePtr:])), CmdlineAddr},
		{"ramdisk_image", uint64(le.Uint32(zp[hdrRamdiskImage:])), b.InitrdAddr},
		{"ramdisk_size", uint64(le.Uint32(zp[hdrRamdiskSize:])), uint64(len(initrd))},
		{"ext_ramdisk_image", uint64(le.Uint32(zp[bpExtRamdiskImage:])), 0},
		{"acpi_rsdp_addr", le.Uint64(zp[bpACPIRSDPAddr:]), ACPIAddr},
		{"e820_entries", uint64(zp[bpE820Entries]), 3},
		{"sentinel", uint64(zp[0x1ef]), 0},
		{"initrd alignment", b.InitrdAddr % pageSize, 0},
		{"initrd at top of RAM", (memSize - b.InitrdAddr) / pageSize, uint64(len(initrd)+pageSize-1) / pageSize},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("Load() %s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	got := make([]byte, len(cmdline)+1)
	if err := m.ReadAt(got, CmdlineAddr); err != nil {
		t.Fatal(err)
	}
	if string(got) != cmdline+"\x00" {
		t.Errorf("command line = %q, want %q", got, cmdline+"\x00")
	}
	gotInitrd := make([]byte, len(initrd))
	if err := m.ReadAt(gotInitrd, b.InitrdAddr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotInitrd, initrd) {
		t.Errorf("initrd at %#x differs from the file", b.InitrdAddr)
	}
	wantE820 := []e820Entry{{0, ebdaAddr, e820RAM}, {ACPIAddr, biosEnd - ACPIAddr, e820Reserved}, {biosEnd, memSize - biosEnd, e820RAM}}
	for i, w := range wantE820 {
		o := bpE820Table + i*e820EntrySize
		g := e820Entry{le.Uint64(zp[o:]), le.Uint64(zp[o+8:]), le.Uint32(zp[o+16:])}
		if g != w {
			t.Errorf("e820[%d] = %+v, want %+v", i, g, w)
		}
	}
	// The tables Load wrote are where the kernel will look.
	sig := make([]byte, 8)
	m.ReadAt(sig, ACPIAddr)
	if string(sig) != "RSD PTR " {
		t.Errorf("at ACPIAddr: %q, want the RSDP", sig)
	}
	m.ReadAt(sig[:4], MPTableAddr)
	if string(sig[:4]) != "_MP_" {
		t.Errorf("at MPTableAddr: %q, want the MP floating pointer", sig[:4])
	}
}

func TestE820HighMemory(t *testing.T) {
	if strconv.IntSize == 32 {
		// The loader builds for 32-bit ARM too, where 5 GiB cannot be
		// mapped: the guest is refused, not given a cut mapping.
		if _, err := mem.New(MemoryRanges(5<<30), mem.Options{}); !errors.Is(err, mem.ErrAddressSpace) {
			t.Fatalf("mem.New(5 GiB) on a 32-bit VMM = %v, want ErrAddressSpace", err)
		}
		return
	}
	m := newTestMemory(t, 5<<30)
	got := e820Map(m)
	want := []e820Entry{{0, ebdaAddr, e820RAM}, {ACPIAddr, biosEnd - ACPIAddr, e820Reserved},
		{biosEnd, LowMemEnd - biosEnd, e820RAM}, {HighMemBase, 2 << 30, e820RAM}}
	if len(got) != len(want) {
		t.Fatalf("e820Map() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("e820Map()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLoadRealKernel(t *testing.T) {
	path := realKernel
	if p := os.Getenv("TANDEM_X86_KERNEL"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no Debian x86 kernel at %s (the download step puts linux-image-cloud-amd64's vmlinuz there): %v", path, err)
	}
	m := newTestMemory(t, 256<<20)
	initrd := writeFile(t, "initrd", make([]byte, 3<<20))
	b, err := Load(m, Guest{Kernel: path, Initrd: initrd, Cmdline: "console=ttyS0", CPUs: 4, Serial: true,
		VirtioMMIO: []devices.Placement{{Base: VirtioBase, Size: VirtioSlotSize, IRQ: 5}}})
	if err != nil {
		t.Fatalf("Load(%s) = %v", path, err)
	}
	zp, _ := m.Slice(ZeroPageAddr, pageSize)
	le := binary.LittleEndian
	if v := le.Uint16(zp[hdrVersion:]); v < minProtocol {
		t.Errorf("zero page version = %#x, want >= %#x", v, minProtocol)
	}
	// Debian's kernel is relocatable with pref_address 16 MiB: it is loaded
	// there and runs in place.
	pref := le.Uint64(zp[hdrPrefAddress:])
	initSize := uint64(le.Uint32(zp[hdrInitSize:]))
	if zp[hdrRelocatable] != 0 && (b.LoadAddr != pref || b.Entry != pref+0x200) {
		t.Errorf("Load(%s) loaded at %#x entry %#x, want pref_address %#x entry %#x", path, b.LoadAddr, b.Entry, pref, pref+0x200)
	}
	if b.InitrdAddr < max(pref, b.LoadAddr)+initSize {
		t.Errorf("initrd at %#x overlaps the kernel's %#x bytes at %#x", b.InitrdAddr, initSize, max(pref, b.LoadAddr))
	}
	// The kernel needs about 70 MiB below the hole; 32 MiB is too little.
	small := newTestMemory(t, 32<<20)
	if _, err := Load(small, Guest{Kernel: path, CPUs: 1}); !errors.Is(err, ErrKernelTooLarge) {
		t.Errorf("Load(%s) into 32 MiB = %v, want %v", path, err, ErrKernelTooLarge)
	}
}

func TestLoadErrors(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name    string
		corrupt func(b []byte) []byte
		cmdline string
		initrd  int // bytes of initrd, 0 for none
		memSize uint64
		want    error
		field   string // named in the error
	}{
		{name: "boot flag", corrupt: func(b []byte) []byte { b[hdrBootFlag] = 0; return b }, want: ErrNotBzImage, field: "boot_flag"},
		{name: "magic", corrupt: func(b []byte) []byte { b[hdrHeader] = 'X'; return b }, want: ErrNotBzImage, field: "magic"},
		{name: "protocol 2.06", corrupt: func(b []byte) []byte { le.PutUint16(b[hdrVersion:], 0x0206); return b }, want: ErrProtocolTooOld, field: "version 2.06"},
		{name: "short header", corrupt: func(b []byte) []byte { b[hdrJump+1] = 0x30; return b }, want: ErrNotBzImage, field: "init_size"},
		{name: "zImage", corrupt: func(b []byte) []byte { b[hdrLoadflags] = 0; return b }, want: ErrNotBzImage, field: "LOADED_HIGH"},
		{name: "32-bit kernel", corrupt: func(b []byte) []byte { le.PutUint16(b[hdrXloadflags:], 0); return b }, want: ErrNot64Bit, field: "XLF_KERNEL_64"},
		{name: "no payload", corrupt: func(b []byte) []byte { le.PutUint32(b[hdrSyssize:], 0); return b }, want: ErrNotBzImage, field: "syssize"},
		{name: "syssize past the end", corrupt: func(b []byte) []byte { le.PutUint32(b[hdrSyssize:], fakePayloadLen/16+1); return b }, want: ErrTruncated, field: "syssize"},
		{name: "setup_sects past the end", corrupt: func(b []byte) []byte { b[hdrSetupSects] = 200; return b }, want: ErrTruncated, field: "setup_sects"},
		{name: "truncated file", corrupt: func(b []byte) []byte { return b[:len(b)-1] }, want: ErrTruncated, field: "bytes"},
		{name: "truncated header", corrupt: func(b []byte) []byte { return b[:0x240] }, want: ErrTruncated, field: "header"},
		{name: "empty file", corrupt: func(b []byte) []byte { return nil }, want: ErrNotBzImage, field: "0 bytes"},
		{name: "init_size below payload", corrupt: func(b []byte) []byte { le.PutUint32(b[hdrInitSize:], 16); return b }, want: ErrNotBzImage, field: "init_size"},
		{name: "init_size past RAM", corrupt: func(b []byte) []byte { le.PutUint32(b[hdrInitSize:], 0x7000000); return b }, want: ErrKernelTooLarge, field: "init_size"},
		{name: "pref_address past RAM", corrupt: func(b []byte) []byte { le.PutUint64(b[hdrPrefAddress:], 1<<40); return b }, want: ErrKernelTooLarge, field: "init_size"},
		{name: "command line too long", cmdline: strings.Repeat("x", 0x800), want: ErrCmdlineTooLong, field: "cmdline_size"},
		{name: "command line over a small cmdline_size", corrupt: func(b []byte) []byte { le.PutUint32(b[hdrCmdlineSize:], 8); return b }, cmdline: "console=ttyS0", want: ErrCmdlineTooLong, field: "cmdline_size"},
		{name: "initrd too large", initrd: 63 << 20, want: ErrInitrdTooLarge, field: "initrd_addr_max"},
		{name: "initrd above initrd_addr_max", corrupt: func(b []byte) []byte { le.PutUint32(b[hdrInitrdAddrMax:], 0x1fffff); return b }, initrd: 4 << 20, want: ErrInitrdTooLarge, field: "initrd_addr_max"},
		{name: "RAM smaller than the BIOS area", memSize: 1 << 20, want: ErrKernelTooLarge, field: "RAM below 4 GiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := fakeBzImage(nil)
			if tt.corrupt != nil {
				img = tt.corrupt(img)
			}
			kernel := writeFile(t, "bzImage", img)
			size := tt.memSize
			if size == 0 {
				size = 64 << 20
			}
			g := Guest{Kernel: kernel, Cmdline: tt.cmdline, CPUs: 1}
			if tt.initrd > 0 {
				g.Initrd = writeFile(t, "initrd", make([]byte, tt.initrd))
			}
			_, err := Load(newTestMemory(t, size), g)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load() = %v, want %v", err, tt.want)
			}
			file := kernel
			if tt.want == ErrInitrdTooLarge {
				file = g.Initrd
			}
			if tt.want != ErrKernelTooLarge || tt.memSize == 0 {
				if !strings.Contains(err.Error(), file) {
					t.Errorf("Load() = %q, want it to name %s", err, file)
				}
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Load() = %q, want it to mention %q", err, tt.field)
			}
		})
	}
}

func TestLoadBadGuest(t *testing.T) {
	kernel := writeFile(t, "bzImage", fakeBzImage(nil))
	tests := []struct {
		name string
		g    Guest
		want string
	}{
		{"no CPUs", Guest{Kernel: kernel}, "vCPU count"},
		{"too many CPUs", Guest{Kernel: kernel, CPUs: MaxCPUs + 1}, "vCPU count"},
		{"missing kernel", Guest{Kernel: "/nonexistent/bzImage", CPUs: 1}, "/nonexistent/bzImage"},
		{"missing initrd", Guest{Kernel: kernel, Initrd: "/nonexistent/initrd", CPUs: 1}, "/nonexistent/initrd"},
		{"empty initrd", Guest{Kernel: kernel, Initrd: writeFile(t, "empty", nil), CPUs: 1}, "empty"},
		{"virtio above 4 GiB", Guest{Kernel: kernel, CPUs: 1, VirtioMMIO: []devices.Placement{{Base: 1 << 32, Size: 0x1000, IRQ: 5}}}, "below 4 GiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(newTestMemory(t, 64<<20), tt.g)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func FuzzLoadBzImage(f *testing.F) {
	f.Add(fakeBzImage([]byte{0xf4}))
	short := fakeBzImage(nil)
	f.Add(short[:0x300])
	if b, err := os.ReadFile(realKernel); err == nil {
		f.Add(b[:64<<10]) // the header and the start of the payload
	}
	m := newTestMemory(f, 32<<20)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, img, err := loadKernel(m, bytes.NewReader(data), int64(len(data)), 32<<20)
		if err != nil {
			return
		}
		if b.LoadAddr < KernelAddr || img.runAddr(b.LoadAddr)+img.initSize > 32<<20 || b.Entry != b.LoadAddr+entry64Offset {
			t.Errorf("loadKernel() accepted a kernel at %#x (entry %#x, init_size %#x) outside 32 MiB", b.LoadAddr, b.Entry, img.initSize)
		}
		if img.payloadOff+img.payloadLen > uint64(len(data)) {
			t.Errorf("loadKernel() accepted a payload %#x+%#x past the %d-byte file", img.payloadOff, img.payloadLen, len(data))
		}
	})
}
