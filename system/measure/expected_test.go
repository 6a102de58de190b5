package measure

import (
	"strings"
	"testing"
)

// TestExpectedRoundTrip writes an expectation and reads it back.
func TestExpectedRoundTrip(t *testing.T) {
	x := Predict(sampleComponents())
	y, err := ParseExpected("m.json", x.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if y.Value != x.Value || len(y.Components) != len(x.Components) {
		t.Fatalf("ParseExpected(Marshal()) = %+v, want %+v", y, x)
	}
	for i := range x.Components {
		if y.Components[i] != x.Components[i] {
			t.Errorf("component %d = %+v, want %+v", i, y.Components[i], x.Components[i])
		}
	}
}

// TestParseExpectedCorrupt edits a good file one field at a time: each
// error names the file and the field.
func TestParseExpectedCorrupt(t *testing.T) {
	good := string(Predict(sampleComponents()).Marshal())
	c0 := sampleComponents()[0]
	tests := []struct {
		name, old, new, want string
	}{
		{"unknown field", `"pcr": 15`, `"pcr": 15, "extra": 1`, `m.json: json: unknown field "extra"`},
		{"other bank", `"sha256",`, `"sha1",`, `m.json: bank: "sha1"`},
		{"other PCR", `"pcr": 15`, `"pcr": 9`, "m.json: pcr: 9"},
		{"short value", `"value": "`, `"value": "00`, "m.json: value:"},
		{"bad digest", c0.Hex(), "zz" + c0.Hex()[2:], "m.json: events[0].sha256"},
		{"edited digest", c0.Hex(), "00" + c0.Hex()[2:], "the file was edited"},
		{"blank guest", `"guest": "control"`, `"guest": ""`, "m.json: events[0]: guest and component"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(good, tt.old, tt.new, 1)
			if bad == good {
				t.Fatalf("%q not in the file", tt.old)
			}
			if _, err := ParseExpected("m.json", []byte(bad)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseExpected() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCompare names each way measurements depart from the expectation.
func TestCompare(t *testing.T) {
	cs := sampleComponents()
	x := Predict(cs)
	changed := cs[0]
	changed.Digest = Digest([]byte("kernel, one byte changed"))
	extra := Component{Guest: "new", Kind: KindKernel, Name: "k", Digest: Digest(nil)}
	tests := []struct {
		name     string
		measured []Component
		want     []string
	}{
		{"all match", cs, nil},
		{"kernel changed", []Component{changed, cs[1], cs[2]}, []string{"control kernel vmlinuz differs: sha256 " + changed.Hex() + ", expected " + cs[0].Hex()}},
		{"measured again after a change", []Component{cs[0], cs[1], cs[2], changed}, []string{"control kernel vmlinuz differs"}},
		{"one missing", cs[:2], []string{"infotainment initrd info with space.cpio.gz: expected (sha256 " + cs[2].Hex() + ") but not measured"}},
		{"one unexpected", append(append([]Component(nil), cs...), extra), []string{"new kernel k: measured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diffs := x.Compare(tt.measured)
			if len(diffs) != len(tt.want) {
				t.Fatalf("Compare() = %v, want %d differences", diffs, len(tt.want))
			}
			for i, d := range diffs {
				if !strings.HasPrefix(d.String(), tt.want[i]) {
					t.Errorf("difference %d = %q, want %q", i, d, tt.want[i])
				}
			}
		})
	}
}
