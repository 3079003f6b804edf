package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/cluster"
)

// renamedSpec writes the seed spec under another cluster name, so that a
// command that silently used the built-in example instead shows it.
func renamedSpec(t *testing.T, name string) string {
	t.Helper()
	p := writeSpec(t, cluster.PinnedKernelOrgVersion, cluster.KernelOrgSource().SourceLines...)
	y, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(y), "  name: seed\n", "  name: "+name+"\n", 1)
	if renamed == string(y) {
		t.Fatal("the example spec has no metadata name seed")
	}
	if err := os.WriteFile(p, []byte(renamed), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestResolveMovesFlagsBeforeArguments: each command's flags (with their
// values) go before its positional arguments, "--" still ends the flags,
// and vm ssh's remote command keeps its own flags.
func TestResolveMovesFlagsBeforeArguments(t *testing.T) {
	cmds := NewApp(nil, nil, nil).commands()
	for _, tc := range []struct {
		args, want []string
		path       string
		json       bool
	}{
		{[]string{"push", "c/cluster.yaml", "--dry-run", "--hosts", "rs1"}, []string{"push", "--dry-run", "--hosts", "rs1", "c/cluster.yaml"}, "push", false},
		{[]string{"render", "my.yaml", "-o", "out", "--json"}, []string{"render", "-o", "out", "--json", "my.yaml"}, "render", true},
		{[]string{"kernel", "status", "s.yaml", "--json=false"}, []string{"kernel", "status", "--json=false", "s.yaml"}, "kernel status", false},
		{[]string{"build", "kernel", "s.yaml", "-j", "2", "--role=director"}, []string{"build", "kernel", "-j", "2", "--role=director", "s.yaml"}, "build kernel", false},
		// A flag's value is never taken for an argument, nor for a flag.
		{[]string{"validate", "-f", "--json"}, []string{"validate", "-f", "--json"}, "validate", false},
		{[]string{"validate", "a.yaml", "--", "--json"}, []string{"validate", "--", "a.yaml", "--json"}, "validate", false},
		{[]string{"push", "--json", "--help"}, []string{"push", "--json", "--help"}, "push", false},
		// build's --json is not the envelope's.
		{[]string{"build", "all", "--json"}, []string{"build", "all", "--json"}, "build all", false},
		{[]string{"vm", "ssh", "--state", "s", "rs1", "ls", "-la"}, []string{"vm", "ssh", "--state", "s", "rs1", "ls", "-la"}, "vm ssh", false},
		{[]string{"biuld", "x", "--json"}, []string{"biuld", "x", "--json"}, "", false},
	} {
		got, inv := resolve(cmds, append([]string{"lvsforge"}, tc.args...))
		if want := append([]string{"lvsforge"}, tc.want...); !slices.Equal(got, want) || inv.path != tc.path || inv.json != tc.json {
			t.Errorf("%q: %q %+v, want %q path %q json %v", tc.args, got, inv, want, tc.path, tc.json)
		}
	}
}

// TestPositionalSpec: a command that reads a spec takes it as its argument
// (flags after it honoured); any other argument is a usage error, and a
// spec path that cannot be read is named.
func TestPositionalSpec(t *testing.T) {
	t.Chdir(t.TempDir()) // the old code rendered the example into ./out
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	spec := renamedSpec(t, "positional")
	if code, out, errOut := run(t, "validate", spec); code != 0 || !strings.Contains(out, spec+`: cluster "positional" is valid`) {
		t.Errorf("validate SPEC: exit %d\n%s%s", code, out, errOut)
	}
	out := filepath.Join(t.TempDir(), "rendered")
	if code, stdout, errOut := run(t, "render", spec, "-o", out); code != 0 || !strings.Contains(stdout, `cluster "positional" into `+out) {
		t.Errorf("render SPEC -o OUT: exit %d\n%s%s", code, stdout, errOut)
	}
	if _, err := os.Stat(filepath.Join(out, "MANIFEST.json")); err != nil {
		t.Errorf("render SPEC -o OUT: %v", err)
	}
	if code, _, errOut := run(t, "validate", spec, "-f", spec); code != 0 {
		t.Errorf("the same spec twice: exit %d %s", code, errOut)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"validate", spec, "-f", "other.yaml"}, ExitUsage, `two specs: -f "other.yaml" and the argument "` + spec + `"`},
		{[]string{"validate", spec, "b.yaml"}, ExitUsage, "validate takes one spec file, got 2 arguments"},
		{[]string{"kernel", "status", "a", "b"}, ExitUsage, "kernel status takes one spec file, got 2 arguments"},
		{[]string{"doctor", "render"}, ExitUsage, `doctor takes no arguments, got "render"`},
		{[]string{"vm", "down", "now"}, ExitUsage, `vm down takes no arguments, got "now"`},
		{[]string{"init", "mycluster"}, ExitUsage, `init takes no arguments, got "mycluster"`},
		{[]string{"validate", filepath.Join(dir, "nosuch.yaml")}, ExitFailure, "read spec: open " + filepath.Join(dir, "nosuch.yaml") + ": no such file"},
		{[]string{"render", "-f", dir}, ExitFailure, "read spec: " + dir + " is a directory, not a regular file"},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, want %d and %q:\n%s", tc.args, code, tc.code, tc.want, errOut)
		}
	}
	if _, err := os.Stat("out"); err == nil {
		t.Error("a render went to ./out")
	}
}

