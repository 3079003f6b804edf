package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// hostTool is one thing lvsforge or its tests run on this machine.
type hostTool struct {
	name   string
	pkg    string // Debian package
	usedBy string
	// needs are the uses that fail without the tool; optional are those
	// that run without it, slower or with a feature missing (rpmbuild:
	// build --package rpm only).
	needs, optional []string
	present         func() bool
}

// The uses `doctor --for` checks for; useTest is what the test suite needs,
// which `doctor --install` (scripts/test, .ci/run) installs.
const (
	useRender = "render"
	usePush   = "push"
	useBuild  = "build"
	useVMTest = "vmtest"
	useTest   = "test"
)

var doctorUses = []string{useRender, usePush, useBuild, useVMTest, useTest}

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

func uses(u ...string) []string { return u }

var (
	// What a kernel and ipvsadm build needs; vmtest builds them too.
	buildNeeds = uses(useBuild, useVMTest, useTest)
	testOnly   = uses(useTest)
	vmNeeds    = uses(useVMTest, useTest)
)

// hostTools is the one list of what lvsforge needs from the host; the
// README's commands and .ci/run install from it (lvsforge doctor --install).
// render and push need nothing: push speaks SSH and SFTP itself.
var hostTools = []hostTool{
	{"shellcheck", "shellcheck", "tests: rendered scripts", testOnly, nil, onPath("shellcheck")},
	{"grub-script-check", "grub-common", "tests: rendered GRUB entries", testOnly, nil, onPath("grub-script-check")},
	{"keepalived", "keepalived", "tests: keepalived -t", testOnly, nil, onPath("keepalived")},
	{"ldirectord", "ldirectord", "tests: ldirectord status", testOnly, nil, onPath("ldirectord")},
	{"bird", "bird2", "tests: bird -p, and BIRD peering in network namespaces (the bgp backend)", testOnly, nil, onPath("bird")},
	{"vtysh", "frr", "tests: vtysh --dryrun checks the VM tests' FRR router configuration (the ecmp scenario)", testOnly, nil, onPath("vtysh")},
	{"heartbeat", "heartbeat", "tests", testOnly, nil, fileExists("/usr/libexec/heartbeat/heartbeat")},
	{"ipvsadm", "ipvsadm", "tests: ldirectord needs it", testOnly, nil, onPath("ipvsadm")},
	{"ip", "iproute2", "tests: network namespaces", testOnly, nil, onPath("ip")},
	{"iptables", "iptables", "tests: the director script's firewall marks, in a network namespace", testOnly, nil, onPath("iptables")},
	{"nft", "nftables", "tests: lvs-vip's connection handoff, in network namespaces", testOnly, nil, onPath("nft")},
	{"ndisc6", "ndisc6", "tests: no neighbour advertisement for a real server's IPv6 VIP, in a network namespace", testOnly, nil, onPath("ndisc6")},
	{"tcpdump", "tcpdump", "tests: lvs-vip announces an IPv6 VIP (unsolicited neighbour advertisements)", testOnly, nil, onPath("tcpdump")},
	{"unshare", "util-linux", "tests: private mounts per test host", testOnly, nil, onPath("unshare")},
	{"sshd", "openssh-server", "push tests: real sshd test hosts", testOnly, nil, onPath("sshd")},
	{"ssh", "openssh-client", "push tests, benchmarks; lvsforge vm ssh", testOnly, uses(useVMTest), onPath("ssh")},
	{"grub-reboot", "grub2-common", "push tests: one-time kernel boot", testOnly, nil, onPath("grub-reboot")},
	{"depmod", "kmod", "build: modules_install; push tests", buildNeeds, nil, onPath("depmod")},
	{"patch", "patch", "build: patch sets", buildNeeds, nil, onPath("patch")},
	{"xz", "xz-utils", "build: fast tarball extraction (else a slower decoder in Go)", testOnly, uses(useBuild, useVMTest), onPath("xz")},
	{"make", "make", "build: kernel", buildNeeds, nil, onPath("make")},
	{"ccache", "ccache", "build: kernel rebuilds (objects cached across roles and options)", testOnly, uses(useBuild, useVMTest), onPath("ccache")},
	{"distcc", "distcc", "build: a spec's kernel.buildFarm with engine distcc", testOnly, uses(useBuild), onPath("distcc")},
	{"distccd", "distcc", "tests: distccd build farm hosts in network namespaces", testOnly, nil, onPath("distccd")},
	{"gcc", "gcc", "build: kernel, ipvsadm", buildNeeds, nil, onPath("gcc")},
	{"flex", "flex", "build: kernel", buildNeeds, nil, onPath("flex")},
	{"bison", "bison", "build: kernel", buildNeeds, nil, onPath("bison")},
	{"bc", "bc", "build: kernel", buildNeeds, nil, onPath("bc")},
	{"libelf", "libelf-dev", "build: kernel", buildNeeds, nil, fileExists("/usr/include/libelf.h")},
	{"openssl headers", "libssl-dev", "build: kernel", buildNeeds, nil, fileExists("/usr/include/openssl/ssl.h")},
	{"cpio", "cpio", "build: initramfs", buildNeeds, nil, onPath("cpio")},
	{"rsync", "rsync", "build --package: the kernel's package targets", testOnly, uses(useBuild), onPath("rsync")},
	{"dpkg-buildpackage", "dpkg-dev", "build --package deb", testOnly, uses(useBuild), onPath("dpkg-buildpackage")},
	{"fakeroot", "fakeroot", "build --package deb", testOnly, uses(useBuild), onPath("fakeroot")},
	{"rpmbuild", "rpm", "build --package rpm", nil, uses(useBuild), onPath("rpmbuild")},
	{"pkg-config", "pkg-config", "build: ipvsadm", buildNeeds, nil, onPath("pkg-config")},
	{"libnl-genl-3", "libnl-genl-3-dev", "build: ipvsadm", buildNeeds, nil, pkgConfig("libnl-genl-3.0")},
	{"popt", "libpopt-dev", "build: ipvsadm", buildNeeds, nil, fileExists("/usr/include/popt.h")},
	{"linux-source-6.1", "linux-source-6.1", "build: the kernel source used offline (else kernel.org)", testOnly, uses(useBuild, useVMTest), fileExists("/usr/src/linux-source-6.1.tar.xz")},
	{"qemu-system-x86_64", "qemu-system-x86", "vmtest", vmNeeds, nil, onPath("qemu-system-x86_64")},
	{"qemu-img", "qemu-utils", "vmtest: disk images", vmNeeds, nil, onPath("qemu-img")},
	{"debootstrap", "debootstrap", "vmtest: guest images", vmNeeds, nil, onPath("debootstrap")},
	{"mke2fs", "e2fsprogs", "vmtest: guest images", vmNeeds, nil, onPath("mke2fs")},
	{"busybox", "busybox-static", "vmtest: tiny initramfs", vmNeeds, nil, onPath("busybox")},
	{"fish", "fish", "tests: lvsforge completion fish", testOnly, nil, onPath("fish")},
	{"zsh", "zsh", "tests: lvsforge completion zsh", testOnly, nil, onPath("zsh")},
}

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "doctor",
			Usage: "show which host tools are present or missing, and how to install them",
			Description: "Without --for, every tool of every use is listed and a missing one fails the check unless it\n" +
				"is optional everywhere (rpmbuild: build --package rpm only). --install installs every missing\n" +
				"tool that is not optional, which is what the test suite needs.",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "for", Usage: "check only what `USE` needs: " + strings.Join(doctorUses, ", ") + " (test: the test suite)", Action: func(_ *cli.Context, u string) error {
					if !slices.Contains(doctorUses, u) {
						return usageError{fmt.Sprintf("--for %q: want one of %s", u, strings.Join(doctorUses, ", "))}
					}
					return nil
				}},
				&cli.BoolFlag{Name: "install", Usage: "install what is missing with apt-get (needs root)"},
				jsonFlag,
			},
			Action: func(c *cli.Context) error {
				return a.doctor(c.String("for"), c.Bool("install"), checkTools(hostTools))
			},
		}
	})
}

