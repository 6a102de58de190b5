package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Expected is what a board's measurements should be: written by `tandem
// image build` beside the image and into its data partition, read by the
// supervisor (for measured: required) and by `tandem attest`.
type Expected struct {
	PCR        uint32
	Value      [sha256.Size]byte // PCR's value once every guest is measured
	Components []Component       // in the order they are extended
}

// Predict is the expectation for components extended, in order, into a
// freshly reset PCR.
func Predict(cs []Component) *Expected {
	return &Expected{PCR: PCR, Value: Replay(Events(cs), PCR), Components: cs}
}

// Digest returns the expected digest of the component c names, if any.
func (x *Expected) Digest(c Component) ([sha256.Size]byte, bool) {
	for _, e := range x.Components {
		if e.Same(c) {
			return e.Digest, true
		}
	}
	return [sha256.Size]byte{}, false
}

// expectedJSON is the file's form: hex digests, and a bank that says
// which hash they are.
type expectedJSON struct {
	PCR    uint32          `json:"pcr"`
	Bank   string          `json:"bank"`
	Value  string          `json:"value"`
	Events []componentJSON `json:"events"`
}

type componentJSON struct {
	Guest     string `json:"guest"`
	Component string `json:"component"`
	Name      string `json:"name,omitempty"`
	SHA256    string `json:"sha256"`
}

const bankSHA256 = "sha256"

// Marshal writes the expectation as indented JSON.
func (x *Expected) Marshal() []byte {
	j := expectedJSON{PCR: x.PCR, Bank: bankSHA256, Value: hex.EncodeToString(x.Value[:]), Events: []componentJSON{}}
	for _, c := range x.Components {
		j.Events = append(j.Events, componentJSON{Guest: c.Guest, Component: c.Kind, Name: c.Name, SHA256: c.Hex()})
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		panic(err) // only strings and numbers: it cannot fail
	}
	return append(b, '\n')
}

// ParseExpected reads an expectation; file names it in errors.
func ParseExpected(file string, b []byte) (*Expected, error) {
	var j expectedJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%s: %w (write it with tandem image build)", file, err)
	}
	if j.Bank != bankSHA256 {
		return nil, fmt.Errorf("%s: bank: %q, want %q", file, j.Bank, bankSHA256)
	}
	if j.PCR != PCR {
		return nil, fmt.Errorf("%s: pcr: %d, Tandem measures into PCR %d", file, j.PCR, PCR)
	}
	x := &Expected{PCR: j.PCR}
	if err := unhex(j.Value, x.Value[:]); err != nil {
		return nil, fmt.Errorf("%s: value: %w", file, err)
	}
	for i, e := range j.Events {
		c := Component{Guest: e.Guest, Kind: e.Component, Name: e.Name}
		if c.Guest == "" || c.Kind == "" || strings.ContainsAny(c.Guest+c.Kind, " \n") {
			return nil, fmt.Errorf("%s: events[%d]: guest and component must be single words, got %q and %q", file, i, c.Guest, c.Kind)
		}
		if err := unhex(e.SHA256, c.Digest[:]); err != nil {
			return nil, fmt.Errorf("%s: events[%d].sha256: %w", file, i, err)
		}
		x.Components = append(x.Components, c)
	}
	if got := Replay(Events(x.Components), PCR); got != x.Value {
		return nil, fmt.Errorf("%s: value: %x, but its events extend PCR %d to %x: the file was edited; build it again with tandem image build", file, x.Value, PCR, got)
	}
	return x, nil
}

// LoadExpected reads an expectation file.
func LoadExpected(file string) (*Expected, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading expected measurements: %w", err)
	}
	return ParseExpected(file, b)
}

func unhex(s string, dst []byte) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(dst) {
		return fmt.Errorf("%q: want %d hex digits", s, 2*len(dst))
	}
	copy(dst, b)
	return nil
}

// Difference is one way a board's measurements depart from the
// expectation.
type Difference struct {
	Component Component // as measured; for a missing one, as expected
	// Expected is the expected digest; Missing says the component was
	// expected and never measured, Unexpected that it was measured and
	// not expected.
	Expected            [sha256.Size]byte
	Missing, Unexpected bool
}

func (d Difference) String() string {
	switch {
	case d.Missing:
		return fmt.Sprintf("%s: expected (sha256 %s) but not measured", d.Component, d.Component.Hex())
	case d.Unexpected:
		return fmt.Sprintf("%s: measured (sha256 %s) but not expected", d.Component, d.Component.Hex())
	}
	return fmt.Sprintf("%s differs: sha256 %s, expected %s", d.Component, d.Component.Hex(), hex.EncodeToString(d.Expected[:]))
}

// Compare sets the components measured (in order, from the event log)
// against the expectation. A component measured again after a change (a
// restarted guest whose kernel was replaced) is compared each time.
func (x *Expected) Compare(measured []Component) []Difference {
	var out []Difference
	seen := make([]bool, len(x.Components))
	for _, m := range measured {
		found := false
		for i, e := range x.Components {
			if e.Same(m) {
				found, seen[i] = true, true
				if e.Digest != m.Digest {
					out = append(out, Difference{Component: m, Expected: e.Digest})
				}
				break
			}
		}
		if !found {
			out = append(out, Difference{Component: m, Unexpected: true})
		}
	}
	for i, e := range x.Components {
		if !seen[i] {
			out = append(out, Difference{Component: e, Missing: true})
		}
	}
	return out
}