// TestUnknownCommandSuggests: a mistyped command or subcommand is a usage
// error naming the nearest one.
func TestUnknownCommandSuggests(t *testing.T) {
	for _, tc := range []struct{ args []string }{
		{[]string{"biuld"}}, {[]string{"kernel", "stauts"}}, {[]string{"vm", "dwon"}},
	} {
		want := map[string]string{"biuld": "build", "stauts": "status", "dwon": "down"}[tc.args[len(tc.args)-1]]
		code, _, errOut := run(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, `Did you mean "`+want+`"?`) {
			t.Errorf("%q: exit %d, want 2 and a suggestion of %s:\n%s", tc.args, code, want, errOut)
		}
	}
}

// visitFlags calls fn with every visible flag of every command, and the
// command's path.
func visitFlags(cmds []*cli.Command, parent string, fn func(cmd string, f cli.Flag)) {
	for _, c := range cmds {
		name := strings.TrimSpace(parent + " " + c.Name)
		for _, f := range c.Flags {
			if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
				continue
			}
			fn(name, f)
		}
		visitFlags(c.Subcommands, name, fn)
	}
}

// TestFlagHelpHasPlaceholders: every flag that takes a value says what in
// its help (`FILE`, `N`, ...), which urfave/cli prints as --flag FILE.
func TestFlagHelpHasPlaceholders(t *testing.T) {
	placeholder := regexp.MustCompile("`[^`]+`")
	visitFlags(NewApp(nil, nil, nil).commands(), "", func(cmd string, f cli.Flag) {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok {
			t.Errorf("%s --%s: not a documented flag", cmd, f.Names()[0])
			return
		}
		if df.TakesValue() && !placeholder.MatchString(df.GetUsage()) {
			t.Errorf("%s --%s: no `PLACEHOLDER` in its help %q", cmd, f.Names()[0], df.GetUsage())
		}
	})
}

// TestNumericFlagsRangeChecked: every integer flag refuses what makes no
// sense with exit status 2 and says what is valid, before anything runs.
func TestNumericFlagsRangeChecked(t *testing.T) {
	visitFlags(NewApp(nil, nil, nil).commands(), "", func(cmd string, f cli.Flag) {
		if i, ok := f.(*cli.IntFlag); ok && i.Action == nil {
			t.Errorf("%s --%s: no range check", cmd, i.Name)
		}
		if d, ok := f.(*cli.DurationFlag); ok && d.Action == nil {
			t.Errorf("%s --%s: no range check", cmd, d.Name)
		}
		switch f.(type) {
		case *cli.IntFlag, *cli.DurationFlag, *cli.StringFlag, *cli.BoolFlag, *cli.StringSliceFlag:
		default:
			t.Errorf("%s --%s: a %T: check its range here", cmd, f.Names()[0], f)
		}
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"push", "--concurrency", "0"}, "--concurrency 0: want 1 or more"},
		{[]string{"push", "--backups", "-2"}, "--backups -2: want 0 or more"},
		{[]string{"push", "--upload-concurrency", "0"}, "--upload-concurrency 0: want 1 or more"},
		{[]string{"kernel", "status", "--concurrency", "-1"}, "--concurrency -1: want 1 or more"},
		{[]string{"build", "kernel", "--role", "director", "--jobs", "-1"}, "--jobs -1: want 1 or more"},
		{[]string{"build", "ipvsadm", "-j", "0"}, "--jobs 0: want 1 or more"},
		{[]string{"drain", "rs1", "--timeout", "0s"}, "--timeout 0s: want a duration above 0"},
		{[]string{"status", "--interval", "10ms"}, "--interval 10ms: want 100ms or more"},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, errOut)
		}
	}
}

// TestVersion: the module version and what the go command recorded of
// the checkout.
func TestVersion(t *testing.T) {
	code, out, _ := run(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "lvsforge version ") {
		t.Errorf("--version: exit %d %q", code, out)
	}
	for _, tc := range []struct {
		main     string
		settings map[string]string
		want     string
	}{
		{"(devel)", map[string]string{"vcs.revision": "01f59f8b6b56", "vcs.time": "2026-12-01T13:46:46Z", "vcs.modified": "true"},
			"(devel) (revision 01f59f8b6b56+dirty of 2026-12-01T13:46:46Z, go1.26.8)"},
		{"v0.3.0", map[string]string{"vcs.revision": "abc", "vcs.modified": "false"}, "v0.3.0 (revision abc, go1.26.8)"},
		{"", nil, "(devel) (no VCS revision recorded, go1.26.8)"},
	} {
		bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/lvsforge/lvsforge", Version: tc.main}}
		for _, k := range slices.Sorted(maps.Keys(tc.settings)) {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: k, Value: tc.settings[k]})
		}
		if got := versionString(bi, true); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.main, tc.settings, got, tc.want)
		}
	}
}

// decodeEnvelope parses stdout as exactly one envelope.
func decodeEnvelope(t *testing.T, args []string, stdout string) envelope {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var env struct {
		Command *string         `json:"command"`
		OK      *bool           `json:"ok"`
		Result  json.RawMessage `json:"result"`
		Errors  []jsonError     `json:"errors"`
	}
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("%q: stdout is not the JSON envelope: %v\n%s", args, err, stdout)
	}
	if dec.More() {
		t.Fatalf("%q: more than one JSON document on stdout:\n%s", args, stdout)
	}
	if env.Command == nil || env.OK == nil || env.Result == nil || env.Errors == nil {
		t.Fatalf("%q: the envelope lacks command, ok, result or errors:\n%s", args, stdout)
	}
	var result any
	json.Unmarshal(env.Result, &result)
	return envelope{Command: *env.Command, OK: *env.OK, Result: result, Errors: env.Errors}
}
