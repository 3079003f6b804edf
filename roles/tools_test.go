package roles

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// renderedFiles yields every rendered file of every variant whose target path matches.
func renderedFiles(t *testing.T, match func(path string, data []byte) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range variants {
		root := renderTree(t, name)
		for rel, f := range readTree(t, root) {
			if i := strings.Index(rel, "/"); i > 0 && match(rel[i:], f.data) {
				out[name+"/"+rel] = filepath.Join(root, filepath.FromSlash(rel))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no rendered file matched")
	}
	return out
}

func isScript(_ string, data []byte) bool { return strings.HasPrefix(string(data), "#!") }

func run(t *testing.T, name string, wantExit int, cmd *exec.Cmd) {
	t.Helper()
	if out, code := outputAndExit(t, cmd); code != wantExit {
		t.Errorf("%s: %s exited %d, want %d:\n%s", name, strings.Join(cmd.Args, " "), code, wantExit, out)
	}
}

// outputAndExit runs cmd and returns its output and exit status; a command
// that cannot run at all fails the test.
func outputAndExit(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return string(out), code
}

// TestScriptsPassShellcheck runs bash -n (or sh -n) and shellcheck on every rendered script.
func TestScriptsPassShellcheck(t *testing.T) {
	shellcheck := testenv.LookPath(t, "shellcheck", "shellcheck")
	for name, path := range renderedFiles(t, isScript) {
		b, _ := os.ReadFile(path)
		shell := "bash"
		if strings.HasPrefix(string(b), "#!/bin/sh") {
			shell = "sh"
		}
		run(t, name, 0, exec.Command(shell, "-n", path))
		run(t, name, 0, exec.Command(shellcheck, "--severity=style", path))
	}
}

// TestGrubEntriesPassGrubScriptCheck runs each /etc/grub.d script the way
// grub-mkconfig would, over a /boot holding lvsforge kernels and another
// kernel, and checks its output with grub-script-check.
func TestGrubEntriesPassGrubScriptCheck(t *testing.T) {
	check := testenv.LookPath(t, "grub-script-check", "grub-common")
	for name, path := range renderedFiles(t, func(p string, _ []byte) bool { return p == install.Grub2Path }) {
		variant := strings.SplitN(name, "/", 2)[0]
		s := loadVariant(t, variant)
		boot, state := t.TempDir(), t.TempDir()
		// Two kernels lvsforge installed (markers), one the distro's (no
		// marker), a marker whose kernel is gone.
		for _, f := range []string{"vmlinuz-" + s.Release("realserver"), "vmlinuz-6.1.150-older",
			"initrd.img-6.1.150-older", "vmlinuz-6.1.0-13-amd64"} {
			os.WriteFile(filepath.Join(boot, f), nil, 0o644)
		}
		for _, rel := range []string{s.Release("realserver"), "6.1.150-older", "6.1.100-removed"} {
			os.WriteFile(filepath.Join(state, "release-"+rel), []byte(rel+"\n"), 0o644)
		}
		cmd := exec.Command("sh", path)
		cmd.Env = append(os.Environ(), "LVSFORGE_BOOT_DIR="+boot, "LVSFORGE_STATE_DIR="+state, "GRUB_DEVICE_BOOT=")
		cfg, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := string(cfg)
		if strings.Count(c, "menuentry ") != 2 || strings.Count(c, "panic=") != 2 || !strings.Contains(c, "--id 'lvsforge-"+s.Release("realserver")+"'") ||
			!strings.Contains(c, "initrd /boot/initrd.img-6.1.150-older") || strings.Contains(c, "6.1.0-13-amd64") || strings.Contains(c, "removed") {
			t.Errorf("%s: want an entry with panic= for each kernel lvsforge installed, and no other:\n%s", name, cfg)
		}
		p := filepath.Join(t.TempDir(), "grub.cfg")
		os.WriteFile(p, cfg, 0o644)
		run(t, name, 0, exec.Command(check, p))
	}
}

// TestKeepalivedAcceptsConfig runs keepalived's own config test on every
// rendered keepalived.conf, as root in a network namespace that holds the
// director's interfaces: keepalived -t warns (exit 5) about a VRRP or
// tracked interface the machine lacks, and any warning fails the test, as
// does any output at all.
func TestKeepalivedAcceptsConfig(t *testing.T) {
	keepalived := testenv.LookPath(t, "keepalived", "keepalived")
	testenv.Root(t)
	ipTool := testenv.LookPath(t, "ip", "iproute2")
	for name, path := range renderedFiles(t, func(p string, _ []byte) bool { return p == "/etc/keepalived/keepalived.conf" }) {
		parts := strings.SplitN(name, "/", 3)
		host := loadVariant(t, parts[0]).Host(parts[1])
		ns := netnsWith(t, ipTool, host.Interfaces.Public, host.Interfaces.Heartbeat)
		cmd := exec.Command(ipTool, "netns", "exec", ns, keepalived, "-t", "-f", path)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("%s: keepalived -t: %v\n%s", name, err, out)
		}
	}
	// The check must be able to fail: a broken copy is refused, and so is
	// one tracking an interface the namespace does not have.
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("virtual_server 192.168.7.110 80 {\n    lvs_sched nosuch\n}\n"), 0o644)
	if err := exec.Command(keepalived, "-t", "-f", bad).Run(); err == nil {
		t.Error("keepalived -t accepted a broken config: the check proves nothing")
	}
	untracked := filepath.Join(t.TempDir(), "untracked.conf")
	os.WriteFile(untracked, []byte("vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n    track_interface {\n        lvsnosuch0\n    }\n    virtual_ipaddress {\n        192.0.2.1/32 dev eth0\n    }\n}\n"), 0o644)
	ns := netnsWith(t, ipTool, "eth0")
	if err := exec.Command(ipTool, "netns", "exec", ns, keepalived, "-t", "-f", untracked).Run(); err == nil {
		t.Error("keepalived -t accepted a tracked interface that does not exist: its warnings are not failures")
	}
}