// toolCheck is one tool's line of the doctor's report.
type toolCheck struct {
	Name     string   `json:"name"`
	Package  string   `json:"package"`
	UsedBy   string   `json:"usedBy"`
	Present  bool     `json:"present"`
	Required bool     `json:"required"`
	Needs    []string `json:"neededFor"`
	Optional []string `json:"optionalFor,omitempty"`
}

// doctorReport is doctor's result (--json).
type doctorReport struct {
	For   string      `json:"for,omitempty"`
	Tools []toolCheck `json:"tools"`
	// Missing are the packages of the required tools that are missing.
	Missing []string `json:"missing"`
	Install string   `json:"install,omitempty"`
}

// checkTools probes the machine once for every tool.
func checkTools(tools []hostTool) []toolCheck {
	out := make([]toolCheck, len(tools))
	for i, t := range tools {
		out[i] = toolCheck{Name: t.name, Package: t.pkg, UsedBy: t.usedBy, Present: t.present(), Needs: t.needs, Optional: t.optional}
	}
	return out
}

// forUse keeps the tools use needs or can use, marking which are required;
// use "" keeps all, required when any use needs them.
func forUse(tools []toolCheck, use string) doctorReport {
	r := doctorReport{For: use, Tools: []toolCheck{}, Missing: []string{}}
	seen := map[string]bool{}
	for _, t := range tools {
		t.Required = len(t.Needs) > 0
		if use != "" {
			t.Required = slices.Contains(t.Needs, use)
			if !t.Required && !slices.Contains(t.Optional, use) {
				continue
			}
		}
		r.Tools = append(r.Tools, t)
		if t.Required && !t.Present && !seen[t.Package] {
			r.Missing = append(r.Missing, t.Package)
			seen[t.Package] = true
		}
	}
	return r
}

