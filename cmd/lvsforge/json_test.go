package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJSONEnvelope: every command that reports prints one envelope on
// stdout with --json, whether it succeeds, fails or is called wrongly;
// what went wrong is also said on stderr. (push, kernel status and kernel
// confirm reaching hosts: TestPushDryRunCLI.)
func TestJSONEnvelope(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv(specEnv, "")
	spec := renamedSpec(t, "enveloped")
	y, _ := os.ReadFile(spec)
	bad := filepath.Join(filepath.Dir(spec), "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(string(y), "scheduler: rr", "scheduler: best", 1)), 0o644)
	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "precious.txt"), []byte("mine"), 0o644)
	for _, tc := range []struct {
		args   []string
		ok     bool
		result string // a substring of the result's JSON
		err    jsonError
	}{
		{[]string{"validate", spec, "--json"}, true, `"cluster":"enveloped"`, jsonError{}},
		{[]string{"validate", "--json", bad}, false, "", jsonError{File: bad, Line: 33, Col: 5, Path: "services[0].scheduler", Message: `unknown scheduler "best"`}},
		{[]string{"render", spec, "--json", "-o", filepath.Join(t.TempDir(), "out")}, true, `"files":`, jsonError{}},
		{[]string{"render", spec, "--json", "-o", foreign}, false, "", jsonError{Message: "refusing to replace it"}},
		{[]string{"doctor", "--for", "render", "--json"}, true, `"tools":[]`, jsonError{}},
		{[]string{"doctor", "--for", "nosuch", "--json"}, false, "", jsonError{Message: `--for "nosuch"`, Usage: true}},
		{[]string{"push", "--json", "--dry-run"}, false, "", jsonError{Message: "push reaches real hosts", Usage: true}},
		{[]string{"kernel", "status", "--json"}, false, "", jsonError{Message: "kernel status reaches real hosts", Usage: true}},
		{[]string{"kernel", "confirm", bad, "--json"}, false, "", jsonError{File: bad, Line: 33, Path: "services[0].scheduler"}},
		{[]string{"push", "--json", "--concurrency", "0"}, false, "", jsonError{Message: "--concurrency 0", Usage: true}},
	} {
		code, stdout, stderr := run(t, tc.args...)
		env := decodeEnvelope(t, tc.args, stdout)
		command := tc.args[0]
		if command == "kernel" {
			command += " " + tc.args[1]
		}
		if env.OK != tc.ok || env.OK != (code == 0) || env.Command != command {
			t.Errorf("%q: exit %d, envelope %+v", tc.args, code, env)
			continue
		}
		result := compactJSON(t, env.Result)
		if tc.ok {
			if len(env.Errors) != 0 || !strings.Contains(result, tc.result) {
				t.Errorf("%q: result %s, errors %+v; want %s", tc.args, result, env.Errors, tc.result)
			}
			continue
		}
		if len(env.Errors) == 0 || !strings.Contains(stderr, "lvsforge: ") {
			t.Errorf("%q: failed without errors in the envelope or on stderr:\n%s\n%s", tc.args, stdout, stderr)
			continue
		}
		e := env.Errors[0]
		if !strings.Contains(e.Message, tc.err.Message) || e.File != tc.err.File || e.Line != tc.err.Line ||
			(tc.err.Col != 0 && e.Col != tc.err.Col) || e.Path != tc.err.Path || e.Usage != tc.err.Usage {
			t.Errorf("%q: error %+v, want %+v", tc.args, e, tc.err)
		}
	}
}

func compactJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