// netnsWith creates a network namespace holding an interface of each
// non-empty name (veth pairs: this kernel may have no dummy driver),
// removed when the test ends, and returns its name.
func netnsWith(t *testing.T, ipTool string, ifaces ...string) string {
	t.Helper()
	netnsCount++
	ns := fmt.Sprintf("lvsforge-t%d-%d", testNonce(), netnsCount)
	addNetns(t, ipTool, ns)
	for i, iface := range ifaces {
		if iface == "" {
			continue
		}
		if out, err := exec.Command(ipTool, "-n", ns, "link", "add", iface, "type", "veth", "peer", "name", fmt.Sprintf("lvspeer%d", i)).CombinedOutput(); err != nil {
			t.Fatalf("create %s in %s: %v: %s", iface, ns, err, out)
		}
	}
	return ns
}

// netnsCount tells netnsWith's namespaces apart.
var netnsCount int

// netnsTools is what every test in network namespaces needs: root, ip
// (returned) and unshare.
func netnsTools(t *testing.T) (ipTool string) {
	t.Helper()
	testenv.Root(t)
	ipTool = testenv.LookPath(t, "ip", "iproute2")
	testenv.LookPath(t, "unshare", "util-linux")
	return ipTool
}

// addNetns creates network namespace ns, removed when the test ends. A
// kernel without network namespaces is a missing prerequisite.
func addNetns(t *testing.T, ipTool, ns string) {
	t.Helper()
	if out, err := exec.Command(ipTool, "netns", "add", ns).CombinedOutput(); err != nil {
		testenv.Missing(t, "network namespaces ("+strings.TrimSpace(string(out))+")", "run as root on a kernel with netns")
	}
	t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns).Run() })
}

// vethInto creates a veth pair whose end outer stays in this namespace and
// whose other end is ns's eth0; outer is removed when the test ends.
func vethInto(t *testing.T, ipTool, outer, ns string) {
	t.Helper()
	if out, err := exec.Command(ipTool, "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns).CombinedOutput(); err != nil {
		t.Fatalf("create veth: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ipTool, "link", "del", outer).Run() })
}

// TestLdirectordAcceptsConfig: `ldirectord CFG status` exits 3 (config good,
// daemon stopped) and 2 on a config error.
func TestLdirectordAcceptsConfig(t *testing.T) {
	ldirectord := testenv.LookPath(t, "ldirectord", "ldirectord")
	testenv.LookPath(t, "ipvsadm", "ipvsadm") // ldirectord refuses to run without it
	for name, path := range renderedFiles(t, func(p string, _ []byte) bool { return p == LdirectordPath }) {
		run(t, name, 3, exec.Command(ldirectord, path, "status"))
	}
	bad := filepath.Join(t.TempDir(), "bad.cf")
	os.WriteFile(bad, []byte("virtual=192.168.7.110:80\n\treal=192.168.7.11:80 sideways 1\n"), 0o644)
	run(t, "broken config", 2, exec.Command(ldirectord, bad, "status"))
}

// TestBirdAcceptsConfig runs BIRD's own parser (bird -p) on every rendered
// bird.conf: exit 0 and no output. A broken copy must be refused, so that
// the check can fail.
func TestBirdAcceptsConfig(t *testing.T) {
	bird := testenv.LookPath(t, "bird", "bird2")
	for name, path := range renderedFiles(t, func(p string, _ []byte) bool { return p == BirdConfPath }) {
		if out, err := exec.Command(bird, "-p", "-c", path).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("%s: bird -p: %v\n%s", name, err, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("router id 10.0.0.1;\nprotocol bgp p {\n    local 10.0.0.1 as 65001;\n    neighbor 10.0.0.2 as 65000;\n    hold time 2;\n}\n"), 0o644)
	if err := exec.Command(bird, "-p", "-c", bad).Run(); err == nil {
		t.Error("bird -p accepted a hold time of 2 s (BGP allows 0 or 3 and more): the check proves nothing")
	}
}
