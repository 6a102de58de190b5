package emulate

import (
	"fmt"
	"io"
)

// Report writes the run's verdict for people: one line per case, and
// for each failure its console's last lines.
func (r *Result) Report(w io.Writer) {
	fmt.Fprintf(w, "\ntandem emulate: %s after %.1fs\n", r.End, r.Duration.Seconds())
	for _, c := range r.Cases {
		switch {
		case c.Skipped:
			fmt.Fprintf(w, "  SKIP  %s: %s\n", c.Name, c.Failure)
		case c.Passed:
			fmt.Fprintf(w, "  ok    %s (%.1fs)\n", c.Name, c.Time.Seconds())
		default:
			fmt.Fprintf(w, "  FAIL  %s: %s\n", c.Name, c.Failure)
		}
	}
	for _, c := range r.Failed() {
		if c.Skipped {
			continue
		}
		switch n := len(c.Excerpt); n {
		case 0:
			fmt.Fprintf(w, "\n%s: %s printed nothing\n", c.Name, consoleName(c.Console))
		default:
			fmt.Fprintf(w, "\n%s: %s's last %d lines:\n", c.Name, consoleName(c.Console), n)
			for _, l := range c.Excerpt {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
	}
}
