// Package guestimage builds the Debian root filesystem the cluster VMs boot:
// debootstrap of a minbase system with the real cluster packages (heartbeat,
// ldirectord, keepalived, ipvsadm, openssh-server) and a console command
// loop, kept as a directory in the cache (the base). An image is that base
// plus what one cluster adds: the modules of the kernels lvsforge built for
// it and a few harness files, turned into an ext4 image with `mke2fs -d`
// (no root mount, no loop device). Both are cached by a hash of their inputs,
// so only the first run pays for debootstrap and a second run with the same
// kernels starts at boot. Each VM boots a qcow2 overlay of the image, leaving
// the cached one untouched.
package guestimage

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/lvsforge/lvsforge/vmtests/initramfs"
)

// ReadyMarker is the console line the image's lvsforge-console service
// prints once the system has booted and the console reads commands.
const ReadyMarker = "lvsforge-guest: ready"

// formatVersion changes whenever the customisation below changes, so cached
// bases built by older code are not reused.
const formatVersion = "guestimage-v12"

// Spec says what goes into the base; its Key is the cache key.
type Spec struct {
	Suite    string   // Debian suite, e.g. bookworm
	Mirror   string   // Debian mirror URL
	Packages []string // installed with --include, on top of minbase
	// Init is the init system the guest boots: InitSystemd (or "") or
	// InitSysV, the systemd base with Debian's sysvinit-core in place of
	// systemd-sysv (see sysv.go).
	Init string
}

// Init systems a base can boot, as a spec's hosts name them.
const (
	InitSystemd = "systemd"
	InitSysV    = "sysv"
)

// ClusterPackages are the packages of an LVS cluster guest: the real
// daemons the rendered configs are for, and what the checks use.
var ClusterPackages = []string{
	"systemd-sysv", "udev", "kmod", "iproute2", "procps",
	"openssh-server", "heartbeat", "ldirectord", "keepalived", "ipvsadm",
	// The director script's marks for firewall-mark services; lvs-vip's
	// handoff of a live peer's connections after a planned move (nft).
	"iptables", "nftables",
	// GRUB's tools (update-grub, grub-reboot, grub-set-default) and BIOS
	// modules, for push --kernel and the VM that boots through GRUB.
	"grub2-common", "grub-pc-bin",
	// debootstrap's resolver ignores virtual packages: ldirectord's perl SSL
	// modules need perl-openssl-abi-3, which only this package provides.
	"perl-openssl-defaults",
	// ldirectord's HTTP checks of IPv6 real servers load Net::INET6Glue,
	// which Debian's ldirectord does not depend on: without it ldirectord
	// dies at its first such check (the ipv6 scenario).
	"libnet-inet6glue-perl",
	// The bgp backend's directors announce the VIPs with BIRD 2; the VM
	// tests' router (Cluster.Router) is FRR, as a site's routers would be.
	"bird2", "frr",
}

// DefaultSpec is the bookworm cluster guest.
func DefaultSpec() Spec {
	return Spec{Suite: "bookworm", Mirror: "http://deb.debian.org/debian", Packages: ClusterPackages}
}

