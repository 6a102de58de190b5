package devfuzz

import (
	"reflect"
	"testing"
)

func TestDecodeEncode(t *testing.T) {
	ops := []Op{R(0x10, 4), W(0x3, 1, 0x5a), W(0xff8, 8, 0x1122334455667788), E64(3, 42), E(15, []byte("hi")), R(0xfff, 2)}
	got := Decode(Encode(ops...), 0x1000)
	// The last read does not fit at 0xfff: it moves down to 0xffe.
	want := append([]Op(nil), ops...)
	want[5].Off = 0xffe
	want[3].Value, want[4].Value = 42, uint64('h')|uint64('i')<<8
	if len(got) != len(want) {
		t.Fatalf("Decode(Encode(ops)) = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i].String() || got[i].Value != want[i].Value || !reflect.DeepEqual(got[i].Data, want[i].Data) {
			t.Errorf("op %d = %v (value %#x), want %v (value %#x)", i, got[i], got[i].Value, want[i], want[i].Value)
		}
	}
}

func TestDecodeStopsAtATruncatedOp(t *testing.T) {
	for _, in := range [][]byte{{1}, {1, 0}, {1 | 2<<2, 0, 0, 1, 2}, {2, 5, 1}} {
		if ops := Decode(in, 8); len(ops) != 0 {
			t.Errorf("Decode(%x) = %v, want nothing", in, ops)
		}
	}
}

// FuzzDecode: any input decodes, within MaxOps, to accesses inside the
// window.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(R(0, 4), W(4, 8, 1), E(1, nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, span := range []uint64{8, 0x200, 0x1000} {
			ops := Decode(data, span)
			if len(ops) > MaxOps {
				t.Fatalf("%d ops, more than %d", len(ops), MaxOps)
			}
			for _, op := range ops {
				if op.Kind != Event && op.Off+uint64(op.Size) > span {
					t.Fatalf("%v outside a window of %#x", op, span)
				}
			}
		}
	})
}
