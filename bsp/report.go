package bsp

import (
	"encoding/json"
	"fmt"
	"io"
)

// Item is one line of a readiness report.
type Item struct {
	// Check names what was checked ("CONFIG_KVM", "/dev/kvm").
	Check string `json:"check"`
	OK    bool   `json:"ok"`
	// Detail says what was found.
	Detail string `json:"detail,omitempty"`
	// Fix says what to do when !OK.
	Fix string `json:"fix,omitempty"`
	// Advisory items do not make the report fail.
	Advisory bool `json:"advisory,omitempty"`
}

// Section is a group of items with a verdict.
type Section struct {
	Title string `json:"title"`
	Items []Item `json:"items"`
	// Verdict is one sentence ("can host KVM", "cannot host KVM: ...").
	Verdict string `json:"verdict,omitempty"`
}

// OK reports whether every non-advisory item passed.
func (s Section) OK() bool {
	for _, it := range s.Items {
		if !it.OK && !it.Advisory {
			return false
		}
	}
	return true
}

// Report is the porting kit's readiness report for one board.
type Report struct {
	Board    string    `json:"board"`
	Ready    bool      `json:"ready"`
	Sections []Section `json:"sections"`
}

// Add appends a section and updates Ready.
func (r *Report) Add(s Section) {
	r.Sections = append(r.Sections, s)
	r.Ready = true
	for _, s := range r.Sections {
		if !s.OK() {
			r.Ready = false
		}
	}
}

// Missing returns the failed, non-advisory items of every section.
func (r *Report) Missing() []Item {
	var m []Item
	for _, s := range r.Sections {
		for _, it := range s.Items {
			if !it.OK && !it.Advisory {
				m = append(m, it)
			}
		}
	}
	return m
}

// WriteText prints the report for people: ✓/✗ lines, each ✗ with its fix.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("Board %s\n", r.Board)
	for _, s := range r.Sections {
		ew.printf("\n%s\n", s.Title)
		for _, it := range s.Items {
			mark := "✓"
			switch {
			case !it.OK && it.Advisory:
				mark = "!"
			case !it.OK:
				mark = "✗"
			}
			ew.printf("  %s %s", mark, it.Check)
			if it.Detail != "" {
				ew.printf(": %s", it.Detail)
			}
			ew.printf("\n")
			if !it.OK && it.Fix != "" {
				ew.printf("      fix: %s\n", it.Fix)
			}
		}
		if s.Verdict != "" {
			ew.printf("  => %s\n", s.Verdict)
		}
	}
	verdict := "READY"
	if !r.Ready {
		verdict = "NOT READY"
	}
	ew.printf("\n%s\n", verdict)
	return ew.err
}

// WriteJSON writes the report as indented JSON for CI.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