func (a *App) doctor(use string, install bool, tools []toolCheck) error {
	r := forUse(tools, use)
	args := append([]string{"install", "-y", "--no-install-recommends"}, r.Missing...)
	cmdline := "apt-get " + strings.Join(args, " ")
	if len(r.Missing) > 0 {
		r.Install = cmdline
		if os.Geteuid() != 0 {
			r.Install = "sudo " + cmdline
		}
	}
	if len(r.Missing) == 0 || !install {
		if err := a.emit(r, r.writeTable); err != nil {
			return err
		}
		if len(r.Missing) > 0 {
			return fmt.Errorf("check host tools: %d missing", len(r.Missing))
		}
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("install host tools: needs root; run: sudo %s", cmdline)
	}
	// With --json, stdout is the envelope's: apt-get's output goes to stderr.
	out := a.Stdout
	if a.json {
		out = a.Stderr
	}
	fmt.Fprintf(out, "+ apt-get update && %s\n", cmdline)
	for _, argv := range [][]string{{"apt-get", "update", "-q"}, append([]string{"apt-get"}, args...)} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = out, a.Stderr
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("install host tools: %s: %w", strings.Join(argv, " "), err)
		}
	}
	return a.emit(forUse(checkTools(hostTools), use), func(io.Writer) error { return nil })
}

func (r doctorReport) writeTable(w io.Writer) error {
	if len(r.Tools) == 0 {
		_, err := fmt.Fprintf(w, "%s needs no host tools\n", r.For)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tSTATUS\tPACKAGE\tNEEDED FOR\tUSED BY")
	for _, t := range r.Tools {
		status := "ok"
		switch {
		case !t.Present && t.Required:
			status = "MISSING"
		case !t.Present:
			status = "missing, optional"
		}
		needed := "optional"
		switch {
		case t.Required && r.For != "":
			needed = "required"
		case t.Required:
			needed = strings.Join(t.Needs, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, status, t.Package, needed, t.UsedBy)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	what := "everything lvsforge uses"
	if r.For != "" {
		what = "everything " + r.For + " needs"
	}
	if len(r.Missing) == 0 {
		_, err := fmt.Fprintf(w, "%s is installed\n", what)
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d missing; install them with:\n  %s\n", len(r.Missing), r.Install)
	return err
}
