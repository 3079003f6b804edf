package vmtests

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lvsforge/lvsforge/action"
	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/vmtests/guestimage"
	"github.com/lvsforge/lvsforge/vmtests/qemu"
	"github.com/lvsforge/lvsforge/vmtests/vlan"
)

// kernelFallback boots a host through the BIOS and GRUB from a disk, as a
// real one does, and runs the kernel life cycle lvsforge gives users.
var kernelFallback = &Scenario{
	Name: "kernel-fallback",
	Doc: "a VM that boots through GRUB from its disk (not -kernel) runs its first kernel; push --kernel --activate once installs the real-server kernel lvsforge built " +
		"and, after a reboot, it runs it; kernel confirm makes it the default; a kernel built without its disk driver (virtio-blk: it panics at boot) installed the same way " +
		"panics, reboots by itself and the VM is back on the confirmed kernel with no human action; kernel status shows each step",
	Standalone: true,
	Run:        runKernelFallback,
}

// brokenLocalVersion names the kernel that cannot mount its root.
const brokenLocalVersion = "-rsbroken"

// breakRealServerKernel makes s's real-server kernel one that panics at
// boot: built without the virtio disk driver, it cannot mount its root.
// kernel-fallback and rolling-upgrade derive it alike, so it is built once.
func breakRealServerKernel(s *cluster.Spec) error {
	s.Kernel.RealServer.LocalVersion = brokenLocalVersion
	s.Kernel.RealServer.Options = append(slices.Clone(s.Kernel.RealServer.Options), "CONFIG_VIRTIO_BLK=n")
	return nil
}

// bootDiskSpec is s for hosts that boot through GRUB from a virtio disk
// (bootDiskVM, Options.BootDisks): lvsforge's GRUB entries name its root
// and give the kernel the serial console the harness reads, and the
// settings of the VMs' own command line; the console takes the first
// serial port, so no heartbeat medium is a serial cable.
func bootDiskSpec(s *cluster.Spec) error {
	s.Kernel.Cmdline = "console=ttyS0 acpi=noirq " + guestClock
	for i := range s.Hosts {
		s.Hosts[i].Boot.Root = "/dev/vda1"
	}
	s.HA.Media = slices.DeleteFunc(s.HA.Media, func(m cluster.Medium) bool { return m.Type == cluster.MediumSerial })
	return nil
}