// Key hashes everything that determines the base's contents. The package
// versions the mirror serves are not part of it: a cached base keeps the
// versions it was built with until the spec or this code changes.
func (s Spec) Key() string {
	h := sha256.New()
	pkgs := append([]string(nil), s.Packages...)
	sort.Strings(pkgs)
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%s\n%s\n", formatVersion, s.Suite, s.Mirror, strings.Join(pkgs, ","), consoleScript, initramfs.CmdlineScript)
	// The systemd base's key is the one it had before sysvinit images
	// existed: a warm cache stays warm.
	if s.sysv() {
		fmt.Fprintf(h, "%s\n%s\n%s\n", sysvFormatVersion, sysvCmdlineScript, sysvConsoleEntry)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func (s Spec) sysv() bool { return s.Init == InitSysV }

// File is a file an image adds to the base.
type File struct {
	Path string // absolute path in the guest
	Data []byte
	Mode fs.FileMode
}

// Extra is what one cluster's image adds to the base.
type Extra struct {
	// Modules are kernel module tarballs (lib/modules/RELEASE/..., with
	// modules.dep, as build.KernelArtifacts.Modules), unpacked into the root.
	Modules []string
	Files   []File
}

func (e Extra) key(base string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", base)
	for _, m := range e.Modules {
		f, err := os.Open(m)
		if err != nil {
			return "", fmt.Errorf("hash modules: %w", err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("hash modules %s: %w", m, err)
		}
	}
	for _, f := range e.Files {
		fmt.Fprintf(h, "%s %o %d\n", f.Path, f.Mode, len(f.Data))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// Builder builds and caches bases and images.
type Builder struct {
	// CacheDir holds images/ and the debootstrap package cache debs/.
	CacheDir string
	// Log receives the tools' output; nil discards it.
	Log io.Writer
}

// HasRoot reports whether the base for spec is in the cache already.
func (b *Builder) HasRoot(spec Spec) bool {
	_, err := os.Stat(filepath.Join(b.CacheDir, "images", "base-"+spec.Key()))
	return err == nil
}

// Root returns the directory of the base system for spec, building it if the
// cache has none. It needs root (debootstrap chroots) and the mirror.
func (b *Builder) Root(ctx context.Context, spec Spec) (string, error) {
	if spec.sysv() {
		systemd := spec
		systemd.Init = InitSystemd
		base, err := b.Root(ctx, systemd)
		if err != nil {
			return "", err
		}
		return b.cachedRoot(spec.Key(), func(tmpRoot string) error { return b.sysvRoot(ctx, base, tmpRoot) })
	}
	return b.cachedRoot(spec.Key(), func(tmpRoot string) error {
		debs := filepath.Join(b.CacheDir, "debs")
		if err := os.MkdirAll(debs, 0o755); err != nil {
			return fmt.Errorf("create image cache: %w", err)
		}
		args := []string{"--variant=minbase", "--cache-dir=" + debs}
		if len(spec.Packages) > 0 {
			args = append(args, "--include="+strings.Join(spec.Packages, ","))
		}
		args = append(args, spec.Suite, tmpRoot, spec.Mirror)
		if err := b.run(ctx, "debootstrap", args...); err != nil {
			return err
		}
		// debootstrap unmounts its /proc when it succeeds; make sure, because
		// mke2fs -d would copy whatever is mounted there.
		if err := unmountUnder(tmpRoot); err != nil {
			return err
		}
		if err := customize(tmpRoot); err != nil {
			return err
		}
		return b.systemctl(ctx, tmpRoot)
	})
}

// cachedRoot returns the cached base directory images/base-KEY, making it
// with make when the cache lacks it: under a lock (two processes make it
// once), into a temporary directory renamed into place only when make has
// succeeded.
func (b *Builder) cachedRoot(key string, make func(tmpRoot string) error) (string, error) {
	imgDir := filepath.Join(b.CacheDir, "images")
	root := filepath.Join(imgDir, "base-"+key)
	if _, err := os.Stat(root); err == nil {
		return root, nil
	}
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return "", fmt.Errorf("create image cache: %w", err)
	}
	unlock, err := lock(root + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(root); err == nil { // built by another process meanwhile
		return root, nil
	}
	work, err := os.MkdirTemp(imgDir, ".base-"+key+"-")
	if err != nil {
		return "", fmt.Errorf("create image build dir: %w", err)
	}
	defer removeBuildDir(work)
	tmpRoot := filepath.Join(work, "root")
	if err := make(tmpRoot); err != nil {
		return "", err
	}
	if err := os.Rename(tmpRoot, root); err != nil {
		return "", fmt.Errorf("store image base: %w", err)
	}
	return root, nil
}

// Image returns the path of the ext4 image of the base for spec plus extra,
// building what the cache lacks.
func (b *Builder) Image(ctx context.Context, spec Spec, extra Extra) (string, error) {
	base, err := b.Root(ctx, spec)
	if err != nil {
		return "", err
	}
	key, err := extra.key(spec.Key())
	if err != nil {
		return "", err
	}
	img := filepath.Join(b.CacheDir, "images", key+".ext4")
	return b.layered(ctx, base, img, func(work, root string) (string, error) {
		for _, m := range extra.Modules {
			if err := unpackModules(m, root); err != nil {
				return "", err
			}
		}
		for _, f := range extra.Files {
			if err := addFile(root, f); err != nil {
				return "", err
			}
		}
		size, err := fsSize(root)
		if err != nil {
			return "", err
		}
		out := filepath.Join(work, "root.ext4")
		return out, b.run(ctx, "mke2fs", "-q", "-t", "ext4", "-L", "lvsroot", "-d", root, out, fmt.Sprintf("%dk", size>>10))
	})
}

// layered returns img, building it when the cache lacks it: under a lock
// (two processes build it once), make gets a work directory and root, a
// tree of hard links to base (instant, and the base is never written to:
// everything added is a new file, addFile unlinks before it writes), and
// returns the file that is renamed to img.
func (b *Builder) layered(ctx context.Context, base, img string, make func(work, root string) (string, error)) (string, error) {
	if _, err := os.Stat(img); err == nil {
		return img, nil
	}
	unlock, err := lock(img + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(img); err == nil {
		return img, nil
	}
	work, err := os.MkdirTemp(filepath.Dir(img), "."+filepath.Base(img)+"-")
	if err != nil {
		return "", fmt.Errorf("create image build dir: %w", err)
	}
	defer removeBuildDir(work)
	root := filepath.Join(work, "root")
	if err := b.run(ctx, "cp", "-al", base, root); err != nil {
		return "", err
	}
	out, err := make(work, root)
	if err != nil {
		return "", err
	}
	if err := os.Rename(out, img); err != nil {
		return "", fmt.Errorf("store image: %w", err)
	}
	return img, nil
}

// fsSize is the size of an ext4 filesystem for the tree at root: room for
// logs and for what push and the scenarios install, a third more than the
// contents plus 256 MiB. Unused blocks cost nothing in the qcow2 overlays.
func fsSize(root string) (int64, error) {
	size, err := dirSize(root)
	if err != nil {
		return 0, err
	}
	return (size*4/3/(1<<20) + 256) << 20, nil
}

// HostKey returns the ssh host public key (ed25519, authorized_keys format)
// every VM booted from an image of this base presents.
func HostKey(base string) ([]byte, error) {
	k, err := os.ReadFile(filepath.Join(base, "etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		return nil, fmt.Errorf("read image host key: %w", err)
	}
	return k, nil
}

// addFile writes f under root as a new inode, never through an existing
// one: root's files are hard links to the cached base.
func addFile(root string, f File) error {
	if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
		return fmt.Errorf("add %q to image: want an absolute clean path", f.Path)
	}
	full := filepath.Join(root, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("add %s to image: %w", f.Path, err)
	}
	if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("add %s to image: %w", f.Path, err)
	}
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
	}
	if err := os.WriteFile(full, f.Data, mode); err != nil {
		return fmt.Errorf("add %s to image: %w", f.Path, err)
	}
	return os.Chmod(full, mode) // not narrowed by the umask
}

// unpackModules unpacks a modules tarball (lib/modules/RELEASE/...) into
// root. Only regular files, directories and symlinks, and only under
// lib/modules: the tarball is lvsforge's own, but the image is not the place
// to find out otherwise.
func unpackModules(tarball, root string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return fmt.Errorf("unpack modules: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("unpack modules %s: %w", tarball, err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack modules %s: %w", tarball, err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if name == "lib" || name == "lib/modules" {
			continue
		}
		if !strings.HasPrefix(name, "lib/modules/") {
			return fmt.Errorf("unpack modules %s: %s is outside lib/modules", tarball, hdr.Name)
		}
		dst := filepath.Join(root, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, 0o755)
		case tar.TypeSymlink:
			// build and source point into the build host's tree; a guest needs neither.
		case tar.TypeReg:
			err = addFile(root, File{Path: "/" + name, Data: nil, Mode: 0o644})
			if err == nil {
				var out *os.File
				if out, err = os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0); err == nil {
					_, err = io.Copy(out, tr)
					if cerr := out.Close(); err == nil {
						err = cerr
					}
				}
			}
		default:
			err = fmt.Errorf("%s: unexpected type %c", hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("unpack modules %s: %w", tarball, err)
		}
	}
}

// lock takes an exclusive flock on path, so two processes do not build the
// same base or image at once.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func (b *Builder) run(ctx context.Context, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, tool, args...)
	var tail tailWriter
	w := io.Writer(&tail)
	if b.Log != nil {
		w = io.MultiWriter(b.Log, &tail)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %s: %w: %s", tool, err, tail.String())
	}
	return nil
}

// systemctl enables the harness's services and trims the boot: under TCG
// every unit costs seconds, and five VMs boot at once on two cores. The
// cluster daemons keep Debian's defaults (heartbeat, ldirectord and
// keepalived enabled, as on a freshly installed host); ldirectord runs only
// where push has put its config (customize drops the package's sample), so
// a real server starts no Perl for nothing.
func (b *Builder) systemctl(ctx context.Context, root string) error {
	if err := b.run(ctx, "chroot", root, "systemctl", "enable", "lvsforge-cmdline.service", "lvsforge-console.service"); err != nil {
		return err
	}
	// BIRD runs where push enables it (a bgp director), FRR where the
	// harness starts it (the router VM): not idle on every other VM.
	if err := b.run(ctx, "chroot", root, "systemctl", "disable", "bird.service", "frr.service"); err != nil {
		return err
	}
	// Masked: the console, whichever serial port it is on, belongs to
	// lvsforge-console; the rest is work a test VM never needs: timers,
	// filesystem scrubs, a getty on tty1 that no one sees, Debian's
	// ipvsadm rules loader (lvs-director loads the rules), udev with its
	// early module loads (every driver is built in, the harness names the
	// NICs, and the kernel runs modprobe itself for ip_vs and ipip), utmp
	// records, the users the image already has, heartbeat's logd (ha.cf
	// logs to syslog), and the journal's flush to disk (it stays in /run).
	// The root's remount stays: a VM that boots through GRUB mounts it ro.
	return b.run(ctx, "chroot", root, "systemctl", "mask", "serial-getty@.service", "getty-static.service",
		"apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "fstrim.timer", "logrotate.timer",
		"e2scrub_all.timer", "e2scrub_reap.service", "ipvsadm.service", "systemd-udev-trigger.service",
		"systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
		"modprobe@dm_mod.service", "modprobe@efi_pstore.service", "modprobe@fuse.service", "modprobe@loop.service",
		"modprobe@configfs.service", "modprobe@drm.service", "systemd-random-seed.service",
		"systemd-update-utmp.service", "systemd-update-utmp-runlevel.service", "systemd-sysusers.service",
		"logd.service", "systemd-journal-flush.service")
}

// unusedGenerators are the systemd generators a test VM has nothing for:
// every packaged daemon has a native unit, the root is on the command line,
// and nothing is encrypted, hibernated or updated offline. Each costs an
// exec at every boot and daemon-reload; masked by a /dev/null link in
// /etc/systemd/system-generators.
var unusedGenerators = []string{
	"systemd-sysv-generator", "systemd-rc-local-generator", "systemd-getty-generator", "systemd-gpt-auto-generator",
	"systemd-hibernate-resume-generator", "systemd-cryptsetup-generator", "systemd-integritysetup-generator",
	"systemd-veritysetup-generator", "systemd-system-update-generator", "systemd-debug-generator", "systemd-run-generator",
}

// consoleScript is the guest side of qemu.VM.Run: the same contract as the
// busybox test guest's init, evaluating each console line in a subshell with
// echo off, so one Run works for both kinds of guest.
const consoleScript = `#!/bin/sh
stty -echo
echo "` + ReadyMarker + `"
while IFS= read -r cmd; do
	(eval "$cmd") < /dev/null
done
`

const consoleUnit = `[Unit]
Description=lvsforge test console on the kernel console
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/lvsforge-console
StandardInput=tty-force
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
TTYReset=yes
Restart=always

[Install]
WantedBy=multi-user.target
`

// cmdlineUnit runs initramfs.CmdlineScript at boot: the VM's host name,
// addresses and root's SSH key come from its kernel command line, so every
// VM boots the same image. Before sshd, so push's first login finds its key.
const cmdlineUnit = `[Unit]
Description=lvsforge settings from the kernel command line
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target ssh.service lvsforge-console.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/lvsforge-cmdline

[Install]
WantedBy=multi-user.target
`

func customize(root string) error {
	files := map[string]struct {
		data string
		perm fs.FileMode
	}{
		"etc/hostname":                    {"lvsguest\n", 0o644},
		"etc/hosts":                       {"127.0.0.1\tlocalhost\n", 0o644},
		"etc/fstab":                       {"/dev/vda / ext4 rw,errors=remount-ro 0 1\n", 0o644},
		"usr/local/sbin/lvsforge-console": {consoleScript, 0o755},
		"etc/systemd/system/lvsforge-console.service": {consoleUnit, 0o644},
		"usr/local/sbin/lvsforge-cmdline":             {string(initramfs.CmdlineScript), 0o755},
		"etc/systemd/system/lvsforge-cmdline.service": {cmdlineUnit, 0o644},
		"etc/ssh/sshd_config.d/lvsforge.conf":         {"PermitRootLogin prohibit-password\nUseDNS no\n", 0o644},
		"etc/systemd/journald.conf.d/lvsforge.conf":   {"[Journal]\nForwardToConsole=no\nStorage=volatile\n", 0o644},
		// sshd's config test before every start is a second sshd exec.
		"etc/systemd/system/ssh.service.d/lvsforge.conf": {"[Service]\nExecStartPre=\n", 0o644},
		// ldirectord where push has put its config (the directors) only.
		"etc/systemd/system/ldirectord.service.d/lvsforge.conf": {"[Unit]\nConditionPathExists=/etc/ha.d/ldirectord.cf\n", 0o644},
		"etc/systemd/system.conf.d/lvsforge-quiet.conf":         {"[Manager]\nShowStatus=no\n", 0o644},
		// A unit's start (and reload) may take minutes, not systemd's 90 s:
		// ldirectord's Perl once took longer than that to start on an
		// emulated CPU shared with the other VMs, and push's restart failed.
		// Units that really hang still fail, and push's commands have their
		// own bound.
		"etc/systemd/system.conf.d/lvsforge-tcg.conf": {"[Manager]\nDefaultTimeoutStartSec=5min\n", 0o644},
	}
	for p, f := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("customize image: %w", err)
		}
		if err := os.WriteFile(full, []byte(f.data), f.perm); err != nil {
			return fmt.Errorf("customize image: %w", err)
		}
	}
	// Classic interface names: the rendered configs say eth0 and eth1, as
	// on the seed's hosts, where udev would name a virtio NIC ens2.
	// Masking 99-default.link is systemd's documented switch for that.
	link := filepath.Join(root, "etc/systemd/network/99-default.link")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("customize image: %w", err)
	}
	os.Remove(link)
	if err := os.Symlink("/dev/null", link); err != nil {
		return fmt.Errorf("customize image: %w", err)
	}
	for _, g := range unusedGenerators {
		link := filepath.Join(root, "etc/systemd/system-generators", g)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return fmt.Errorf("customize image: %w", err)
		}
		os.Remove(link)
		if err := os.Symlink("/dev/null", link); err != nil {
			return fmt.Errorf("customize image: %w", err)
		}
	}
	// The ldirectord package's sample config: a host runs ldirectord with
	// the config push gives it, or not at all.
	if err := os.Remove(filepath.Join(root, "etc/ha.d/ldirectord.cf")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("customize image: %w", err)
	}
	// The debs were already in the package cache; the image need not carry
	// a second copy.
	debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		if err := os.Remove(d); err != nil {
			return fmt.Errorf("customize image: %w", err)
		}
	}
	return nil
}

func dirSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure image root: %w", err)
	}
	return n, nil
}

// Overlay creates a qcow2 overlay at path backed by the raw image base: the
// VM's writes land in the overlay and the cached base stays pristine.
func Overlay(ctx context.Context, base, path string) error {
	abs, err := filepath.Abs(base)
	if err != nil {
		return fmt.Errorf("create overlay: %w", err)
	}
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", abs, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("create overlay %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tailWriter keeps the last few KiB of a tool's output for its error.
type tailWriter struct{ b []byte }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return strings.TrimSpace(string(t.b)) }

// removeBuildDir deletes a build directory, first unmounting what
// debootstrap may have left mounted in it (/proc, and in a container a bind
// of the host's /dev): deleting through such a mount would delete the
// host's files. If anything stays mounted, the directory is left alone.
func removeBuildDir(dir string) {
	if unmountUnder(dir) != nil {
		return
	}
	os.RemoveAll(dir)
}

func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	// Deepest first, so a mount on top of another comes off before it.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}
