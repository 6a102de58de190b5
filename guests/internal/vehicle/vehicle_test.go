package vehicle

import "testing"

func TestRoundTrip(t *testing.T) {
	want := State{Seq: 41, Speed: 5230, RPM: 2100, Gear: 4}
	var b [Size]byte
	want.Encode(b[:])
	got, ok := Decode(b[:])
	if !ok || got != want {
		t.Fatalf("Decode(Encode(%+v)) = %+v, %v", want, got, ok)
	}
}

// TestCorruptionDetected flips one bit in every byte: the CRC must catch
// each, as the E2E protection promises.
func TestCorruptionDetected(t *testing.T) {
	var good [Size]byte
	State{Seq: 7, Speed: 100, RPM: 900, Gear: 1}.Encode(good[:])
	for i := 0; i < Size; i++ {
		for bit := 0; bit < 8; bit++ {
			b := good
			b[i] ^= 1 << bit
			if s, ok := Decode(b[:]); ok {
				t.Errorf("byte %d bit %d flipped: Decode() = %+v, true; want the CRC to fail", i, bit, s)
			}
		}
	}
}
