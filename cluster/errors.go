package cluster

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldError is one problem in a spec, at a place in its file.
type FieldError struct {
	File string
	Pos  Pos
	// Path is the YAML field path, e.g. hosts[2].interfaces.public.
	Path string
	Msg  string
}

// Error prints the problem with every non-printable character escaped: keys,
// values and YAML's own messages quote the spec, and a spec must not be able
// to clear a terminal or forge a line of the report.
func (e *FieldError) Error() string {
	loc := escape(e.File)
	if e.Pos.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", loc, e.Pos.Line, e.Pos.Col)
	}
	if e.Path == "" {
		return loc + ": " + escape(e.Msg)
	}
	return loc + ": " + escape(e.Path) + ": " + escape(e.Msg)
}

// escape writes each non-printable rune of s, and each byte that is not
// UTF-8, as a Go escape (\x1b, \n, \u2028); printable text is left alone.
func escape(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// Errors is every problem found in one spec, reported together.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	problems := "problems"
	if len(es) == 1 {
		problems = "problem"
	}
	return fmt.Sprintf("invalid spec (%d %s):\n  %s", len(es), problems, strings.Join(lines, "\n  "))
}

// sortByPos orders errors as they appear in the file, so a user fixes them top to bottom.
func (es Errors) sortByPos() {
	sort.SliceStable(es, func(i, j int) bool { return before(es[i].Pos, es[j].Pos) })
}
