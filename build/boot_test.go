package build

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/internal/fsutil"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// writeCpio packs dir as a newc cpio archive, the format the kernel unpacks
// as an initramfs (uncompressed, so no compressor option is needed).
func writeCpio(w io.Writer, dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	bw := bufio.NewWriter(w)
	pad := func(n int) { bw.Write(make([]byte, (4-n%4)%4)) }
	entry := func(ino int, name string, mode uint32, data []byte) {
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		bw.WriteString(hdr)
		bw.WriteString(name)
		bw.WriteByte(0)
		pad(len(hdr) + len(name) + 1)
		bw.Write(data)
		pad(len(data))
	}
	for i, p := range paths {
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		perm := uint32(info.Mode().Perm())
		switch {
		case info.IsDir():
			entry(i+1, rel, 0o040000|perm, nil)
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entry(i+1, rel, 0o120000|0o777, []byte(l))
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entry(i+1, rel, 0o100000|perm, data)
		}
	}
	entry(0, "TRAILER!!!", 0, nil)
	return bw.Flush()
}

const initScript = `#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo "LVSFORGE-RELEASE $(uname -r)"
modprobe ip_vs || echo "LVSFORGE-FAIL modprobe ip_vs"
for s in %s; do
	# The scheduler module is loaded on demand by the kernel (request_module).
	if ipvsadm -A -t 10.0.0.1:80 -s $s && ipvsadm -D -t 10.0.0.1:80; then
		echo "LVSFORGE-SCHED-OK $s"
	else
		echo "LVSFORGE-SCHED-FAIL $s"
	fi
done
cat /proc/net/ip_vs
echo LVSFORGE-DONE
poweroff -f
`

// bootDirector boots the kernel under QEMU (TCG: nested KVM does not work
// on these machines) with an initramfs holding busybox, the static ipvsadm
// and the kernel's modules, and checks every scheduler loads.
func bootDirector(t *testing.T, art *KernelArtifacts, ipvsadm string, schedulers []string) {
	qemu := testenv.LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "/bin/busybox (static)", "apt-get install -y busybox-static")
	}
	if dyn, err := IsDynamic("/bin/busybox"); err != nil || dyn {
		testenv.Missing(t, "a static /bin/busybox", "apt-get install -y busybox-static")
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "sbin", "proc", "sys", "dev", "lib/modules"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	if err := fsutil.CopyFile("/bin/busybox", filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"sh", "mount", "uname", "cat", "echo", "poweroff"} {
		os.Symlink("busybox", filepath.Join(root, "bin", tool))
	}
	for _, tool := range []string{"modprobe", "insmod"} {
		os.Symlink("../bin/busybox", filepath.Join(root, "sbin", tool))
	}
	if err := fsutil.CopyFile(ipvsadm, filepath.Join(root, "sbin/ipvsadm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", art.Modules, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("unpack modules: %v %s", err, out)
	}
	os.WriteFile(filepath.Join(root, "init"), []byte(fmt.Sprintf(initScript, strings.Join(schedulers, " "))), 0o755)
	var cpio bytes.Buffer
	if err := writeCpio(&cpio, root); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initramfs.cpio")
	os.WriteFile(initrd, cpio.Bytes(), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "256", "-nographic", "-no-reboot",
		"-nodefaults", "-serial", "stdio", "-kernel", art.BzImage, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 rdinit=/init")
	out, err := cmd.CombinedOutput()
	console := string(out)
	if err != nil || !strings.Contains(console, "LVSFORGE-DONE") {
		t.Fatalf("boot failed (%v):\n%s", err, console)
	}
	if !strings.Contains(console, "LVSFORGE-RELEASE "+art.Release) {
		t.Errorf("release %s not reported:\n%s", art.Release, console)
	}
	if !strings.Contains(console, "IP Virtual Server version") {
		t.Errorf("/proc/net/ip_vs not shown:\n%s", console)
	}
	for _, s := range schedulers {
		if !strings.Contains(console, "LVSFORGE-SCHED-OK "+s+"\r") && !strings.Contains(console, "LVSFORGE-SCHED-OK "+s+"\n") {
			t.Errorf("scheduler %s did not load", s)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", console)
		return
	}
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "LVSFORGE") || strings.Contains(l, "IP Virtual Server") || strings.Contains(l, "IPVS:") {
			t.Log(strings.TrimSpace(l))
		}
	}
}
