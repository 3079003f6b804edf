package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostCommandsNeverUseTheExample: push, kernel status and kernel
// confirm given no spec take ./cluster.yaml, else $LVSFORGE_SPEC, else
// stop with exit status 2 saying how to name one; they never reach the
// built-in example's hosts. validate takes the same specs, and the example
// only when there is none.
func TestHostCommandsNeverUseTheExample(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv(specEnv, "")
	t.Chdir(t.TempDir())
	hostCmds := [][]string{{"push", "--dry-run"}, {"kernel", "status"}, {"kernel", "confirm"}}
	for _, args := range hostCmds {
		code, out, errOut := run(t, args...)
		if code != ExitUsage || !strings.Contains(errOut, "never uses the built-in example: name the spec") || !strings.Contains(errOut, "./cluster.yaml or $LVSFORGE_SPEC") {
			t.Errorf("%q without a spec: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if code, out, errOut := run(t, "validate"); code != 0 || !strings.Contains(errOut, "using the built-in example") || !strings.Contains(out, `cluster "seed" is valid`) {
		t.Errorf("validate without a spec: exit %d\n%s%s", code, out, errOut)
	}

	// $LVSFORGE_SPEC, here one that does not validate: its errors show it is the one read.
	envSpec := filepath.Join(t.TempDir(), "env.yaml")
	os.WriteFile(envSpec, []byte("kind: Cluster\n"), 0o644)
	t.Setenv(specEnv, envSpec)
	for _, args := range append(hostCmds, []string{"validate"}) {
		code, _, errOut := run(t, args...)
		if code != ExitFailure || !strings.Contains(errOut, `using $LVSFORGE_SPEC ("`+envSpec+`")`) || !strings.Contains(errOut, envSpec+":1:1: apiVersion") {
			t.Errorf("%q with $%s: exit %d\n%s", args, specEnv, code, errOut)
		}
	}

	// ./cluster.yaml comes first.
	os.WriteFile("cluster.yaml", []byte("apiVersion: lvsforge.dev/v1alpha1\n"), 0o644)
	for _, args := range append(hostCmds, []string{"validate"}) {
		code, _, errOut := run(t, args...)
		if code != ExitFailure || !strings.Contains(errOut, "using ./cluster.yaml") || !strings.Contains(errOut, "cluster.yaml:1:1: kind") {
			t.Errorf("%q with ./cluster.yaml: exit %d\n%s", args, code, errOut)
		}
	}
}
