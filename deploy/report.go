package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the summary table: one line per host, then each
// failed host's error and, after a real run, which of its steps ran.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCHANGED\tUNCHANGED\tCOMMANDS\tRESULT\tTIME")
	for _, h := range r.Hosts {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", h.Host, len(h.Changed), h.Unchanged, len(h.Commands), h.Result, h.Duration.Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	for _, h := range r.Hosts {
		if h.err == nil {
			continue
		}
		fmt.Fprintf(w, "%s: %v\n", h.Host, h.err)
		if !r.DryRun {
			fmt.Fprintf(w, "  %s\n", h.stepsText())
		}
	}
	return nil
}

// Step is one part of a push on a host and how far it got.
type Step struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// Step statuses.
const (
	StepDone   = "done"
	StepFailed = "failed"
	StepNotRun = "not run"
)

// steps groups ops into their steps, in order, each with its status when
// the op at index failed failed (len(ops): none did). The pending record's
// last update is bookkeeping, listed only when it failed.
func steps(ops []Op, failed int) []Step {
	var out []Step
	for i, op := range ops {
		st := StepDone
		switch {
		case i == failed:
			st = StepFailed
		case i > failed:
			st = StepNotRun
		}
		if n := len(out); n > 0 && out[n-1].Name == op.Step {
			// A step's ops are contiguous: it failed, or ran, or did not.
			if st == StepFailed {
				out[n-1].Status = st
			}
			continue
		}
		if op.Step == stepPending && st != StepFailed {
			continue
		}
		out = append(out, Step{Name: op.Step, Status: st})
	}
	return out
}

// stepsText is "files in place: yes; heartbeat restart: FAILED; ldirectord
// reload: not run", or what a host that failed before its first change
// reports.
func (h *HostReport) stepsText() string {
	if len(h.Steps) == 0 {
		return "nothing changed on the host"
	}
	word := map[string]string{StepDone: "yes", StepFailed: "FAILED", StepNotRun: "not run"}
	var parts []string
	for _, s := range h.Steps {
		parts = append(parts, s.Name+": "+word[s.Status])
	}
	return strings.Join(parts, "; ")
}

// WriteJSON prints the report for CI. Secret files appear by path only.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write json report: %w", err)
	}
	return nil
}
