package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/install"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/deploy/sshtest"
	"github.com/lvsforge/lvsforge/internal/clustertest"
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
// runningKernel loads a kernel build named after h's uname -r: the host
// "runs" it, as a confirm wants.
func runningKernel(t *testing.T, h *sshtest.Host) (string, *deploy.Kernel) {
	t.Helper()
	running, err := h.Exec("uname", "-r")
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(running))
	k, err := deploy.LoadKernel(kernelBuild(t, release))
	if err != nil {
		t.Fatal(err)
	}
	return release, k
}

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
	spec := clustertest.Example(t)
	rendered, err := roles.Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	var grubFile, grubDefault install.File
	for _, r := range rendered {
		if r.Host.Name == "rs1" {
			for _, f := range r.Files {
				switch f.Path {
				case install.Grub2Path:
					grubFile = install.File{Path: f.Path, Mode: f.Mode, Data: f.Data, Boot: f.Boot}
				case install.GrubDefaultPath:
					grubDefault = install.File{Path: f.Path, Mode: f.Mode, Data: f.Data, Boot: f.Boot}
				}
			}
		}
	}
	if grubFile.Data == nil {
		t.Fatalf("roles rendered no %s for rs1", install.Grub2Path)
	}
	release := spec.Release(cluster.RoleRealServer)
	k, err := deploy.LoadKernel(kernelBuild(t, release))
	if err != nil {
		t.Fatal(err)
	}
	k.ActivateOnce = true
	// Without a kernel, the GRUB script is a boot file like any other: not written.
	mustPush(t, []deploy.Host{{Target: e.target(h), Files: []install.File{grubFile}}}, e.opts)
	if _, err := os.Stat(h.Path(install.Grub2Path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a push without a kernel wrote %s: %v", install.Grub2Path, err)
	}
	host := deploy.Host{Target: e.target(h), Files: []install.File{grubFile}, Kernel: k}

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
	// A new GRUB setting (GRUB_DEFAULT=saved) alone regenerates grub.cfg.
	host.Files = append(host.Files, grubDefault)
	r = mustPush(t, []deploy.Host{host}, e.opts)
	if hr := r.Hosts[0]; fmt.Sprint(hr.Changed) != "["+install.GrubDefaultPath+"]" || len(hr.Commands) != 3 || hr.Commands[0] != "update-grub" {
		t.Errorf("push of a changed GRUB setting: changed %v, commands %q; want update-grub first", hr.Changed, hr.Commands)
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
	release, k := runningKernel(t, h)
	grub := install.File{Path: "/etc/grub.d/42_lvsforge", Mode: 0o755, Data: []byte(genericGrubScript)}
	mustPush(t, []deploy.Host{{Target: e.target(h), Files: []install.File{grub}, Kernel: k}}, e.opts)
	mustPush(t, []deploy.Host{{Target: e.target(h), Kernel: &deploy.Kernel{Release: release, MakeDefault: true}}}, e.opts)
	if env := grubenv(t, h); !strings.Contains(env, "saved_entry=lvsforge-"+release) {
		t.Errorf("grubenv after confirm = %q", env)
	}
	st := deploy.Status(context.Background(), []deploy.Target{e.target(h)}, e.opts)
	if st[0].Default != "lvsforge-"+release || st[0].Running != release {
		t.Errorf("status after confirm: %+v", st[0])
	}
}

// fakeGrubLegacy stands in for GRUB legacy's shell (`grub --batch`) on the
// test hosts: it records each savedefault and keeps /boot/grub/default as
// Debian's GRUB legacy does ("N", or "N:ONCE" for --once).
const fakeGrubLegacy = `#!/bin/sh
while read -r cmd a b; do
	case "$cmd" in
	savedefault)
		echo "$cmd $a $b" >> /var/log/lvsforge-test-grub
		n=${a#--default=}
		if [ "$b" = --once ]; then
			d=$(sed -n '1s/:.*//p' /boot/grub/default 2>/dev/null)
			echo "${d:-0}:$n" > /boot/grub/default
		else
			echo "$n" > /boot/grub/default
		fi;;
	quit) exit 0;;
	esac
done
`

// legacyGrubConf is a GRUB legacy host's grub.conf before lvsforge: its
// own entry, and the stanza an older lvsforge appended (panic=5).
const legacyGrubConf = `# grub.conf generated by anaconda
default saved
timeout 5
hiddenmenu

title CentOS (2.6.18-398.el5)
	root (hd0,0)
	kernel /vmlinuz-2.6.18-398.el5 ro root=/dev/sda1

title %[1]s (lvsforge director)
	root (hd0,0)
	kernel /boot/vmlinuz-%[1]s ro root=/dev/sda1 panic=5
`

func legacyStanzaFor(release string, panic int) install.File {
	return install.File{Path: "/etc/lvsforge/grub-legacy.conf", Data: []byte(fmt.Sprintf(
		"# /etc/lvsforge/grub-legacy.conf: GRUB legacy stanza, rendered by lvsforge.\n"+
			"title %[1]s (lvsforge director)\n\troot (hd0,0)\n\tkernel /boot/vmlinuz-%[1]s ro root=/dev/sda1 panic=%d\n", release, panic))}
}

// TestKernelGrubLegacy: on a host with GRUB legacy (a grub.conf, no
// grub.cfg), push --kernel writes grub.conf through the normal write path
// (backup, rename; its mode kept), with lvsforge's stanzas in one marked
// block that replaces what an older lvsforge appended and is rewritten
// when the stanza changes; --activate once points savedefault --once at
// the entry's index; kernel status names the entries (never "saved");
// kernel confirm needs `default saved`. The release has a "+".
func TestKernelGrubLegacy(t *testing.T) {
	testenv.LookPath(t, "depmod", "kmod")
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	const release = "6.1.192+lvs"
	script := "mkdir -p /boot/grub /usr/local/sbin && cat > /usr/local/sbin/grub && chmod 0755 /usr/local/sbin/grub && " +
		"printf '%s' \"$1\" > /boot/grub/grub.conf && chmod 0600 /boot/grub/grub.conf"
	if _, err := h.ExecInput(strings.NewReader(fakeGrubLegacy), "sh", "-c", script, "sh", fmt.Sprintf(legacyGrubConf, release)); err != nil {
		t.Fatal(err)
	}
	k, err := deploy.LoadKernel(kernelBuild(t, release))
	if err != nil {
		t.Fatal(err)
	}
	k.ActivateOnce = true
	host := deploy.Host{Target: e.target(h), Files: []install.File{legacyStanzaFor(release, 10)}, Kernel: k}
	r := mustPush(t, []deploy.Host{host}, e.opts)
	t.Logf("plan:\n%s", strings.Join(r.Hosts[0].Plan, "\n"))
	conf := readHost(t, h, "/boot/grub/grub.conf")
	if strings.Count(conf, "title "+release) != 1 || strings.Contains(conf, "panic=5") || !strings.Contains(conf, "panic=10") ||
		!strings.Contains(conf, "### BEGIN lvsforge") || !strings.HasPrefix(conf, "# grub.conf generated by anaconda\ndefault saved\n") {
		t.Errorf("grub.conf after push --kernel:\n%s", conf)
	}
	if st, err := os.Stat(h.Path("/boot/grub/grub.conf")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("grub.conf mode: %v %v", st.Mode(), err)
	}
	if b, _ := filepath.Glob(h.Path(deploy.DefaultBackupDir + "/boot/grub/grub.conf/*")); len(b) != 1 {
		t.Errorf("backups of grub.conf: %v", b)
	}
	if temps, _ := filepath.Glob(h.Path("/boot/grub/.lvsforge-tmp-*")); len(temps) != 0 {
		t.Errorf("temporaries left: %v", temps)
	}
	if got := readHost(t, h, "/var/log/lvsforge-test-grub"); got != "savedefault --default=1 --once\n" {
		t.Errorf("grub shell got %q", got)
	}
	st := deploy.Status(context.Background(), []deploy.Target{e.target(h)}, e.opts)[0]
	if st.Err() != nil || st.Default != "CentOS (2.6.18-398.el5)" || st.Next != release+" (lvsforge director)" {
		t.Errorf("status: %+v", st)
	}

	// Nothing changed: grub.conf is not rewritten, only the activation repeats.
	r = mustPush(t, []deploy.Host{host}, e.opts)
	if hr := r.Hosts[0]; len(hr.Changed) != 0 || len(hr.Commands) != 1 {
		t.Errorf("re-push: changed %v, commands %q", hr.Changed, hr.Commands)
	}
	// A changed panic value rewrites the stanza in place.
	host.Files = []install.File{legacyStanzaFor(release, 30)}
	r = mustPush(t, []deploy.Host{host}, e.opts)
	conf = readHost(t, h, "/boot/grub/grub.conf")
	if fmt.Sprint(r.Hosts[0].Changed) != "[/etc/lvsforge/grub-legacy.conf /boot/grub/grub.conf]" || strings.Count(conf, "title "+release) != 1 || !strings.Contains(conf, "panic=30") {
		t.Errorf("after a panic change: changed %v\n%s", r.Hosts[0].Changed, conf)
	}

	// Confirm: the host "runs" a second kernel, named after uname -r.
	rel2, k2 := runningKernel(t, h)
	mustPush(t, []deploy.Host{{Target: e.target(h), Files: []install.File{legacyStanzaFor(rel2, 30)}, Kernel: k2}}, e.opts)
	conf = readHost(t, h, "/boot/grub/grub.conf")
	if i, j := strings.Index(conf, "title "+release), strings.Index(conf, "title "+rel2); i < 0 || j < i {
		t.Errorf("the second kernel is not after the first:\n%s", conf)
	}
	if _, err := h.Exec("sed", "-i", "s/^default saved/default 0/", "/boot/grub/grub.conf"); err != nil {
		t.Fatal(err)
	}
	confirm := []deploy.Host{{Target: e.target(h), Kernel: &deploy.Kernel{Release: rel2, MakeDefault: true}}}
	r = deploy.Push(context.Background(), confirm, e.opts)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "default saved") {
		t.Errorf("confirm without default saved: %v", err)
	}
	if _, err := h.Exec("sed", "-i", "s/^default 0/default saved/", "/boot/grub/grub.conf"); err != nil {
		t.Fatal(err)
	}
	mustPush(t, confirm, e.opts)
	if got := readHost(t, h, "/var/log/lvsforge-test-grub"); !strings.HasSuffix(got, "savedefault --default=2 \n") {
		t.Errorf("grub shell after confirm: %q", got)
	}
	st = deploy.Status(context.Background(), []deploy.Target{e.target(h)}, e.opts)[0]
	if st.Default != rel2+" (lvsforge director)" || strings.Contains(st.Default+st.Next, "saved") {
		t.Errorf("status after confirm: %+v", st)
	}
}
