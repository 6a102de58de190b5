package images

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/tandem-hv/tandem/platforms"
)

func testGPT(t testing.TB) []byte {
	parts := []Partition{
		{Name: "boot", Start: 1 << 20, Size: 16 << 20, Type: GUIDESP, GUID: "11111111-2222-4333-8444-555555555555", Bootable: true},
		{Name: "data", Start: 17 << 20, Size: 32 << 20, Type: GUIDLinuxFS, GUID: "21111111-2222-4333-8444-555555555555"},
	}
	g, err := writeGPT(parts, 50<<20, "31111111-2222-4333-8444-555555555555")
	if err != nil {
		t.Fatalf("writeGPT() = %v", err)
	}
	return g.primary
}

func TestReadPartitionsRoundTrip(t *testing.T) {
	table, parts, err := ReadPartitions(testGPT(t))
	if err != nil || table != platforms.GPT || len(parts) != 2 {
		t.Fatalf("ReadPartitions() = %v, %d, %v; want gpt, 2", table, len(parts), err)
	}
	if p := parts[0]; p.Name != "boot" || p.Type != GUIDESP || p.Start != 1<<20 || p.Size != 16<<20 || !p.Bootable || p.GUID != "11111111-2222-4333-8444-555555555555" {
		t.Errorf("partition 1 = %+v, want the boot ESP as written", p)
	}
	m, err := writeMBR([]Partition{{Start: 1 << 20, Size: 8 << 20, Type: "0e", Bootable: true}}, 0xdeadbeef)
	if err != nil {
		t.Fatal(err)
	}
	table, parts, err = ReadPartitions(m)
	if err != nil || table != platforms.MBR || len(parts) != 1 || parts[0].Start != 1<<20 || !parts[0].Bootable {
		t.Errorf("ReadPartitions(MBR) = %v, %+v, %v", table, parts, err)
	}
}

// TestReadPartitionsCorrupt corrupts a good GPT one field at a time.
func TestReadPartitionsCorrupt(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(b []byte)
	}{
		{"MBR signature", func(b []byte) { b[510] = 0 }},
		{"GPT signature", func(b []byte) { b[512] = 'X' }},
		{"header CRC", func(b []byte) { b[512+16] ^= 1 }},
		{"header field", func(b []byte) { b[512+40] ^= 1 }},
		{"entry count", func(b []byte) { binary.LittleEndian.PutUint32(b[512+80:], 4) }},
		{"entries CRC", func(b []byte) { b[1024+100] ^= 1 }},
		{"short", func(b []byte) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := testGPT(t)
			tt.edit(b)
			if tt.name == "short" {
				b = b[:1000]
			}
			if _, _, err := ReadPartitions(b); !errors.Is(err, ErrNoTable) {
				t.Errorf("ReadPartitions() = %v, want ErrNoTable", err)
			}
		})
	}
}

func FuzzReadPartitions(f *testing.F) {
	f.Add(testGPT(f))
	m, _ := writeMBR([]Partition{{Start: 1 << 20, Size: 8 << 20, Type: "83"}}, 1)
	f.Add(m)
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadPartitions(b)
	})
}

func FuzzParseBmap(f *testing.F) {
	f.Add((&Bmap{ImageSize: 8192, BlockSize: 4096, BlocksCount: 2, Ranges: []BmapRange{{0, 1, "00"}}}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseBmap(b)
	})
}
