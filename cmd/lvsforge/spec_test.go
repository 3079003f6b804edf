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
	hostCmds := [][]string{{"push", "--dry-run"}, {"kernel", "status"}, {"kernel", "confirm"},
		{"status"}, {"drain", "rs1"}, {"undrain", "rs1"}, {"upgrade", "--dry-run"}}
	for _, args := range hostCmds {
		code, out, errOut := run(t, args...)
		if code != ExitUsage || !strings.Contains(errOut, "never uses the built-in example: name the spec") || !strings.Contains(errOut, "./cluster.yaml or $LVSFORGE_SPEC") {
			t.Errorf("%q without a spec: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if code, out, errOut := run(t, "validate"); code != 0 || !strings.Contains(errOut, "using the built-in example") || !strings.Contains(out, `cluster "seed" is valid`) {
		t.Errorf("validate without a spec: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, "render", "-o", filepath.Join(t.TempDir(), "out")); code != 0 || !strings.Contains(errOut, "using the built-in example") {
		t.Errorf("render without a spec: exit %d\n%s%s", code, out, errOut)
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

// TestSpecWarningsOnStderr: a valid spec that validation warns about (a
// round-robin service on three active bgp directors) is accepted, and each
// warning is printed on stderr with its file, line and field, with --json
// too, whose document on stdout stays the only thing there.
func TestSpecWarningsOnStderr(t *testing.T) {
	text := `apiVersion: lvsforge.dev/v1alpha1
kind: Cluster
metadata: {name: bgp}
kernel: {version: "6.1.192"}
services:
  - {name: http, vip: 10.10.10.10, port: 80, scheduler: rr}
hosts:
  - {name: d1, role: director, address: 192.168.7.9/24}
  - {name: d2, role: director, address: 192.168.7.10/24}
  - {name: d3, role: director, address: 192.168.7.13/24}
  - {name: rs1, role: realserver, address: 192.168.7.11/24, gateway: 192.168.7.254}
ha:
  backend: bgp
  bgp: {as: 65010, peers: [{address: 192.168.7.254, as: 65000}]}
`
	spec := mustWrite(t, text)
	want := "lvsforge: warning: " + spec + ":6:46: services[0].scheduler: with 3 active directors, rr picks a real server from each director's own state"
	code, out, errOut := run(t, "validate", spec)
	if code != 0 || !strings.Contains(out, "is valid: 3 directors") || !strings.Contains(errOut, want) {
		t.Errorf("validate: exit %d, stdout %q, stderr %q; want 0, valid, and %q", code, out, errOut, want)
	}
	code, out, errOut = run(t, "validate", "--json", spec)
	if code != 0 || !strings.HasPrefix(out, "{") || strings.Contains(out, "warning") || !strings.Contains(errOut, want) {
		t.Errorf("validate --json: exit %d, stdout %q, stderr %q; want 0, the document alone, and %q", code, out, errOut, want)
	}
	if code, _, errOut := run(t, "validate", mustWrite(t, strings.Replace(text, "scheduler: rr", "scheduler: mh, schedulerFlags: [mh-port, mh-fallback]", 1))); code != 0 || strings.Contains(errOut, "warning") {
		t.Errorf("validate with mh: exit %d, stderr %q; want 0 and no warning", code, errOut)
	}
}

// mustWrite writes text to a spec file of its own and returns its path.
func mustWrite(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
