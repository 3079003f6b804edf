package cluster

import (
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem in a spec, at a place in its file.
type FieldError struct {
	File string
	Pos  Pos
	// Path is the YAML field path, e.g. hosts[2].interfaces.public.
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	loc := e.File
	if e.Pos.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Pos.Line, e.Pos.Col)
	}
	if e.Path == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Path + ": " + e.Msg
}

// Errors is every problem found in one spec, reported together.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return fmt.Sprintf("invalid spec (%d problems):\n  %s", len(es), strings.Join(lines, "\n  "))
}

// sortByPos orders errors as they appear in the file, so a user fixes them top to bottom.
func (es Errors) sortByPos() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}
