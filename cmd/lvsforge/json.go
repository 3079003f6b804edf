package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/cluster"
)

// jsonFlag is --json of the commands that report in the envelope: taking
// this flag is what makes a command print one (see resolve).
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print one JSON document on stdout, success or not: {command, ok, result, errors} (README: JSON output)"}

// envelope is the one shape of every --json output, documented in the
// README ("JSON output"): scripts read ok and errors the same way whatever
// the command, and result is the command's own report.
type envelope struct {
	Command string `json:"command"`
	OK      bool   `json:"ok"`
	// Result is null when the command failed before it had one (a spec
	// that does not validate); a push that failed on one host has both.
	Result any         `json:"result"`
	Errors []jsonError `json:"errors"`
}

// jsonError is one error; a spec's validation errors carry where they are.
type jsonError struct {
	Message string `json:"message"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	// Path is the spec's field, e.g. services[0].scheduler.
	Path  string `json:"path,omitempty"`
	Usage bool   `json:"usage,omitempty"` // a bad command line (exit status 2)
}

// emit hands a command's result to the envelope under --json, or prints it
// for a human.
func (a *App) emit(result any, human func(io.Writer) error) error {
	if a.json {
		a.result = result
		return nil
	}
	return human(a.Stdout)
}

func writeEnvelope(w io.Writer, command string, result any, err error) error {
	env := envelope{Command: command, OK: err == nil, Result: result, Errors: jsonErrors(err)}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(env); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

func jsonErrors(err error) []jsonError {
	if err == nil {
		return []jsonError{}
	}
	var es cluster.Errors
	if errors.As(err, &es) {
		out := make([]jsonError, len(es))
		for i, e := range es {
			out[i] = jsonError{Message: e.Msg, File: e.File, Line: e.Pos.Line, Col: e.Pos.Col, Path: e.Path}
		}
		return out
	}
	var fe *cluster.FieldError
	if errors.As(err, &fe) {
		return []jsonError{{Message: fe.Msg, File: fe.File, Line: fe.Pos.Line, Col: fe.Pos.Col, Path: fe.Path}}
	}
	var ue usageError
	return []jsonError{{Message: err.Error(), Usage: errors.As(err, &ue)}}
}
