package system

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/tandem-hv/tandem/system/measure"
)

// measurer is the supervisor's measured boot: before a guest's VMM
// starts, it hashes the guest's components, extends those not measured
// yet (or changed since) into measure.PCR and appends them to the event
// log, and says whether the guest may start.
type measurer struct {
	s        *Supervisor
	tpmPath  string
	logPath  string
	expected *measure.Expected // nil: none could be read (noExpected says why)
	// noExpected is why there is no expectation; noTPM why nothing is
	// extended (nil when there is a TPM).
	noExpected, noTPM error

	// mu serialises measuring: one PCR and one log, whose order is the
	// order of the extends. It protects the fields below.
	mu     sync.Mutex
	events []measure.Event
	// last is each guest's components as last extended.
	last map[string][]measure.Component
}

// newMeasurer finds the TPM and the expected measurements and reads the
// log a supervisor of this boot may have left (it goes on appending to
// it). Nothing here is fatal: a missing TPM or expectation only stops
// the guests that require them.
func (s *Supervisor) newMeasurer() *measurer {
	ms := &measurer{s: s, tpmPath: s.TPM, logPath: filepath.Join(s.RunDir, MeasurementLog), last: map[string][]measure.Component{}}
	exp := s.Expected
	if exp == "" {
		exp = s.M.DefaultExpected()
	}
	if x, err := measure.LoadExpected(exp); err != nil {
		ms.noExpected = err
	} else {
		ms.expected = x
	}
	var tpm *measure.TPM
	err := fmt.Errorf("%w given (tandem system --tpm)", measure.ErrNoTPM)
	if ms.tpmPath != "" {
		tpm, err = measure.OpenTPM(ms.tpmPath)
	}
	if err != nil {
		ms.noTPM = err
		msg := fmt.Sprintf("measured boot: %v: measurement skipped", err)
		if req := ms.required(); len(req) > 0 {
			msg += fmt.Sprintf("; guests with measured: %s will not start (%s)", MeasuredRequired, strings.Join(req, ", "))
		}
		s.logf("%s", msg)
		return ms
	}
	defer tpm.Close()
	ms.resumeLog(tpm)
	if ms.expected == nil {
		s.logf("measured boot: guests are measured into PCR %d of %s, and compared with nothing: %v", measure.PCR, ms.tpmPath, ms.noExpected)
	}
	return ms
}

// required names the guests with measured: required.
func (ms *measurer) required() []string {
	var out []string
	for _, g := range ms.s.M.Guests {
		if g.Measured == MeasuredRequired {
			out = append(out, g.Name)
		}
	}
	return out
}

// resumeLog keeps the log of an earlier supervisor of this boot when it
// accounts for the PCR's value; the run directory is on a tmpfs, so a
// log found there is this boot's.
func (ms *measurer) resumeLog(tpm *measure.TPM) {
	pcr, err := tpm.Read(measure.PCR)
	if err != nil {
		ms.s.logf("measured boot: %v", err)
		return
	}
	b, err := os.ReadFile(ms.logPath)
	if err == nil {
		if events, err := measure.ParseLog(b); err == nil && measure.Replay(events, measure.PCR) == pcr {
			ms.events = events
			for _, c := range measure.Components(events) {
				ms.record(c)
			}
			return
		}
	}
	if pcr != ([32]byte{}) {
		ms.s.logf("measured boot: PCR %d of %s holds %x, which no log in %s accounts for: attestation will fail until the board is reset", measure.PCR, ms.tpmPath, pcr, ms.s.RunDir)
	}
}

// record notes c as the last extended of its kind for its guest.
func (ms *measurer) record(c measure.Component) {
	cs := ms.last[c.Guest]
	for i := range cs {
		if cs[i].Same(c) {
			cs[i] = c
			return
		}
	}
	ms.last[c.Guest] = append(cs, c)
}

// lastDigest is the digest c's component was last extended with.
func (ms *measurer) lastDigest(c measure.Component) ([32]byte, bool) {
	for _, l := range ms.last[c.Guest] {
		if l.Same(c) {
			return l.Digest, true
		}
	}
	return [32]byte{}, false
}

// measure measures g before its VMM starts and returns why it may not
// start, or nil. Components unchanged since they were last extended are
// not extended again, so a restart leaves the PCR as predicted; a
// changed one is, so the log and the PCR show it.
func (ms *measurer) measure(g *Guest) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	required := g.Measured == MeasuredRequired
	// Without a TPM nothing is extended or attested, so the guest's
	// files are not read (hashing a stock kernel delayed the first VMM
	// by 80 ms on the emulated virt board); verdict says why.
	var cs []measure.Component
	if ms.noTPM == nil {
		var err error
		if cs, err = g.Components(); err != nil {
			if required {
				return fmt.Errorf("measured: %s: %v", MeasuredRequired, err)
			}
			ms.s.logf("measured boot: %s: %v; started unmeasured (measured: %s)", g.Name, err, g.Measured)
			return nil
		}
		if err := ms.extend(cs); err != nil {
			ms.noTPM = err
			ms.s.logf("measured boot: %v: measurement stopped", err)
		}
	}
	why := ms.verdict(g, cs)
	switch {
	case why == "":
	case required:
		return fmt.Errorf("measured: %s: %s", MeasuredRequired, why)
	case ms.noTPM == nil && ms.expected != nil:
		// No TPM and no expectation are said once, at the start; a
		// component that differs is said for each guest.
		ms.s.logf("measured boot: %s: %s; started anyway (measured: %s)", g.Name, why, g.Measured)
	}
	return nil
}

// extend extends the components that changed since their last extend,
// appending each to the log, which is rewritten after each so that it
// never lags the PCR by more than the extend under way.
func (ms *measurer) extend(cs []measure.Component) error {
	var todo []measure.Component
	for _, c := range cs {
		if d, ok := ms.lastDigest(c); !ok || d != c.Digest {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	var tpm *measure.TPM
	err := fmt.Errorf("%w given (tandem system --tpm)", measure.ErrNoTPM)
	if ms.tpmPath != "" {
		tpm, err = measure.OpenTPM(ms.tpmPath)
	}
	if err != nil {
		return err
	}
	defer tpm.Close()
	for _, c := range todo {
		if err := tpm.Extend(measure.PCR, c.Digest); err != nil {
			return err
		}
		ms.events = append(ms.events, c.Event())
		ms.record(c)
		if err := writeFileAtomic(ms.logPath, measure.MarshalLog(ms.events)); err != nil {
			return fmt.Errorf("writing the measurement log: %w", err)
		}
	}
	return nil
}

// verdict says what keeps g's measurement from standing, or "".
func (ms *measurer) verdict(g *Guest, cs []measure.Component) string {
	if ms.noTPM != nil {
		return fmt.Sprintf("not measured (%v)", ms.noTPM)
	}
	if ms.expected == nil {
		return fmt.Sprintf("no expected measurements to compare with (%v)", ms.noExpected)
	}
	var diffs []string
	for _, c := range cs {
		want, ok := ms.expected.Digest(c)
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s is not in the expected measurements", c))
		case want != c.Digest:
			diffs = append(diffs, measure.Difference{Component: c, Expected: want}.String())
		}
	}
	return strings.Join(diffs, "; ")
}

// writeFileAtomic replaces path with data, so a reader never sees half
// a log.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