func runKernelFallback(ctx context.Context, r *Run) error {
	host := r.Spec.HostsByRole(cluster.RoleRealServer)[0].Name
	// The spec for a host whose disk is a virtio disk and whose console is
	// the serial port the harness reads.
	spec, err := deriveSpec(r.Spec, bootDiskSpec)
	if err != nil {
		return err
	}
	broken, err := deriveSpec(spec, breakRealServerKernel)
	if err != nil {
		return err
	}
	art, err := r.build(ctx, spec, build.Roles...)
	if err != nil {
		return err
	}
	bad, err := r.build(ctx, broken, cluster.RoleRealServer)
	if err != nil {
		return err
	}
	first, next, badK := art.Kernels[cluster.RoleDirector], art.Kernels[cluster.RoleRealServer], bad.Kernels[cluster.RoleRealServer]

	c, err := bootDiskVM(ctx, r.Opts, spec, host, first)
	if err != nil {
		return err
	}
	defer c.Close()
	status := func(step string) (*statusView, error) {
		st, err := c.KernelStatus(ctx, spec, host)
		if err != nil {
			return nil, fmt.Errorf("kernel status %s: %w", step, err)
		}
		r.Logf("kernel status %s: running %s, default %q, next %q, installed %v", step, st.Running, st.Default, st.Next, st.Installed)
		return &statusView{st.Running, st.Default, st.Next, st.Installed}, nil
	}
	st, err := status("after the first boot")
	if err != nil {
		return err
	}
	if st.running != first.Release {
		return fmt.Errorf("the disk booted %s, want its first kernel %s", st.running, first.Release)
	}

	r.Logf("push --kernel --activate once: %s", next.Release)
	if _, err := c.PushKernel(ctx, spec, host, next.Dir, true); err != nil {
		return err
	}
	if st, err = status("after push --kernel --activate once"); err != nil {
		return err
	}
	if st.next != "lvsforge-"+next.Release {
		r.Errorf("after push --activate once the next boot is %q, want lvsforge-%s", st.next, next.Release)
	}
	// No default was ever saved on this disk: push pinned the running one.
	if !strings.Contains(st.def, first.Release) {
		r.Errorf("after push --activate once the saved default is %q, want the running %s's entry", st.def, first.Release)
	}
	if err := c.reboot(ctx, host, ""); err != nil {
		return err
	}
	if st, err = status("after the reboot"); err != nil {
		return err
	}
	if st.running != next.Release {
		return fmt.Errorf("after the reboot the host runs %s, want the activated %s", st.running, next.Release)
	}

	r.Logf("kernel confirm %s", next.Release)
	if _, err := c.ConfirmKernel(ctx, spec, host, next.Release); err != nil {
		return err
	}
	if st, err = status("after kernel confirm"); err != nil {
		return err
	}
	if st.def != "lvsforge-"+next.Release || st.next != "" {
		r.Errorf("after kernel confirm: default %q next %q, want lvsforge-%s and none", st.def, st.next, next.Release)
	}

	r.Logf("push --kernel --activate once: %s, built without the virtio disk driver", badK.Release)
	if _, err := c.PushKernel(ctx, broken, host, badK.Dir, true); err != nil {
		return err
	}
	if st, err = status("after pushing the broken kernel"); err != nil {
		return err
	}
	if st.next != "lvsforge-"+badK.Release || st.def != "lvsforge-"+next.Release {
		r.Errorf("after pushing the broken kernel: default %q next %q, want lvsforge-%s and lvsforge-%s", st.def, st.next, next.Release, badK.Release)
	}
	t := time.Now()
	if err := c.reboot(ctx, host, "Kernel panic"); err != nil {
		return err
	}
	r.Figure("panic to back on the confirmed kernel", time.Since(t).Seconds(), "s")
	if st, err = status("after the broken kernel's panic"); err != nil {
		return err
	}
	if st.running != next.Release || st.def != "lvsforge-"+next.Release || st.next != "" {
		r.Errorf("after the panic: running %s, default %q, next %q; want %s, its entry and none", st.running, st.def, st.next, next.Release)
	}
	installed := strings.Join(st.installed, " ")
	for _, rel := range []string{first.Release, next.Release, badK.Release} {
		if !strings.Contains(installed, rel) {
			r.Errorf("kernel status does not list %s as installed: %v", rel, st.installed)
		}
	}
	r.Figure("reboots", float64(c.Nodes[host].reboots), "")
	return nil
}

type statusView struct {
	running, def, next string
	installed          []string
}

// build builds (or takes from the cache) spec's kernels of roles with the
// vm fragment, as Up does.
func (r *Run) build(ctx context.Context, spec *cluster.Spec, roles ...string) (*build.SpecArtifacts, error) {
	cache, err := build.NewCache(r.Opts.CacheDir)
	if err != nil {
		return nil, err
	}
	b := &build.Builder{Cache: cache, SystemXZ: true, Status: func(step, msg string) {
		if step != "compile" && step != "extract" { // progress: build.log only
			r.Logf("build: %s", msg)
		}
	}}
	return b.BuildSpec(ctx, &build.Fetcher{Cache: cache}, spec, build.FetchOptions{Verifier: r.Opts.Verifier},
		build.SpecBuild{Roles: roles, VM: true})
}

