package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints the summary table: one line per host, failures last
// with their errors below the table.
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
		if h.err != nil {
			fmt.Fprintf(w, "%s: %v\n", h.Host, h.err)
		}
	}
	return nil
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
