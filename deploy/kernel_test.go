package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/deploy/sshtest"
	"github.com/lvsforge/lvsforge/internal/testenv"
	"github.com/lvsforge/lvsforge/roles"
)

// fakeUpdateGrub stands in for update-grub on the test hosts: grub-mkconfig
// cannot probe the root device of an overlay in a namespace, so it writes
// what Debian's 10_linux would for the running kernel (its submenu entry),
// then runs lvsforge's /etc/grub.d script, as grub-mkconfig would.
const fakeUpdateGrub = `#!/bin/sh
set -e
r=$(uname -r)
{
	echo 'set default="${saved_entry}"'
	echo "submenu 'Advanced options' \$menuentry_id_option 'gnulinux-advanced-test' {"
	echo "	menuentry 'Linux $r' \$menuentry_id_option 'gnulinux-$r-advanced-test' {"
	echo "		linux /boot/vmlinuz-$r root=/dev/sda1 ro"
	echo "	}"
	echo "	menuentry 'Linux $r (recovery mode)' \$menuentry_id_option 'gnulinux-$r-recovery-test' {"
	echo "		linux /boot/vmlinuz-$r root=/dev/sda1 ro single"
	echo "	}"
	echo "}"
	/etc/grub.d/42_lvsforge
} > /boot/grub/grub.cfg.new
mv /boot/grub/grub.cfg.new /boot/grub/grub.cfg
`

// genericGrubScript makes an entry for every installed kernel, so a test
// can install one named like the running kernel and confirm it.
const genericGrubScript = `#!/bin/sh
for k in /boot/vmlinuz-*; do
	[ -e "$k" ] || continue
	r=${k#/boot/vmlinuz-}
	echo "menuentry 'lvsforge $r' --id 'lvsforge-$r' {"
	echo "	linux /boot/vmlinuz-$r ro panic=10"
	echo "}"
done
`

// kernelBuild writes a build directory in the build package's layout.
func kernelBuild(t *testing.T, release string) string {
	dir := t.TempDir()
	img := make([]byte, 3<<20)
	rand.Read(img)
	os.WriteFile(filepath.Join(dir, "bzImage"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "System.map"), []byte("ffffffff81000000 T _text\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "config"), []byte("CONFIG_IP_VS=y\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "kernelrelease"), []byte(release+"\n"), 0o644)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range []struct{ name, body string }{
		{"lib/", ""}, {"lib/modules/", ""}, {"lib/modules/" + release + "/", ""},
		{"lib/modules/" + release + "/modules.order", ""},
		{"lib/modules/" + release + "/modules.builtin", "kernel/net/netfilter/ipvs/ip_vs.ko\n"},
	} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		tw.WriteHeader(h)
		tw.Write([]byte(e.body))
	}
	tw.Close()
	gz.Close()
	os.WriteFile(filepath.Join(dir, "modules.tar.gz"), buf.Bytes(), 0o644)
	return dir
}

// grubHost gives a test host a /boot/grub, GRUB_DEFAULT=saved and the
// stand-in update-grub.
func grubHost(t *testing.T, h *sshtest.Host) {
	t.Helper()
	script := "mkdir -p /boot/grub /usr/local/sbin && echo GRUB_DEFAULT=saved > /etc/default/grub && " +
		"cat > /usr/local/sbin/update-grub && chmod 0755 /usr/local/sbin/update-grub"
	if _, err := h.ExecInput(strings.NewReader(fakeUpdateGrub), "sh", "-c", script); err != nil {
		t.Fatalf("prepare GRUB: %v", err)
	}
}

