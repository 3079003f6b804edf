package vmtests

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lvsforge/lvsforge/action"
	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/vmtests/guestimage"
	"github.com/lvsforge/lvsforge/vmtests/initramfs"
	"github.com/lvsforge/lvsforge/vmtests/qemu"
	"github.com/lvsforge/lvsforge/vmtests/serialcable"
	"github.com/lvsforge/lvsforge/vmtests/vlan"
)

// Options say how a spec's cluster is brought up in VMs.
type Options struct {
	// CacheDir is lvsforge's cache: sources, kernels, ipvsadm, guest images.
	CacheDir string
	// Out receives every console log, lan.pcap, hb.pcap and the build log.
	Out string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Accel forces an accelerator; the default probes KVM and falls back to TCG.
	Accel qemu.Accel
	// Verifier checks kernel.org sources (see build.NewVerifier).
	Verifier build.Verifier
	// BuildStatus and FetchProgress, when set, receive the builds' steps
	// and progress and the downloads' (build.Builder.Status,
	// build.Fetcher.Progress), so that `lvsforge vmtest` shows them as
	// `lvsforge build` does; without BuildStatus, Log gets the steps only.
	BuildStatus   func(step, msg string)
	FetchProgress func(build.Progress)
	// BootDisks boots every host through the BIOS and GRUB from a disk of
	// its role, as a real host boots, instead of QEMU's -kernel; a guest
	// that resets (a reboot, a kernel's panic=N) is started again (see
	// supervise). The spec must give GRUB's entries the serial console and
	// the disk's root (bootDiskSpec).
	BootDisks bool
}

// Node is one VM of a cluster: a host of the spec, or the client.
type Node struct {
	Name string
	// Host is the spec's host; nil for the client.
	Host *cluster.Host
	VM   *qemu.VM
	// MAC is the NIC on the cluster LAN.
	MAC string
	// SSHPort is the loopback port forwarded to the guest's sshd (hosts only).
	SSHPort int

	mu  sync.Mutex
	ssh *ssh.Client

	// What start needs to boot the node again after a power-off.
	accel   qemu.Accel
	opts    []qemu.Option
	mgmt    bool // has the management NIC with sshd forwarded
	boots   int  // QEMU processes started
	reboots int  // restarts by Cluster.reboot, supervise and the guest's own resets
	// supervised nodes are started again when their guest resets (a
	// cluster on boot disks); stopped says the harness ended the VM (a
	// power-off, Close), which must stay down. stopped is under mu.
	supervised, stopped bool
	// dev6, addr6 and gw6 are the IPv6 interface, address and gateway
	// setIPv6 gave it, which its next boots get too (net6Args).
	dev6, addr6, gw6 string
}

// Cluster is a spec's hosts booted as VMs from lvsforge's own kernels, with
// a client VM that is also the site's router, on a Go switch (lan.pcap),
// the directors' heartbeat link on a second switch (hb.pcap) and their
// null-modem cable, if the spec has them.
type Cluster struct {
	Spec   *cluster.Spec
	Art    *build.SpecArtifacts
	LAN    *vlan.Switch
	HB     *vlan.Switch // nil when no director has a heartbeat interface
	Cable  *serialcable.Cable
	Nodes  map[string]*Node // hosts by name
	Client *Node
	// Router is the site's router when it is a VM of its own, running FRR
	// (a spec whose directors announce the VIPs over BGP; see
	// RoutedClient); nil when the client is the router.
	Router *Node
	// Started is when Up began; Timings records the phases of Up.
	Started time.Time
	Timings map[string]time.Duration

	opts    Options
	plan    *netPlan
	dir     string // sockets, overlays, keys: short, for unix socket paths
	hostKey ssh.PublicKey
	signer  ssh.Signer
	keyFile string
	known   string
	base    string // the guest image's base root
	closed  bool
	// splits counts the split checks: the next one's source address is
	// SplitAddrs[splits % len(SplitAddrs)] (splitSource).
	splits atomic.Int64
}

// Guest paths of the harness files the image carries besides the packages.
const (
	guestBusybox = "/usr/local/lib/lvsforge/busybox"
	guestTestSvc = "/usr/local/sbin/lvsforge-testsvc"
)