// bootDiskVM boots host alone from a GRUB boot disk whose first kernel is
// first, with sshd on the management NIC; the VM may reboot.
func bootDiskVM(ctx context.Context, o Options, spec *cluster.Spec, host string, first *build.KernelArtifacts) (c *Cluster, err error) {
	if c, err = newCluster(spec, o, nil); err != nil {
		return nil, fmt.Errorf("start boot disk vm: %w", err)
	}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	log, err := os.Create(filepath.Join(o.Out, "bootdisk.log"))
	if err != nil {
		return c, fmt.Errorf("start boot disk vm: %w", err)
	}
	defer log.Close()
	gb := &guestimage.Builder{CacheDir: o.CacheDir, Log: log}
	gspec := guestimage.DefaultSpec()
	if c.base, err = gb.Root(ctx, gspec); err != nil {
		return c, err
	}
	if err := c.keys(); err != nil {
		return c, err
	}
	// GRUB gives the kernel its own command line: the harness settings
	// the cluster VMs get on theirs are in a file instead. The host has its
	// public NIC (a LAN of its own) for the rendered settings that name it.
	h := spec.Host(host)
	pubMAC, mgmtMAC := mac(1, 0), mac(1, 2)
	settings := fmt.Sprintf("lvs.hostname=%s lvs.ifname=%s,%s lvs.ip=%s,%s lvs.ifname=%s,%s lvs.ip=%s,10.0.2.15/24 lvs.sshkey=%s\n",
		host, pubMAC, h.Interfaces.Public, h.Interfaces.Public, h.Address, mgmtMAC, mgmtIface, mgmtIface,
		base64.StdEncoding.EncodeToString(ssh.MarshalAuthorizedKey(c.signer.PublicKey())))
	if c.LAN, err = vlan.New(c.dir, vlan.WithPcap(filepath.Join(o.Out, "bootdisk-lan.pcap"))); err != nil {
		return c, err
	}
	port, err := c.LAN.AddPort(host)
	if err != nil {
		return c, err
	}
	disk, err := gb.BootDisk(ctx, gspec, guestimage.BootDisk{
		Release: first.Release, Kernel: first.BzImage, Modules: first.Modules,
		Cmdline: fmt.Sprintf("%s panic=%d", spec.Kernel.Cmdline, spec.Kernel.PanicTimeout),
		Files:   []guestimage.File{{Path: "/etc/lvsforge/cmdline", Data: []byte(settings), Mode: 0o644}},
	})
	if err != nil {
		return c, err
	}
	overlay := filepath.Join(c.dir, host+".qcow2")
	if err := guestimage.Overlay(ctx, disk, overlay); err != nil {
		return c, err
	}
	accel := o.Accel
	if accel == qemu.AccelAuto {
		accel, _ = qemu.DetectAccel(ctx, "qemu-system-x86_64", first.BzImage)
	}
	n := &Node{Name: host, Host: h, MAC: pubMAC, mgmt: true, accel: accel, opts: []qemu.Option{
		qemu.WithNIC(port, pubMAC), qemu.WithDisk(overlay, "qcow2"), qemu.WithManagementMAC(mgmtMAC),
		qemu.WithMemory(guestMemoryMB), qemu.WithAllowReboot(),
	}}
	if err := c.start(ctx, n); err != nil {
		return c, err
	}
	c.Nodes[host] = n
	if err := c.writeKnownHosts(); err != nil {
		return c, err
	}
	bootCtx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if err := n.VM.ExpectString(bootCtx, guestimage.ReadyMarker); err != nil {
		return c, err
	}
	if _, err := c.Exec(bootCtx, host, "true"); err != nil {
		return c, fmt.Errorf("%w\n%s", err, n.diagnose(ctx))
	}
	return c, nil
}

// rollingUpgrade is `lvsforge upgrade` on a live cluster whose hosts boot
// through GRUB, as real ones do, with a request through the VIP every
// 100 ms the whole time.
var rollingUpgrade = &Scenario{
	Name: "rolling-upgrade",
	Doc: "every host boots through GRUB from its disk; with a request through the VIP every 100 ms, lvsforge upgrade moves each host to a newly built kernel " +
		"(another localVersion), one at a time: each real server drained first and undrained after, then the standby director and, after hb_standby moved the VIPs " +
		"to it, the active one; every host ends on its new kernel, confirmed, and no request fails. Then an upgrade of the real servers to a kernel that panics at " +
		"boot stops at the first, which is back on its kernel by itself, undrained and serving; the other hosts are untouched",
	Spec:      bootDiskSpec,
	BootDisks: true,
	Run:       runRollingUpgrade,
}

// nextLocalVersion is what the upgrade's kernels add to the spec's local
// versions: the same configuration, another release, so that ccache
// compiles little of them.
const nextLocalVersion = "-next"

