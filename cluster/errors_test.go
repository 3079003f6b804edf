package cluster

import (
	"strings"
	"testing"
	"unicode"
)

// TestErrorsPrintSpecTextEscaped: keys, values and YAML syntax errors that
// quote the spec print its control characters escaped, so a spec can
// neither clear the screen (ESC [2J) nor forge a line of the report.
func TestErrorsPrintSpecTextEscaped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits []string // old, new pairs for base.yaml
		want  string
	}{
		{"key", []string{"  name: t\n", "  name: t\n  \"\\e[2J\": 1\n"}, `metadata.\x1b[2J: unknown field "\x1b[2J"`},
		{"key with a newline", []string{"    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    weights: {\"http\\nc.yaml:1:1: all good\": 1}\n"},
			`hosts[2].weights.http\nc.yaml:1:1: all good: unknown service "http\nc.yaml:1:1: all good"`},
		{"value quoted in another field's error", []string{"  - name: d1\n", "  - name: \"d1\\e[2J\"\n", "    address: 192.168.7.10/24\n", "    address: 192.168.7.9/24\n"},
			`address 192.168.7.9 is already used by host d1\x1b[2J`},
		{"YAML syntax", []string{"  name: t\n", "  name: t\x1b[2J\n"}, `YAML syntax: character '\x1b' is not allowed in a YAML file: remove it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(edited(t, tc.edits)), "c.yaml", "testdata")
			es, ok := err.(Errors)
			if !ok {
				t.Fatalf("want Errors, got %T %v", err, err)
			}
			for _, e := range es {
				if i := strings.IndexFunc(e.Error(), unicode.IsControl); i >= 0 {
					t.Errorf("control character in %q", e.Error())
				}
			}
			// One line per problem, after the summary line.
			if n := strings.Count(err.Error(), "\n"); n != len(es) {
				t.Errorf("%d lines for %d problems:\n%s", n+1, len(es), err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want %s in\n%s", tc.want, err)
			}
		})
	}
}

func TestErrorsCountProblems(t *testing.T) {
	one := Errors{{File: "c.yaml", Pos: Pos{1, 1}, Msg: "bad"}}
	if got, want := one.Error(), "invalid spec (1 problem):\n  c.yaml:1:1: bad"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	two := append(one, &FieldError{File: "c.yaml", Pos: Pos{2, 1}, Msg: "worse"})
	if got := two.Error(); !strings.HasPrefix(got, "invalid spec (2 problems):\n") {
		t.Errorf("got %q", got)
	}
}