const (
	// guestMemoryMB fits systemd, heartbeat (which locks itself in memory)
	// and ldirectord's perl.
	guestMemoryMB = 512
	mgmtIface     = "lvsmgmt"
	// bootTimeout bounds a boot under TCG on a loaded 2-core machine, of
	// one VM or of a whole cluster at once (about 25 s idle); it only keeps
	// a broken guest from hanging the run.
	bootTimeout = 4 * time.Minute
	// vmLifetime kills any VM left running this long, whatever happens.
	vmLifetime = 90 * time.Minute
)

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// newCluster is a cluster of s with nothing started yet but its own
// temporary directory (sockets, overlays, keys), which Close removes.
func newCluster(s *cluster.Spec, o Options, plan *netPlan) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "lvsvm")
	if err != nil {
		return nil, err
	}
	// The VMs boot without IPv6 legs and host addresses: Converge's
	// setIPv6 adds them, on a new cluster as on a running one.
	if plan != nil {
		p := *plan
		p.Legs6 = nil
		plan = &p
	}
	return &Cluster{Spec: s, Nodes: map[string]*Node{}, opts: o, plan: plan, dir: dir, Started: time.Now(), Timings: map[string]time.Duration{}}, nil
}

// Up builds (or takes from the cache) the role kernels, ipvsadm and the
// guest image, and boots every host of s and the client. It returns once
// every host's sshd answers and the client's shell is ready; nothing of
// lvsforge's is on the hosts yet (see Push). On error everything started is
// torn down.
func Up(ctx context.Context, s *cluster.Spec, o Options) (c *Cluster, err error) {
	if o.Out == "" {
		return nil, errors.New("start cluster: no output directory")
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	plan, err := planNetwork(s)
	if err != nil {
		return nil, err
	}
	if c, err = newCluster(s, o, plan); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()

	t := time.Now()
	buildLog, err := os.Create(filepath.Join(o.Out, "build.log"))
	if err != nil {
		return c, fmt.Errorf("start cluster: %w", err)
	}
	defer buildLog.Close()
	cache, err := build.NewCache(o.CacheDir)
	if err != nil {
		return c, err
	}
	b := &build.Builder{Cache: cache, SystemXZ: true, Status: func(step, msg string) {
		fmt.Fprintln(buildLog, msg)
		if o.BuildStatus != nil {
			o.BuildStatus(step, msg)
		} else if step != "compile" && step != "extract" { // progress: build.log only
			o.logf("build: %s", msg)
		}
	}}
	f := &build.Fetcher{Cache: cache, Progress: o.FetchProgress}
	c.Art, err = b.BuildSpec(ctx, f, s, build.FetchOptions{Verifier: o.Verifier},
		build.SpecBuild{Roles: build.Roles, VM: true, Ipvsadm: true, Static: true})
	if err != nil {
		return c, err
	}
	c.Timings["build"] = time.Since(t)

	t = time.Now()
	imgs, err := c.images(ctx, buildLog)
	if err != nil {
		return c, err
	}
	c.Timings["image"] = time.Since(t)
	if err := c.keys(); err != nil {
		return c, err
	}

	t = time.Now()
	if c.LAN, err = vlan.New(c.dir, vlan.WithPcap(filepath.Join(o.Out, "lan.pcap"))); err != nil {
		return c, err
	}
	if c.needsHBLink() {
		hbDir := filepath.Join(c.dir, "hb")
		if err := os.Mkdir(hbDir, 0o755); err != nil {
			return c, fmt.Errorf("start cluster: %w", err)
		}
		if c.HB, err = vlan.New(hbDir, vlan.WithPcap(filepath.Join(o.Out, "hb.pcap"))); err != nil {
			return c, err
		}
	}
	if dev := c.serialDevice(); dev >= 0 {
		if c.Cable, err = serialcable.New(c.dir, "hb"); err != nil {
			return c, err
		}
	}
	if err := c.startAll(ctx, imgs); err != nil {
		return c, err
	}
	c.Timings["boot"] = time.Since(t)
	if err := c.writeKnownHosts(); err != nil {
		return c, err
	}
	return c, nil
}

// images builds the guest images the hosts boot, by init system: the
// Debian base (systemd), and for hosts at `init: sysv` the same with
// sysvinit, each plus both role kernels' modules, a static busybox and the
// real servers' test services.
func (c *Cluster) images(ctx context.Context, log io.Writer) (map[string]string, error) {
	gb := &guestimage.Builder{CacheDir: c.opts.CacheDir, Log: log}
	spec := guestimage.DefaultSpec()
	if !gb.HasRoot(spec) {
		c.opts.logf("image: debootstrap of Debian %s with %s (once; then cached)", spec.Suite, strings.Join(spec.Packages, " "))
	}
	// The systemd base always: every image of it presents its host key.
	base, err := gb.Root(ctx, spec)
	if err != nil {
		return nil, err
	}
	c.base = base
	if c.opts.BootDisks { // the hosts boot disks made of the base (bootDisks)
		return nil, nil
	}
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read static busybox (apt-get install busybox-static): %w", err)
	}
	extra := guestimage.Extra{Files: []guestimage.File{
		{Path: guestBusybox, Data: bb, Mode: 0o755},
		{Path: guestTestSvc, Data: testSvcScript, Mode: 0o755},
	}}
	for _, role := range build.Roles {
		if m := c.Art.Kernels[role].Modules; m != "" {
			extra.Modules = append(extra.Modules, m)
		}
	}
	var inits []string
	for _, h := range c.Spec.Hosts {
		inits = append(inits, guestInit(&h))
	}
	if c.plan.Router.IsValid() {
		inits = append(inits, guestimage.InitSystemd) // the router's
	}
	imgs := map[string]string{}
	for _, init := range inits {
		s := spec
		s.Init = init
		if imgs[s.Init] != "" {
			continue
		}
		if !gb.HasRoot(s) {
			c.opts.logf("image: the base with sysvinit-core instead of systemd-sysv, for hosts at init: sysv (once; then cached)")
		}
		if imgs[s.Init], err = gb.Image(ctx, s, extra); err != nil {
			return nil, err
		}
	}
	return imgs, nil
}

