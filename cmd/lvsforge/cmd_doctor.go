package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// hostTool is one thing lvsforge or its tests run on this machine.
type hostTool struct {
	name    string
	pkg     string // Debian package
	usedBy  string
	present func() bool
}

func onPath(name string) func() bool {
	return func() bool {
		if _, err := exec.LookPath(name); err == nil {
			return true
		}
		for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			if st, err := os.Stat(d + "/" + name); err == nil && st.Mode()&0o111 != 0 {
				return true
			}
		}
		return false
	}
}

func fileExists(p string) func() bool {
	return func() bool { _, err := os.Stat(p); return err == nil }
}

func pkgConfig(mod string) func() bool {
	return func() bool { return exec.Command("pkg-config", "--exists", mod).Run() == nil }
}

// hostTools is the one list of what lvsforge needs from the host; the
// README's commands and .ci/run install from it (lvsforge doctor --install).
var hostTools = []hostTool{
	{"shellcheck", "shellcheck", "tests: rendered scripts", onPath("shellcheck")},
	{"grub-script-check", "grub-common", "tests: rendered GRUB entries", onPath("grub-script-check")},
	{"keepalived", "keepalived", "tests: keepalived -t; VM guests", onPath("keepalived")},
	{"ldirectord", "ldirectord", "tests: ldirectord status; VM guests", onPath("ldirectord")},
	{"heartbeat", "heartbeat", "VM guests", fileExists("/usr/libexec/heartbeat/heartbeat")},
	{"ipvsadm", "ipvsadm", "tests: ldirectord needs it; VM guests", onPath("ipvsadm")},
	{"ip", "iproute2", "tests: network namespaces", onPath("ip")},
	{"iptables", "iptables", "tests: the director script's firewall marks, in a network namespace", onPath("iptables")},
	{"unshare", "util-linux", "tests: private mounts per test host", onPath("unshare")},
	{"sshd", "openssh-server", "push tests: real sshd test hosts", onPath("sshd")},
	{"ssh", "openssh-client", "push tests, benchmarks", onPath("ssh")},
	{"grub-reboot", "grub2-common", "push tests: one-time kernel boot", onPath("grub-reboot")},
	{"depmod", "kmod", "push: kernel modules", onPath("depmod")},
	{"patch", "patch", "build: patch sets", onPath("patch")},
	{"xz", "xz-utils", "build: fast tarball extraction", onPath("xz")},
	{"make", "make", "build: kernel", onPath("make")},
	{"ccache", "ccache", "build: kernel rebuilds (objects cached across roles and options)", onPath("ccache")},
	{"gcc", "gcc", "build: kernel, ipvsadm", onPath("gcc")},
	{"flex", "flex", "build: kernel", onPath("flex")},
	{"bison", "bison", "build: kernel", onPath("bison")},
	{"bc", "bc", "build: kernel", onPath("bc")},
	{"libelf", "libelf-dev", "build: kernel", fileExists("/usr/include/libelf.h")},
	{"openssl headers", "libssl-dev", "build: kernel", fileExists("/usr/include/openssl/ssl.h")},
	{"cpio", "cpio", "build: initramfs", onPath("cpio")},
	{"rsync", "rsync", "build --package: the kernel's package targets", onPath("rsync")},
	{"dpkg-buildpackage", "dpkg-dev", "build --package deb", onPath("dpkg-buildpackage")},
	{"fakeroot", "fakeroot", "build --package deb", onPath("fakeroot")},
	{"rpmbuild", "rpm", "build --package rpm", onPath("rpmbuild")},
	{"pkg-config", "pkg-config", "build: ipvsadm", onPath("pkg-config")},
	{"libnl-genl-3", "libnl-genl-3-dev", "build: ipvsadm", pkgConfig("libnl-genl-3.0")},
	{"popt", "libpopt-dev", "build: ipvsadm", fileExists("/usr/include/popt.h")},
	{"linux-source-6.1", "linux-source-6.1", "build: the kernel source used offline", fileExists("/usr/src/linux-source-6.1.tar.xz")},
	{"qemu-system-x86_64", "qemu-system-x86", "vmtest", onPath("qemu-system-x86_64")},
	{"qemu-img", "qemu-utils", "vmtest: disk images", onPath("qemu-img")},
	{"debootstrap", "debootstrap", "vmtest: guest images", onPath("debootstrap")},
	{"mke2fs", "e2fsprogs", "vmtest: guest images", onPath("mke2fs")},
	{"busybox", "busybox-static", "vmtest: tiny initramfs", onPath("busybox")},
}

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:      "doctor",
			Usage:     "show which host tools are present or missing, and how to install them",
			ArgsUsage: " ",
			Flags: []cli.Flag{&cli.BoolFlag{
				Name: "install", Usage: "install what is missing with apt-get (needs root)",
			}},
			Action: func(c *cli.Context) error { return a.doctor(c.Bool("install")) },
		}
	})
}

func (a *App) doctor(install bool) error {
	tw := tabwriter.NewWriter(a.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tSTATUS\tPACKAGE\tUSED BY")
	var missing []string
	seen := map[string]bool{}
	for _, t := range hostTools {
		status := "ok"
		if !t.present() {
			status = "MISSING"
			if !seen[t.pkg] {
				missing = append(missing, t.pkg)
				seen[t.pkg] = true
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.name, status, t.pkg, t.usedBy)
	}
	tw.Flush()
	if len(missing) == 0 {
		fmt.Fprintln(a.Stdout, "everything lvsforge uses is installed")
		return nil
	}
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	cmdline := "apt-get " + strings.Join(args, " ")
	if !install {
		if os.Geteuid() != 0 {
			cmdline = "sudo " + cmdline
		}
		fmt.Fprintf(a.Stdout, "\n%d missing; install them with:\n  %s\n", len(missing), cmdline)
		return fmt.Errorf("check host tools: %d missing", len(missing))
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("install host tools: needs root; run: sudo %s", cmdline)
	}
	fmt.Fprintf(a.Stdout, "\n+ apt-get update && %s\n", cmdline)
	for _, argv := range [][]string{{"apt-get", "update", "-q"}, append([]string{"apt-get"}, args...)} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = a.Stdout, a.Stderr
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("install host tools: %s: %w", strings.Join(argv, " "), err)
		}
	}
	return nil
}
