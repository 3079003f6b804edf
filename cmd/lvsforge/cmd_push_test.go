package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy/sshtest"
)

// testSpec writes the seed example with its four hosts pointed at sshd test
// hosts, named as the spec names them (sysv init, as there is no systemd in
// the namespaces).
func testSpec(t *testing.T, c *sshtest.Cluster) string {
	t.Helper()
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	y := string(cluster.ExampleYAML(cluster.KernelOrgSource()))
	i := 0
	y = regexp.MustCompile(`(?m)^  - name: (linuxha1|linuxha2|rs1|rs2)\b.*$`).ReplaceAllStringFunc(y, func(line string) string {
		h := c.Hosts[i]
		i++
		// push refuses a host whose uname -n is not its name in the spec.
		if err := h.SetHostname(strings.Fields(line)[2]); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s\n    ssh: {address: %s, key: %s}", line, h.Addr, c.ClientKeyFile)
	})
	y = strings.ReplaceAll(y, "init: systemd", "init: sysv")
	p := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runApp(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := NewApp(strings.NewReader(""), &out, &errb).Run(context.Background(), append([]string{"lvsforge"}, args...))
	return code, out.String(), errb.String()
}

func TestPushDryRunCLI(t *testing.T) {
	c := sshtest.Start(t, 4)
	spec := testSpec(t, c)
	common := []string{"-f", spec, "--known-hosts", c.KnownHostsFile, "--ssh-config", "none"}

	code, out, errs := runApp(append([]string{"push", "--dry-run", "--diff"}, common...)...)
	if code != ExitOK {
		t.Fatalf("push --dry-run: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"write /etc/ha.d/authkeys mode 0600 secret (new)", "+++ b/linuxha1:/etc/ha.d/haresources", "linuxha2", "planned"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	secret, _ := os.ReadFile(filepath.Join(filepath.Dir(spec), "authkey"))
	if s := strings.TrimSpace(string(secret)); s == "" || strings.Contains(out+errs, s) {
		t.Errorf("the authkey secret is printed (or empty)")
	}

	code, out, errs = runApp(append([]string{"kernel", "status", "--hosts", "rs1,linuxha1"}, common...)...)
	if code != ExitOK || !strings.Contains(out, "RUNNING") || !strings.Contains(out, "rs1") {
		t.Errorf("kernel status: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runApp(append([]string{"kernel", "confirm", "--hosts", "rs1"}, common...)...)
	if code != ExitFailure || !strings.Contains(errs, "rs1") {
		t.Errorf("kernel confirm of a kernel rs1 does not run: exit %d\n%s", code, errs)
	}

	// The spec as the argument, every flag after it honoured: a dry run of rs1 alone.
	code, out, errs = runApp("push", spec, "--dry-run", "--hosts", "rs1", "--known-hosts", c.KnownHostsFile, "--ssh-config", "none")
	if code != ExitOK || !strings.Contains(out, "rs1") || strings.Contains(out, "rs2") || strings.Contains(out, "linuxha1") || !strings.Contains(out, "planned") {
		t.Errorf("push SPEC --dry-run --hosts rs1: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(c.Hosts[2].Path("/etc/sysctl.d/60-lvsforge-realserver.conf")); err == nil {
		t.Error("push SPEC --dry-run wrote to rs1")
	}

	// --json: the envelope, on success and on failure.
	args := append([]string{"kernel", "status", "--json", "--hosts", "rs1,linuxha1"}, common...)
	code, out, errs = runApp(args...)
	env := decodeEnvelope(t, args, out)
	if hosts := compactJSON(t, env.Result); code != ExitOK || !env.OK || env.Command != "kernel status" || !strings.Contains(hosts, `"host":"rs1"`) || !strings.Contains(hosts, `"running":`) {
		t.Errorf("kernel status --json: exit %d %+v\n%s", code, env, errs)
	}
	args = append([]string{"kernel", "confirm", "--json", "--hosts", "rs1"}, common...)
	code, out, _ = runApp(args...)
	env = decodeEnvelope(t, args, out)
	if code != ExitFailure || env.OK || len(env.Errors) != 1 || !strings.Contains(env.Errors[0].Message, "failed on 1 of 1 hosts: rs1") || !strings.Contains(compactJSON(t, env.Result), `"result":"failed"`) {
		t.Errorf("kernel confirm --json of a kernel rs1 does not run: exit %d %+v", code, env)
	}

	// JSON, one host down: exit status 1 naming it, the others planned.
	c.Hosts[3].Stop()
	args = append([]string{"push", "--dry-run", "--json", "--role", "realserver"}, common...)
	code, out, errs = runApp(args...)
	if code != ExitFailure || !strings.Contains(errs, "rs2") {
		t.Fatalf("push with rs2 down: exit %d, stderr %s", code, errs)
	}
	env = decodeEnvelope(t, args, out)
	var rep struct {
		Hosts []struct {
			Host, Result string
			Plan         []string
		}
	}
	if err := json.Unmarshal([]byte(compactJSON(t, env.Result)), &rep); err != nil {
		t.Fatalf("the envelope's result is not push's report: %v\n%s", err, out)
	}
	if env.OK || env.Command != "push" || len(env.Errors) != 1 || !strings.Contains(env.Errors[0].Message, "rs2") {
		t.Errorf("envelope: %+v", env)
	}
	if len(rep.Hosts) != 2 || rep.Hosts[0].Host != "rs1" || rep.Hosts[0].Result != "planned" || len(rep.Hosts[0].Plan) == 0 || rep.Hosts[1].Result != "failed" {
		t.Errorf("report: %+v", rep)
	}

	if code, _, _ := runApp(append([]string{"push", "--hosts", "nosuch"}, common...)...); code != ExitUsage {
		t.Errorf("--hosts nosuch: exit %d, want %d", code, ExitUsage)
	}
}

// fakeBuild writes one kernel build (or, with release "", an ipvsadm
// build) into cache the way `lvsforge build` lays it out, and returns its
// directory.
func fakeBuild(t *testing.T, cache, role, release string, inputs map[string]any, static bool) string {
	t.Helper()
	kind, sub := "kernel", "kernel"
	if release == "" {
		kind, sub = "ipvsadm", "ipvsadm"
		inputs = map[string]any{"Static": static}
	}
	key := fmt.Sprintf("%x", sha256.Sum256([]byte(role+release+fmt.Sprint(static))))
	dir := filepath.Join(cache, "artifacts", sub, key)
	os.MkdirAll(dir, 0o755)
	m, _ := json.Marshal(map[string]any{"kind": kind, "role": role, "release": release, "key": key, "inputs": inputs, "built": time.Now()})
	os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o644)
	if kind == "ipvsadm" {
		os.WriteFile(filepath.Join(dir, "ipvsadm"), []byte(fmt.Sprintf("ipvsadm static=%v\n", static)), 0o755)
		return dir
	}
	os.WriteFile(filepath.Join(dir, "bzImage"), []byte("kernel "+release), 0o644)
	os.WriteFile(filepath.Join(dir, "System.map"), []byte("ffffffff81000000 T _text\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "kernelrelease"), []byte(release+"\n"), 0o644)
	os.Symlink(key, filepath.Join(cache, "artifacts", "kernel", role+"-"+release))
	return dir
}

// TestPushKernelFromCache: push --kernel without --kernel-dir installs the
// spec's kernel builds from the cache, and on the directors the cache's
// (static) ipvsadm where the host has its ipvsadm; a build with other
// options than the spec's is refused; --kernel-dir still overrides.
func TestPushKernelFromCache(t *testing.T) {
	c := sshtest.Start(t, 4)
	specPath := testSpec(t, c)
	spec, err := cluster.Load(specPath)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	for _, role := range []string{cluster.RoleDirector, cluster.RoleRealServer} {
		rk, _ := build.RoleKernel(spec, role)
		fakeBuild(t, cache, role, spec.Release(role), map[string]any{"Options": rk.Options}, false)
	}
	fakeBuild(t, cache, "", "", nil, false)
	fakeBuild(t, cache, "", "", nil, true)
	common := []string{"-f", specPath, "--known-hosts", c.KnownHostsFile, "--ssh-config", "none"}

	code, out, errs := runApp(append([]string{"push", "--kernel", "--dry-run", "--cache-dir", cache}, common...)...)
	if code != ExitOK {
		t.Fatalf("push --kernel from the cache: exit %d\n%s\n%s", code, out, errs)
	}
	ipvsadm, _ := exec.LookPath("ipvsadm")
	if ipvsadm == "" {
		ipvsadm = "/usr/sbin/ipvsadm"
	}
	for _, want := range []string{
		"write /boot/vmlinuz-" + spec.Release(cluster.RoleDirector) + " mode 0644 size ",
		"write /boot/vmlinuz-" + spec.Release(cluster.RoleRealServer) + " mode 0644 size ",
		// The static build, over the host's own ipvsadm.
		fmt.Sprintf("write %s mode 0755 size %d", ipvsadm, len("ipvsadm static=true\n")),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}

	// The spec's options changed since the build: refused, saying what to do.
	y, _ := os.ReadFile(specPath)
	changed := regexp.MustCompile(`(?m)^(  realserver:\n(?:    .*\n)*?    options:) \[\]`).ReplaceAllString(string(y), "$1 [CONFIG_IP_VS_TAB_BITS=14]")
	if changed == string(y) {
		t.Fatal("the test spec has no kernel.realserver.options")
	}
	os.WriteFile(specPath, []byte(changed), 0o644)
	code, _, errs = runApp(append([]string{"push", "--kernel", "--dry-run", "--cache-dir", cache, "--role", "realserver"}, common...)...)
	if code != ExitFailure || !strings.Contains(errs, "lvsforge build kernel --role realserver") {
		t.Errorf("stale cached build: exit %d\n%s", code, errs)
	}
	os.WriteFile(specPath, y, 0o644)

	// --kernel-dir overrides the cache.
	kdir := t.TempDir()
	os.MkdirAll(filepath.Join(kdir, "realserver"), 0o755)
	for _, f := range []string{"bzImage", "System.map", "kernelrelease"} {
		b, _ := os.ReadFile(filepath.Join(cache, "artifacts", "kernel", "realserver-"+spec.Release(cluster.RoleRealServer), f))
		if f == "bzImage" {
			b = []byte("from --kernel-dir, longer")
		}
		os.WriteFile(filepath.Join(kdir, "realserver", f), b, 0o644)
	}
	code, out, errs = runApp(append([]string{"push", "--kernel", "--dry-run", "--kernel-dir", kdir, "--role", "realserver"}, common...)...)
	if code != ExitOK || !strings.Contains(out, fmt.Sprintf("write /boot/vmlinuz-%s mode 0644 size %d", spec.Release(cluster.RoleRealServer), len("from --kernel-dir, longer"))) {
		t.Errorf("--kernel-dir: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestPushInitMismatchCLI: the spec says systemd, the hosts run sysv: each
// host's plan fails, naming what to set.
func TestPushInitMismatchCLI(t *testing.T) {
	c := sshtest.Start(t, 4)
	specPath := testSpec(t, c)
	y, _ := os.ReadFile(specPath)
	os.WriteFile(specPath, []byte(strings.ReplaceAll(string(y), "init: sysv", "init: systemd")), 0o644)
	code, out, errs := runApp("push", "--dry-run", "--hosts", "rs1", "-f", specPath, "--known-hosts", c.KnownHostsFile, "--ssh-config", "none")
	if code != ExitFailure || !strings.Contains(out, "set `init: sysv` on host rs1") {
		t.Errorf("init mismatch: exit %d\n%s\n%s", code, out, errs)
	}
}