// guestInit is the init system of the image host h boots: the one its
// spec says, so that what push installs for that init system (units, or
// init.d scripts and their rc links) is what boots.
func guestInit(h *cluster.Host) string {
	if h.Init == cluster.InitSysV {
		return guestimage.InitSysV
	}
	return guestimage.InitSystemd
}

// busyboxPath is Debian busybox-static's binary: the client's whole
// userland, and the real servers' HTTP and TCP test services.
const busyboxPath = "/bin/busybox"

// keys loads the harness's SSH key (root's authorized key in every VM) and
// reads the host key every VM of the image presents.
func (c *Cluster) keys() error {
	var err error
	if c.signer, c.keyFile, err = harnessKey(c.opts.CacheDir); err != nil {
		return err
	}
	hk, err := guestimage.HostKey(c.base)
	if err != nil {
		return err
	}
	if c.hostKey, _, _, _, err = ssh.ParseAuthorizedKey(hk); err != nil {
		return fmt.Errorf("parse image host key: %w", err)
	}
	return nil
}

// writeKnownHosts lists every VM's forwarded port with the image's host
// key, so push checks host keys strictly, as against real hosts.
func (c *Cluster) writeKnownHosts() error {
	var b strings.Builder
	for _, h := range c.Spec.Hosts {
		if n := c.Nodes[h.Name]; n != nil {
			b.WriteString("[127.0.0.1]:" + strconv.Itoa(n.SSHPort) + " " + string(ssh.MarshalAuthorizedKey(c.hostKey)))
		}
	}
	c.known = filepath.Join(c.dir, "known_hosts")
	if err := os.WriteFile(c.known, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	return nil
}

func (c *Cluster) needsHBLink() bool {
	for _, d := range c.Spec.HostsByRole(cluster.RoleDirector) {
		if d.Interfaces.Heartbeat != "" {
			return true
		}
	}
	return false
}

// serialDevice is N of the heartbeat's serial medium /dev/ttySN, or -1.
func (c *Cluster) serialDevice() int {
	if c.Spec.HA.Backend != cluster.BackendHeartbeat {
		return -1
	}
	for _, m := range c.Spec.HA.Media {
		if m.Type == cluster.MediumSerial {
			if n, err := strconv.Atoi(strings.TrimPrefix(m.Device, "/dev/ttyS")); err == nil && n >= 0 && n < 4 {
				return n
			}
		}
	}
	return -1
}

// guestClock keeps a guest's clock on time whatever its boot's TSC
// calibration found. Under TCG the kernel calibrates the TSC against the
// PIT in a busy loop; on a loaded machine the loop is preempted, the PIT
// value deviates from the HPET's, and the kernel believes the PIT: the
// ecmp scenario's runs had a director at 970 MHz and another at 48 MHz
// for a 2595 MHz TSC, whose clocks then ran 2.7 and 55 times too fast
// (BIRD's hold timer expired 7 s after its session came up, with
// keepalives every 3 s; systemd's start timeouts struck ssh.service).
// The HPET counts at QEMU's own, right, frequency.
const guestClock = "clocksource=hpet"

// mac is a stable MAC per VM: 52:54:00 (QEMU's), then the VM's index.
func mac(i, nic int) string { return fmt.Sprintf("52:54:00:%02x:%02x:%02x", nic, i/256, i%256) }

// startAll starts every VM, each from the image of its init system (see
// images), then waits for all of them.
func (c *Cluster) startAll(ctx context.Context, imgs map[string]string) error {
	director := c.Art.Kernels[cluster.RoleDirector]
	accel := c.opts.Accel
	if accel == qemu.AccelAuto {
		var why string
		accel, why = qemu.DetectAccel(ctx, "qemu-system-x86_64", director.BzImage)
		c.opts.logf("qemu: %s (%s)", accel, why)
	}
	serialN := c.serialDevice()
	directors := c.Spec.HostsByRole(cluster.RoleDirector)
	var hosts []hostBoot
	for i := range c.Spec.Hosts {
		h := &c.Spec.Hosts[i]
		n := &Node{Name: h.Name, Host: h, MAC: mac(i+1, 0)}
		port, err := c.LAN.AddPort(h.Name)
		if err != nil {
			return err
		}
		opts := []qemu.Option{qemu.WithNIC(port, n.MAC)}
		args := []string{"lvs.ifname=" + n.MAC + "," + h.Interfaces.Public, "lvs.ip=" + h.Interfaces.Public + "," + h.Address}
		if gw := c.plan.Gateway[h.Name]; gw.IsValid() {
			args = append(args, "lvs.gw="+gw.String())
		}
		if h.Role == cluster.RoleDirector && h.Interfaces.Heartbeat != "" {
			hbPort, err := c.HB.AddPort(h.Name)
			if err != nil {
				return err
			}
			hbMAC := mac(i+1, 1)
			opts = append(opts, qemu.WithNIC(hbPort, hbMAC))
			args = append(args, "lvs.ifname="+hbMAC+","+h.Interfaces.Heartbeat)
			if h.Interfaces.HeartbeatAddress != "" {
				args = append(args, "lvs.ip="+h.Interfaces.Heartbeat+","+h.Interfaces.HeartbeatAddress)
			}
		}
		if serialN >= 0 && h.Role == cluster.RoleDirector {
			end := c.Cable.EndA()
			if h == directors[1] {
				end = c.Cable.EndB()
			}
			console := 0
			if serialN == 0 {
				console = 1
			}
			opts = append(opts, qemu.WithSerialSocketAt(serialN, end), qemu.WithConsolePort(console))
		}
		hosts = append(hosts, hostBoot{n, i + 1, args, opts})
	}
	var disks map[string]string // by role, for a cluster on boot disks
	if c.opts.BootDisks {
		if c.plan.Router.IsValid() {
			return errors.New("start cluster: a router VM on boot disks is not supported")
		}
		var err error
		if disks, err = c.bootDisks(ctx, hosts); err != nil {
			return err
		}
	}
	for _, hb := range hosts {
		h := hb.n.Host
		image, kernel := imgs[guestInit(h)], c.Art.Kernels[h.Role].BzImage
		if disks != nil {
			image, kernel = disks[h.Role], ""
		}
		if err := c.bootDebian(ctx, hb.n, hb.i, image, kernel, hb.args, hb.opts, accel); err != nil {
			return err
		}
		c.Nodes[h.Name] = hb.n
	}
	if c.plan.Router.IsValid() {
		// The router boots the directors' kernel (a bgp spec's has policy
		// routing; the ecmp scenario's, multipath routes too) from the
		// systemd image, which has FRR.
		i := len(c.Spec.Hosts) + 1
		c.Router = &Node{Name: RouterName, MAC: mac(i, 0)}
		port, err := c.LAN.AddPort(RouterName)
		if err != nil {
			return err
		}
		if err := c.bootDebian(ctx, c.Router, i, imgs[guestimage.InitSystemd], director.BzImage, c.plan.routerArgs(c.Router.MAC),
			[]qemu.Option{qemu.WithNIC(port, c.Router.MAC)}, accel); err != nil {
			return err
		}
	}

	initrd, err := clientInitrd(c.opts.CacheDir)
	if err != nil {
		return err
	}
	port, err := c.LAN.AddPort("client")
	if err != nil {
		return err
	}
	c.Client = &Node{Name: "client", MAC: mac(0, 0), accel: accel, opts: []qemu.Option{
		qemu.WithNIC(port, mac(0, 0)), qemu.WithKernel(director.BzImage),
		qemu.WithInitrd(initrd), qemu.WithAppend("acpi=noirq", guestClock, "lvs.hostname=client")}}
	if err := c.start(ctx, c.Client); err != nil {
		return err
	}

	// Wait for all: a host is up when its console service runs (after
	// multi-user.target, so sshd is up) and an SSH login works; the
	// router, once FRR runs with its configuration.
	bootCtx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	debian := slices.Collect(maps.Values(c.Nodes))
	if c.Router != nil {
		debian = append(debian, c.Router)
	}
	errs := make(chan error, len(debian)+1)
	for _, n := range debian {
		go func() {
			if err := n.VM.ExpectString(bootCtx, guestimage.ReadyMarker); err != nil {
				errs <- err
				return
			}
			if _, err := c.Exec(bootCtx, n.Name, "true"); err != nil {
				errs <- fmt.Errorf("%w\n%s", err, n.diagnose(ctx))
				return
			}
			if n == c.Router {
				if _, err := c.Exec(bootCtx, n.Name, routerSetup(c.Spec)); err != nil {
					errs <- fmt.Errorf("set the router up: %w", err)
					return
				}
			}
			errs <- nil
		}()
	}
	go func() {
		if err := c.Client.VM.ExpectString(bootCtx, initramfs.ReadyMarker); err != nil {
			errs <- err
			return
		}
		for _, cmd := range c.plan.clientSetup(c.Spec, "eth0") {
			if _, err := c.ClientRun(bootCtx, cmd); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	var all []error
	for range len(debian) + 1 {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// hostBoot is what starting a host's VM needs: the node, its index, the
// settings of its NICs on the cluster's switches (args) and the NICs (opts).
type hostBoot struct {
	n    *Node
	i    int
	args []string
	opts []qemu.Option
}

// guestArgs are n's settings for lvsforge-cmdline (initramfs.CmdlineScript):
// its NICs' (args), its name, the harness's key and the management NIC.
func (c *Cluster) guestArgs(n *Node, i int, args []string) []string {
	all := append([]string{"lvs.hostname=" + n.Name,
		"lvs.sshkey=" + base64.StdEncoding.EncodeToString(ssh.MarshalAuthorizedKey(c.signer.PublicKey()))}, args...)
	return append(all, "lvs.ifname="+mac(i, 2)+","+mgmtIface, "lvs.ip="+mgmtIface+",10.0.2.15/24")
}

// bootDebian starts n, the i-th VM, from an overlay of image, its NICs on
// the cluster's switches (opts) and the management NIC with sshd
// forwarded. With kernel, QEMU boots it with the settings (guestArgs of
// args) on its command line; without, the image is a boot disk that has
// them (bootDisks), and n is supervised.
func (c *Cluster) bootDebian(ctx context.Context, n *Node, i int, image, kernel string, args []string, opts []qemu.Option, accel qemu.Accel) error {
	overlay := filepath.Join(c.dir, n.Name+".qcow2")
	if err := guestimage.Overlay(ctx, image, overlay); err != nil {
		return err
	}
	n.mgmt, n.accel = true, accel
	n.opts = append(opts, qemu.WithManagementMAC(mac(i, 2)), qemu.WithDisk(overlay, "qcow2"), qemu.WithMemory(guestMemoryMB))
	if kernel == "" {
		n.supervised = true
		return c.start(ctx, n)
	}
	// acpi=noirq: PCI interrupts from the BIOS's table, not the ACPI
	// interpreter, which takes a second of each emulated boot.
	n.opts = append(n.opts, qemu.WithKernel(kernel),
		qemu.WithAppend(append([]string{"root=/dev/vda", "rw", "acpi=noirq", guestClock}, c.guestArgs(n, i, args)...)...))
	return c.start(ctx, n)
}

// bootDisks makes a boot disk per role (guestimage.BootDisk) whose GRUB
// boots the role's kernel with the spec's command line and panic=N, as
// lvsforge's own GRUB entries do, and which carries the harness's files
// and every host's settings, each in a file named for its public NIC's MAC.
func (c *Cluster) bootDisks(ctx context.Context, hosts []hostBoot) (map[string]string, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read static busybox (apt-get install busybox-static): %w", err)
	}
	files := []guestimage.File{
		{Path: guestBusybox, Data: bb, Mode: 0o755},
		{Path: guestTestSvc, Data: testSvcScript, Mode: 0o755},
	}
	for _, hb := range hosts {
		if guestInit(hb.n.Host) != guestimage.InitSystemd {
			return nil, fmt.Errorf("start cluster: %s: boot disks are made for systemd hosts only", hb.n.Name)
		}
		files = append(files, guestimage.File{Path: "/etc/lvsforge/cmdline.d/" + hb.n.MAC,
			Data: []byte(strings.Join(c.guestArgs(hb.n, hb.i, hb.args), " ") + "\n"), Mode: 0o644})
	}
	log, err := os.Create(filepath.Join(c.opts.Out, "bootdisk.log"))
	if err != nil {
		return nil, fmt.Errorf("make boot disks: %w", err)
	}
	defer log.Close()
	gb := &guestimage.Builder{CacheDir: c.opts.CacheDir, Log: log}
	disks := map[string]string{}
	for _, role := range build.Roles {
		k := c.Art.Kernels[role]
		if disks[role], err = gb.BootDisk(ctx, guestimage.DefaultSpec(), guestimage.BootDisk{
			Release: k.Release, Kernel: k.BzImage, Modules: k.Modules, Files: files,
			Cmdline: strings.TrimSpace(fmt.Sprintf("%s panic=%d", c.Spec.Kernel.Cmdline, c.Spec.Kernel.PanicTimeout)),
		}); err != nil {
			return nil, err
		}
	}
	return disks, nil
}

// supervise starts n's QEMU again when its guest resets, as a real host
// comes back from a reboot or a kernel's panic=N: on the same disk, ports
// and cable, with the same sshd port. QEMU runs with -no-reboot, so a
// reset ends it and this is a cold start: under TCG a warm reset left the
// next boot 20 to 140 s between GRUB and the kernel (see reboot).
func (c *Cluster) supervise(ctx context.Context, n *Node, vm *qemu.VM) {
	<-vm.Done()
	n.mu.Lock()
	stopped := n.stopped
	n.mu.Unlock()
	if stopped || ctx.Err() != nil {
		return
	}
	n.dropSSH()
	n.reboots++
	c.opts.logf("%s: its guest reset: QEMU started again", n.Name)
	if err := c.start(ctx, n); err != nil {
		c.opts.logf("%s: start again after its reset: %v", n.Name, err)
	}
}

// diagnose asks a host over its console (which needs no network) for the
// state of its network and sshd, for the error of a host SSH cannot reach.
func (n *Node) diagnose(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, _, err := n.VM.Run(ctx, "ip -o addr; ip route; ss -tan; systemctl --no-pager status ssh | tail -5")
	if err != nil {
		return fmt.Sprintf("%s: no answer on the console either: %v", n.Name, err)
	}
	return n.Name + " says on its console:\n\t" + strings.ReplaceAll(out, "\n", "\n\t")
}

// start boots n: the first time, or again after a power-off, from the
// same disk, on the same switch ports and serial cable, with sshd on the
// same loopback port (so known_hosts stays true); each boot's console has
// its own log.
func (c *Cluster) start(ctx context.Context, n *Node) error {
	log := filepath.Join(c.opts.Out, n.Name+".console")
	if n.boots > 0 {
		log = filepath.Join(c.opts.Out, fmt.Sprintf("%s.boot%d.console", n.Name, n.boots+1))
	}
	all := append([]qemu.Option{
		qemu.WithName(n.Name),
		qemu.WithAccel(n.accel),
		qemu.WithConsoleLog(log),
		qemu.WithDir(c.dir),
		qemu.WithTimeout(vmLifetime),
	}, n.opts...)
	if args := n.net6Args(); len(args) > 0 && !n.supervised { // GRUB gives a disk's kernel its command line
		all = append(all, qemu.WithAppend(args...))
	}
	if n.mgmt {
		all = append(all, qemu.WithHostForward(n.SSHPort, 22))
	}
	vm, err := qemu.Start(ctx, all...)
	if err != nil {
		return err
	}
	n.VM = vm
	n.boots++
	if n.mgmt {
		n.SSHPort, _ = vm.HostPort(22)
	}
	if n.supervised {
		go c.supervise(ctx, n, vm)
	}
	return nil
}

// clientInitrd is the busybox guest the client and router runs, cached by
// content.
func clientInitrd(cacheDir string) (string, error) {
	a, err := initramfs.Busybox(initramfs.BusyboxOptions{Busybox: busyboxPath})
	if err != nil {
		return "", err
	}
	return cacheFile(cacheDir, "initramfs", a.Bytes(), ".cpio")
}

// Close powers every VM off and removes the sockets, overlays and keys;
// consoles and pcaps stay in Options.Out.
func (c *Cluster) Close() error {
	if c == nil || c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	for _, n := range c.allNodes() {
		n.mu.Lock()
		n.stopped = true
		if n.ssh != nil {
			n.ssh.Close()
		}
		n.mu.Unlock()
		if n.VM != nil {
			n.VM.Close()
		}
	}
	for _, sw := range []*vlan.Switch{c.LAN, c.HB} {
		if sw != nil {
			if err := sw.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.Cable != nil {
		c.Cable.Close()
	}
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
	return errors.Join(errs...)
}

func (c *Cluster) allNodes() []*Node {
	var out []*Node
	for _, h := range c.Spec.Hosts {
		if n := c.Nodes[h.Name]; n != nil {
			out = append(out, n)
		}
	}
	if c.Router != nil {
		out = append(out, c.Router)
	}
	if c.Client != nil {
		out = append(out, c.Client)
	}
	return out
}

// node is the VM Exec reaches by name: a host's, or the router's.
func (c *Cluster) node(name string) *Node {
	if c.Router != nil && name == c.Router.Name {
		return c.Router
	}
	return c.Nodes[name]
}

// ConsoleTails returns the last lines of every VM's console, for failure
// reports.
func (c *Cluster) ConsoleTails(n int) string {
	var b strings.Builder
	for _, node := range c.allNodes() {
		if node.VM == nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s console (%s):\n\t%s\n", node.Name, filepath.Join(c.opts.Out, node.Name+".console"),
			strings.Join(node.VM.ConsoleTail(n), "\n\t"))
	}
	return b.String()
}

// Env is the action environment that reaches the cluster's VMs as
// `lvsforge --vm` does, each host through its forwarded sshd with the
// harness's key and strict host key checking, for spec (the cluster's, or
// a variant of it with the same hosts) and the named hosts (all when
// none). The scenarios run lvsforge's actions (push, status, drain,
// upgrade) on it, exactly as the CLI runs them on real hosts.
func (c *Cluster) Env(spec *cluster.Spec, only ...string) (*action.Env, error) {
	for _, n := range only {
		if c.Nodes[n] == nil {
			return nil, fmt.Errorf("host %s is not a VM of this cluster", n)
		}
	}
	return &action.Env{
		Spec: spec,
		Only: only,
		Target: func(h *cluster.Host) (deploy.Target, error) {
			n := c.Nodes[h.Name]
			if n == nil {
				return deploy.Target{}, fmt.Errorf("host %s is not a VM of this cluster", h.Name)
			}
			return deploy.Target{Name: h.Name, Host: "127.0.0.1", Port: n.SSHPort, User: "root", KeyFiles: []string{c.keyFile}}, nil
		},
		Deploy: deploy.Options{
			// push's default connect timeout is for real hosts; five guests
			// on two emulated cores each run an SSH handshake at once (see
			// sshTimeout).
			Dial: deploy.DialOptions{HostKeys: &deploy.HostKeys{Policy: deploy.HostKeyStrict, Files: []string{c.known}}, NoAgent: true,
				ConnectTimeout: sshTimeout},
		},
	}, nil
}

// Push installs spec's rendered files and the ipvsadm lvsforge built on
// every host: `lvsforge push --vm`.
func (c *Cluster) Push(ctx context.Context, spec *cluster.Spec) (*deploy.Report, error) {
	env, err := c.Env(spec)
	if err != nil {
		return nil, err
	}
	if env.Ipvsadm, err = install.OpenArtifact(c.Art.Ipvsadm.Binary); err != nil {
		return nil, err
	}
	return c.push(ctx, env, action.RunPush)
}

// PushKernel is `lvsforge push --kernel [--activate once]` to one host:
// its rendered files and the kernel build in dir.
func (c *Cluster) PushKernel(ctx context.Context, spec *cluster.Spec, host, dir string, once bool) (*deploy.Report, error) {
	env, err := c.Env(spec, host)
	if err != nil {
		return nil, err
	}
	k, err := deploy.LoadKernel(dir)
	if err != nil {
		return nil, err
	}
	k.ActivateOnce = once
	env.Kernels = map[string]*deploy.Kernel{spec.Host(host).Role: k}
	return c.push(ctx, env, action.RunPush)
}

// Upgrade is `lvsforge upgrade --vm` of spec to the kernel builds art
// (one per role) and the ipvsadm of the cluster's own build. log, when
// set, receives the action's lines too (push.log has them all).
func (c *Cluster) Upgrade(ctx context.Context, spec *cluster.Spec, art *build.SpecArtifacts, o action.UpgradeOptions, log io.Writer) (*deploy.Report, error) {
	env, err := c.Env(spec)
	if err != nil {
		return nil, err
	}
	env.Kernels = map[string]*deploy.Kernel{}
	for role, k := range art.Kernels {
		if env.Kernels[role], err = deploy.LoadKernel(k.Dir); err != nil {
			return nil, err
		}
	}
	if env.Ipvsadm, err = install.OpenArtifact(c.Art.Ipvsadm.Binary); err != nil {
		return nil, err
	}
	return c.push(ctx, env, func(ctx context.Context, env *action.Env) (*deploy.Report, error) {
		if log != nil {
			env.Log = io.MultiWriter(env.Log, log)
		}
		return action.RunUpgrade(ctx, env, o)
	})
}

// ConfirmKernel is `lvsforge kernel confirm --release RELEASE` on one host.
func (c *Cluster) ConfirmKernel(ctx context.Context, spec *cluster.Spec, host, release string) (*deploy.Report, error) {
	env, err := c.Env(spec, host)
	if err != nil {
		return nil, err
	}
	env.Kernels = map[string]*deploy.Kernel{spec.Host(host).Role: {Release: release}}
	return c.push(ctx, env, action.RunKernelConfirm)
}

// KernelStatus is `lvsforge kernel status` of one host.
func (c *Cluster) KernelStatus(ctx context.Context, spec *cluster.Spec, host string) (*deploy.KernelStatus, error) {
	env, err := c.Env(spec, host)
	if err != nil {
		return nil, err
	}
	st, err := action.KernelStatus(ctx, env)
	if err != nil {
		return nil, err
	}
	return st[0], st[0].Err()
}

// push runs an action that pushes (push, kernel confirm) on env, logging
// its plans and summary to push.log; a failure carries the failed hosts'
// journals.
func (c *Cluster) push(ctx context.Context, env *action.Env, run func(context.Context, *action.Env) (*deploy.Report, error)) (*deploy.Report, error) {
	out, err := os.OpenFile(filepath.Join(c.opts.Out, "push.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	defer out.Close()
	env.Deploy.Out, env.Log = out, out
	rep, err := run(ctx, env)
	if rep != nil {
		rep.WriteTable(out)
		if err == nil {
			err = rep.Err()
		}
	}
	if err != nil {
		var failed []string
		if rep != nil {
			failed = rep.Failed()
		}
		return rep, fmt.Errorf("%w\n%s", err, c.journalTails(ctx, failed, 40))
	}
	return rep, nil
}

// journalTails is the last n lines of each named host's journal (the
// kernel's log on a sysvinit host, which has no journal), for the error of
// a push that failed there: "Job for X failed" says no more, and the
// journal goes with the VM when the failed scenario closes the cluster.
func (c *Cluster) journalTails(ctx context.Context, hosts []string, n int) string {
	var b strings.Builder
	for _, h := range hosts {
		out, err := c.Exec(ctx, h, fmt.Sprintf("if [ -d /run/systemd/system ]; then journalctl --no-pager -b -n %d -o short-monotonic; else dmesg | tail -n %d; fi", n, n))
		if err != nil {
			out += "\n" + err.Error()
		}
		fmt.Fprintf(&b, "--- %s journal:\n\t%s\n", h, strings.ReplaceAll(strings.TrimSpace(out), "\n", "\n\t"))
	}
	return b.String()
}

// KeyFile and KnownHosts are the harness's SSH identity and known_hosts,
// for `lvsforge vm ssh`.
func (c *Cluster) KeyFile() string    { return c.keyFile }
func (c *Cluster) KnownHosts() string { return c.known }

// ClientRun runs a shell command line on the client's console.
func (c *Cluster) ClientRun(ctx context.Context, cmd string) (string, error) {
	out, st, err := c.Client.VM.Run(ctx, cmd)
	if err != nil {
		return out, err
	}
	if st != 0 {
		return out, fmt.Errorf("client: %q exited %d: %s", cmd, st, lastLines(out, 10))
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// setIPv6 gives each host of spec its address6 and gateway6, and the
// client a leg on each of their subnets, on the running VMs and for their
// next boots: a dual-stack spec runs on a cluster booted for an IPv4 one,
// as a site adds IPv6 to hosts it has. What an earlier spec added and this
// one has not is taken away.
func (c *Cluster) setIPv6(ctx context.Context, spec *cluster.Spec, plan *netPlan) error {
	if c.plan == nil {
		return fmt.Errorf("set IPv6 addresses: this cluster has no network plan (a single VM)")
	}
	for i := range spec.Hosts {
		h := &spec.Hosts[i]
		n := c.Nodes[h.Name]
		dev := "" // the interface of its IPv6 address: none without one
		if h.Address6 != "" {
			dev = h.Interfaces.Public
		}
		if n.dev6 == dev && n.addr6 == h.Address6 && n.gw6 == h.Gateway6 {
			continue
		}
		var cmds []string
		if n.addr6 != "" {
			cmds = append(cmds, "ip addr del "+n.addr6+" dev "+n.dev6)
		}
		if n.gw6 != "" {
			cmds = append(cmds, "ip -6 route del default")
		}
		if h.Address6 != "" {
			cmds = append(cmds, "ip addr add "+h.Address6+" dev "+dev+" nodad")
		}
		if h.Gateway6 != "" {
			cmds = append(cmds, "ip -6 route replace default via "+h.Gateway6)
		}
		if _, err := c.Exec(ctx, h.Name, strings.Join(cmds, "; ")+"; true"); err != nil {
			return fmt.Errorf("set %s's IPv6 address: %w", h.Name, err)
		}
		n.dev6, n.addr6, n.gw6 = dev, h.Address6, h.Gateway6
	}
	if slices.Equal(plan.Legs6, c.plan.Legs6) {
		return nil
	}
	// busybox's ip has no nodad: the client skips duplicate address
	// detection for every address instead.
	cmds := []string{"echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad"}
	for _, l := range c.plan.Legs6 {
		cmds = append(cmds, "ip addr del "+l.String()+" dev eth0")
	}
	for _, l := range plan.Legs6 {
		cmds = append(cmds, "ip addr add "+l.String()+" dev eth0")
	}
	if _, err := c.ClientRun(ctx, strings.Join(cmds, "; ")+"; true"); err != nil {
		return fmt.Errorf("set the client's IPv6 legs: %w", err)
	}
	c.plan.Legs6 = plan.Legs6
	return nil
}

// net6Args are the boot arguments of the IPv6 address and gateway setIPv6
// gave n (lvsforge-cmdline's lvs.ip and lvs.gw6).
func (n *Node) net6Args() []string {
	var args []string
	if n.addr6 != "" {
		args = append(args, "lvs.ip="+n.dev6+","+n.addr6)
	}
	if n.gw6 != "" {
		args = append(args, "lvs.gw6="+n.gw6)
	}
	return args
}