func runRollingUpgrade(ctx context.Context, r *Run) error {
	next, err := deriveSpec(r.Spec, func(s *cluster.Spec) error {
		s.Kernel.Director.LocalVersion += nextLocalVersion
		s.Kernel.RealServer.LocalVersion += nextLocalVersion
		return nil
	})
	if err != nil {
		return err
	}
	broken, err := deriveSpec(next, breakRealServerKernel)
	if err != nil {
		return err
	}
	t := time.Now()
	art, err := r.build(ctx, next, build.Roles...)
	if err != nil {
		return err
	}
	bad, err := r.build(ctx, broken, cluster.RoleRealServer)
	if err != nil {
		return err
	}
	r.Figure("build of the new kernels", time.Since(t).Seconds(), "s")

	sv := checkedServices(r.Spec)[0]
	p, err := r.C.StartProbe(ctx, sv, requestTimeout)
	if err != nil {
		return err
	}
	defer p.Stop(context.WithoutCancel(ctx))
	r.Logf("upgrade to %s and %s", art.Kernels[cluster.RoleDirector].Release, art.Kernels[cluster.RoleRealServer].Release)
	var log strings.Builder
	t = time.Now()
	if _, err := r.C.Upgrade(ctx, next, art, action.UpgradeOptions{}, &log); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	r.Figure("upgrade of the cluster", time.Since(t).Seconds(), "s")
	for _, m := range upgradedRe.FindAllStringSubmatch(log.String(), -1) {
		if v, err := strconv.ParseFloat(m[2], 64); err == nil {
			r.Figure("upgrade of "+m[1], v, "s")
		}
	}
	if _, err := r.onKernels(ctx, next, art, "after the upgrade"); err != nil {
		return err
	}
	r.C.Spec = next

	// The panicking kernel: the first real server falls back by itself.
	first := next.HostsByRole(cluster.RoleRealServer)[0].Name
	r.Logf("upgrade the real servers to %s, which panics at boot", bad.Kernels[cluster.RoleRealServer].Release)
	to := &build.SpecArtifacts{Kernels: map[string]*build.KernelArtifacts{
		cluster.RoleDirector: art.Kernels[cluster.RoleDirector], cluster.RoleRealServer: bad.Kernels[cluster.RoleRealServer]}}
	t = time.Now()
	_, err = r.C.Upgrade(ctx, broken, to, action.UpgradeOptions{}, nil)
	r.Figure("upgrade to the panicking kernel, until it stopped", time.Since(t).Seconds(), "s")
	switch {
	case err == nil:
		r.Errorf("the upgrade to a kernel that panics at boot succeeded")
	case !errors.Is(err, action.ErrFellBack) || !strings.Contains(err.Error(), first+":"):
		r.Errorf("the upgrade to a kernel that panics at boot failed, but not as a fallback on %s: %v", first, err)
	default:
		r.Logf("the upgrade stopped: %s", firstLine(err.Error()))
	}
	installed, err := r.onKernels(ctx, next, art, "after the panicking kernel's upgrade")
	if err != nil {
		return err
	}
	for host, rels := range installed {
		if host != first && slices.Contains(rels, bad.Kernels[cluster.RoleRealServer].Release) {
			r.Errorf("%s has the panicking kernel installed: the upgrade did not stop at %s", host, first)
		}
	}
	r.Figure(first+" resets", float64(r.C.Nodes[first].reboots), "")
	lines, err := p.Stop(ctx)
	if err != nil {
		return err
	}
	if failed := r.probeFigures("", lines); failed > 0 || len(lines) == 0 {
		r.Errorf("%d of %d requests failed during the upgrades", failed, len(lines))
	}
	// The fallen-back real server serves again: the split is the spec's,
	// asked from a source address the probe did not use (SplitAddrs says
	// why: stop 17's CI saw 7 of 20 to rs1 from the probe's address).
	return checkSplit(ctx, r, sv, 20, netip.Addr{})
}

// onKernels checks that every host of spec runs its role's kernel of art,
// confirmed (its GRUB default, no one-time entry), and returns each host's
// installed kernels.
func (r *Run) onKernels(ctx context.Context, spec *cluster.Spec, art *build.SpecArtifacts, when string) (map[string][]string, error) {
	installed := map[string][]string{}
	for _, h := range spec.Hosts {
		k := art.Kernels[h.Role]
		st, err := r.C.KernelStatus(ctx, spec, h.Name)
		if err != nil {
			return nil, err
		}
		if st.Running != k.Release || st.Default != "lvsforge-"+k.Release || st.Next != "" {
			r.Errorf("%s %s: running %s, default %q, next %q; want %s, confirmed", h.Name, when, st.Running, st.Default, st.Next, k.Release)
		}
		installed[h.Name] = st.Installed
	}
	return installed, nil
}

// upgradedRe finds each host's time in the upgrade's log.
var upgradedRe = regexp.MustCompile(`(?m)^\s*(\S+): upgraded in ([0-9.]+) s$`)

// firstLine is s up to its first newline.
func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
