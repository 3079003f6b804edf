package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes lvsforge in-process and returns its exit status and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := NewApp(strings.NewReader(""), &stdout, &stderr).Run(context.Background(), append([]string{"lvsforge"}, args...))
	return code, stdout.String(), stderr.String()
}

func TestInitValidateRender(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mycluster")
	if code, _, errOut := run(t, "init", "--dir", dir, "--src-dir", t.TempDir()); code != 0 {
		t.Fatalf("init: %d %s", code, errOut)
	}
	st, err := os.Stat(filepath.Join(dir, "authkey"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("authkey: %v %v", st, err)
	}
	if code, _, _ := run(t, "init", "--dir", dir); code != 1 {
		t.Errorf("second init overwrote the spec (exit %d)", code)
	}
	spec := filepath.Join(dir, "cluster.yaml")
	if code, out, errOut := run(t, "validate", "-f", spec); code != 0 || !strings.Contains(out, "is valid: 2 directors, 2 real servers, 2 services") {
		t.Fatalf("validate: %d %s %s", code, out, errOut)
	}
	out := filepath.Join(t.TempDir(), "out")
	if code, _, errOut := run(t, "render", "-f", spec, "-o", out); code != 0 {
		t.Fatalf("render: %d %s", code, errOut)
	}
	b, err := os.ReadFile(filepath.Join(out, "linuxha1", "etc", "ha.d", "haresources"))
	if err != nil || !strings.Contains(string(b), "\nlinuxha1 lvs-vip\n") {
		t.Errorf("haresources: %q %v", b, err)
	}
	b, err = os.ReadFile(filepath.Join(out, "linuxha2", "etc", "ha.d", "resource.d", "lvs-vip"))
	if err != nil || !strings.Contains(string(b), `"192.168.7.110/24 eth0 192.168.7.255"`) {
		t.Errorf("lvs-vip: %q %v", b, err)
	}
}

// TestBuiltInExampleNeedsNoSetup: validate and render work with no -f: the
// example's authkey is generated once, before the spec is validated.
func TestBuiltInExampleNeedsNoSetup(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	if code, out, errOut := run(t, "validate"); code != 0 || !strings.Contains(out, "is valid") {
		t.Fatalf("validate: %d %s %s", code, out, errOut)
	}
	key, err := os.ReadFile(filepath.Join(cfg, "lvsforge", "example", "authkey"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	code, _, errOut := run(t, "render", "-o", out)
	if code != 0 {
		t.Fatalf("render: %d %s", code, errOut)
	}
	if again, _ := os.ReadFile(filepath.Join(cfg, "lvsforge", "example", "authkey")); !bytes.Equal(key, again) {
		t.Error("the example's authkey was generated a second time")
	}
	for _, h := range []string{"linuxha1", "linuxha2", "rs1", "rs2"} {
		if _, err := os.Stat(filepath.Join(out, h)); err != nil {
			t.Errorf("host %s not rendered: %v", h, err)
		}
	}
}

// TestInvalidSpecWritesNothing: a bad spec exits 1 with FILE:LINE:COL errors
// and leaves the output directory exactly as it was.
func TestInvalidSpecWritesNothing(t *testing.T) {
	dir := t.TempDir()
	run(t, "init", "--dir", dir, "--src-dir", t.TempDir())
	spec := filepath.Join(dir, "cluster.yaml")
	out := filepath.Join(t.TempDir(), "out")
	if code, _, errOut := run(t, "render", "-f", spec, "-o", out); code != 0 {
		t.Fatal(errOut)
	}
	before, _ := os.ReadFile(filepath.Join(out, "rs1", "usr", "local", "sbin", "lvs-realserver"))
	good, _ := os.ReadFile(spec)
	bad := strings.Replace(string(good), "    port: 80\n", "    port: 80\n    colour: blue\n", 1)
	bad = strings.Replace(bad, "scheduler: rr", "scheduler: best", 1)
	os.WriteFile(spec, []byte(bad), 0o644)
	code, _, errOut := run(t, "render", "-f", spec, "-o", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{spec + ":33:5: services[0].scheduler: unknown scheduler \"best\"", spec + ":42:5: services[1].colour: unknown field \"colour\""} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	after, _ := os.ReadFile(filepath.Join(out, "rs1", "usr", "local", "sbin", "lvs-realserver"))
	if !bytes.Equal(before, after) {
		t.Error("a failed render changed the previous output")
	}
	if code, _, _ := run(t, "validate", "-f", spec); code != 1 {
		t.Errorf("validate exit %d, want 1", code)
	}
}

// TestMissingAuthkeyIsASpecError: an authkey file that is gone is found by
// validate, at the line that names it, and render creates no output
// directory at all.
func TestMissingAuthkeyIsASpecError(t *testing.T) {
	dir := t.TempDir()
	run(t, "init", "--dir", dir, "--src-dir", t.TempDir())
	key := filepath.Join(dir, "authkey")
	os.Remove(key)
	spec := filepath.Join(dir, "cluster.yaml")
	want := spec + ":106:5: ha.authkey.file: authkey file " + key + " does not exist"
	if code, _, errOut := run(t, "validate", "-f", spec); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("validate: exit %d, want 1 and %q:\n%s", code, want, errOut)
	}
	parent := t.TempDir()
	code, _, errOut := run(t, "render", "-f", spec, "-o", filepath.Join(parent, "out"))
	if code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("render: exit %d, want 1 and %q:\n%s", code, want, errOut)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("failed render left %v behind", entries)
	}
}

func TestRenderRefusesForeignDirectory(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "precious.txt"), []byte("mine"), 0o644)
	code, _, errOut := run(t, "render", "-o", out)
	if code != 1 || !strings.Contains(errOut, "refusing to replace it") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "precious.txt")); string(b) != "mine" {
		t.Error("foreign file touched")
	}
}

func TestUsageErrorExits2(t *testing.T) {
	if code, _, _ := run(t, "render", "--no-such-flag"); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
}