func grubenv(t *testing.T, h *sshtest.Host) string {
	t.Helper()
	out, err := h.Exec("grub-editenv", "/boot/grub/grubenv", "list")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestKernelInstallActivateOnce(t *testing.T) {
	check := testenv.LookPath(t, "grub-script-check", "grub-common")
	testenv.LookPath(t, "grub-reboot", "grub2-common")
	testenv.LookPath(t, "depmod", "kmod")
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	grubHost(t, h)

	// The GRUB script is the one roles renders for a real server.
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	spec, err := cluster.Example(cluster.KernelOrgSource(), dir)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := roles.Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	var grubFile deploy.File
	for _, r := range rendered {
		if r.Host.Name == "rs1" {
			for _, f := range r.Files {
				if f.Path == roles.Grub2Path {
					grubFile = deploy.File{Path: f.Path, Mode: f.Mode, Data: f.Data}
				}
			}
		}
	}
	if grubFile.Data == nil {
		t.Fatalf("roles rendered no %s for rs1", roles.Grub2Path)
	}
	release := roles.Release(spec, cluster.RoleRealServer)
	k, err := deploy.LoadKernel(kernelBuild(t, release))
	if err != nil {
		t.Fatal(err)
	}
	k.ActivateOnce = true
	host := deploy.Host{Target: e.target(h), Files: []deploy.File{grubFile}, Kernel: k}

	r := mustPush(t, []deploy.Host{host}, e.opts)
	t.Logf("plan:\n%s", strings.Join(r.Hosts[0].Plan, "\n"))
	for _, p := range []string{"/boot/vmlinuz-" + release, "/boot/System.map-" + release, "/var/lib/lvsforge/kernel/release-" + release, "/lib/modules/" + release + "/modules.dep", "/lib/modules/" + release + "/modules.builtin"} {
		if _, err := os.Stat(h.Path(p)); err != nil {
			t.Errorf("after install: %v", err)
		}
	}
	cfg := h.Path("/boot/grub/grub.cfg")
	if out, err := exec.Command(check, cfg).CombinedOutput(); err != nil {
		t.Errorf("grub-script-check rejects the generated grub.cfg: %v: %s", err, out)
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "--id 'lvsforge-"+release+"'") || !strings.Contains(string(b), "panic=") {
		t.Errorf("grub.cfg lacks the lvsforge entry with panic=:\n%s", b)
	}
	// No default was ever saved: the running kernel's entry is pinned
	// first, so that the one-time boot has somewhere to fall back to.
	running, err := exec.Command("uname", "-r").Output()
	if err != nil {
		t.Fatal(err)
	}
	pinned := "saved_entry=gnulinux-advanced-test>gnulinux-" + strings.TrimSpace(string(running)) + "-advanced-test"
	if env := grubenv(t, h); !strings.Contains(env, "next_entry=lvsforge-"+release) || !strings.Contains(env, pinned) {
		t.Errorf("grubenv after --activate once = %q, want next_entry and %s", env, pinned)
	}

	// Re-push: nothing is transferred, only the one-time activation (and
	// its check for a saved default) repeats.
	r = mustPush(t, []deploy.Host{host}, e.opts)
	if hr := r.Hosts[0]; len(hr.Changed) != 0 || len(hr.Commands) != 2 || !strings.Contains(hr.Commands[1], "grub-reboot") {
		t.Errorf("re-push: changed %v, commands %q", hr.Changed, hr.Commands)
	}

	// Confirming a kernel the host does not run is refused.
	r = deploy.Push(context.Background(), []deploy.Host{{Target: e.target(h), Kernel: &deploy.Kernel{Release: release, MakeDefault: true}}}, e.opts)
	if err := r.Hosts[0].Err(); !errors.Is(err, deploy.ErrNotRunning) {
		t.Errorf("confirm of a kernel not running: %v, want ErrNotRunning", err)
	}
	st := deploy.Status(context.Background(), []deploy.Target{e.target(h)}, e.opts)
	if st[0].Err() != nil || st[0].Next != "lvsforge-"+release || len(st[0].Installed) != 1 || st[0].Running == "" {
		t.Errorf("status: %+v", st[0])
	}
}

func TestKernelConfirm(t *testing.T) {
	testenv.LookPath(t, "grub-set-default", "grub2-common")
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	grubHost(t, h)
	// The host "runs" the kernel being confirmed: name it after uname -r.
	running, err := h.Exec("uname", "-r")
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(running))
	k, err := deploy.LoadKernel(kernelBuild(t, release))
	if err != nil {
		t.Fatal(err)
	}
	grub := deploy.File{Path: "/etc/grub.d/42_lvsforge", Mode: 0o755, Data: []byte(genericGrubScript)}
	mustPush(t, []deploy.Host{{Target: e.target(h), Files: []deploy.File{grub}, Kernel: k}}, e.opts)
	mustPush(t, []deploy.Host{{Target: e.target(h), Kernel: &deploy.Kernel{Release: release, MakeDefault: true}}}, e.opts)
	if env := grubenv(t, h); !strings.Contains(env, "saved_entry=lvsforge-"+release) {
		t.Errorf("grubenv after confirm = %q", env)
	}
	st := deploy.Status(context.Background(), []deploy.Target{e.target(h)}, e.opts)
	if st[0].Default != "lvsforge-"+release || st[0].Running != release {
		t.Errorf("status after confirm: %+v", st[0])
	}
}
