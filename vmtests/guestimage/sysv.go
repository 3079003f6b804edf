package guestimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A sysvinit base is the systemd base with Debian's sysvinit-core in place
// of systemd-sysv, installed the Debian way (apt-get in a chroot of a copy
// of the base), for the hosts a spec runs at `init: sysv`: their init.d
// scripts are enabled by update-rc.d and started from rc links at boot, as
// on a real sysvinit host. What the systemd base does with units the
// sysvinit one does with an rcS script (the command line's settings) and an
// inittab line (the test console).

// sysvFormatVersion changes whenever the sysvinit layer below changes.
const sysvFormatVersion = "guestimage-sysv-v1"

// sysvCmdlineScript runs initramfs.CmdlineScript in rcS: after the local
// file systems (it writes /etc/hostname and root's authorized_keys) and
// /sys (it finds the NICs there), before runlevel 2 starts sshd.
const sysvCmdlineScript = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          lvsforge-cmdline
# Required-Start:    mountkernfs $local_fs
# Required-Stop:
# Default-Start:     S
# Default-Stop:
# Short-Description: lvsforge settings from the kernel command line
### END INIT INFO
case "$1" in
start)
	exec /usr/local/sbin/lvsforge-cmdline
	;;
stop | restart | force-reload | status)
	exit 0
	;;
*)
	echo "usage: $0 start" >&2
	exit 3
	;;
esac
`

// sysvConsoleEntry is the inittab line of the test console. init starts it
// only once the runlevel's `wait` entry (rc 2, which starts sshd) has
// ended, so its ready line means what the systemd unit's does; init gives
// it the console as stdin and stdout and starts it again if it ends.
const sysvConsoleEntry = "lv:2345:respawn:/usr/local/sbin/lvsforge-console"

// sysvRoot makes root a copy of base that boots sysvinit. A copy, not the
// hard links Image uses: dpkg and apt append to their logs in place, which
// would write through a link into the base.
func (b *Builder) sysvRoot(ctx context.Context, base, root string) (err error) {
	if err := b.run(ctx, "cp", "-a", base, root); err != nil {
		return err
	}
	// apt and the packages' maintainer scripts want /proc; it comes off
	// before anything copies the tree.
	if err := syscall.Mount("proc", filepath.Join(root, "proc"), "proc", 0, ""); err != nil {
		return fmt.Errorf("mount /proc in the sysvinit image: %w", err)
	}
	defer func() {
		if uerr := unmountUnder(root); err == nil {
			err = uerr
		}
	}()
	restore, err := chrootNetwork(root)
	if err != nil {
		return err
	}
	apt := func(args ...string) error {
		return b.run(ctx, "chroot", append([]string{root, "env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "apt-get", "-q"}, args...)...)
	}
	// debootstrap leaves the mirror it used in sources.list and no package
	// lists: apt-get update fetches them. sysvinit-core conflicts with
	// systemd-sysv, which apt removes; Recommends (orphan-sysvinit-scripts)
	// are init scripts for daemons this image does not have.
	if err = apt("update"); err == nil {
		err = apt("install", "-y", "--no-install-recommends", "sysvinit-core")
	}
	if err == nil {
		err = apt("clean")
	}
	if rerr := restore(); err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	if err := customizeSysV(root); err != nil {
		return err
	}
	// update-rc.d runs insserv, which orders the script by its header.
	// udev's links come off as systemd's units are masked in the base: the
	// kernel mounts /dev and the harness names the NICs.
	if err := b.run(ctx, "chroot", root, "update-rc.d", "lvsforge-cmdline", "defaults"); err != nil {
		return err
	}
	return b.run(ctx, "chroot", root, "update-rc.d", "udev", "disable")
}

// chrootNetwork gives the chroot at root the host's resolver and a
// policy-rc.d that keeps maintainer scripts from starting daemons in it;
// the function it returns puts the base's resolv.conf back and removes the
// policy.
func chrootNetwork(root string) (func() error, error) {
	resolv := filepath.Join(root, "etc/resolv.conf")
	saved, serr := os.ReadFile(resolv)
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("read the host's resolver for the sysvinit image: %w", err)
	}
	policy := filepath.Join(root, "usr/sbin/policy-rc.d")
	for _, f := range []File{{Path: "/etc/resolv.conf", Data: host, Mode: 0o644}, {Path: "/usr/sbin/policy-rc.d", Data: []byte("#!/bin/sh\nexit 101\n"), Mode: 0o755}} {
		if err := addFile(root, f); err != nil {
			return nil, err
		}
	}
	return func() error {
		err := os.Remove(policy)
		if serr == nil {
			err = errors.Join(err, os.WriteFile(resolv, saved, 0o644))
		} else {
			err = errors.Join(err, os.Remove(resolv))
		}
		if err != nil {
			return fmt.Errorf("clean the sysvinit image's chroot: %w", err)
		}
		return nil
	}, nil
}

// customizeSysV writes what the sysvinit base does differently: the rcS
// script, the console in inittab instead of gettys on virtual terminals no
// one sees, and no fsck of the root at boot (checkroot.sh would remount it
// read-only and check it every time; systemd leaves a root mounted
// read-write alone).
func customizeSysV(root string) error {
	inittab, err := os.ReadFile(filepath.Join(root, "etc/inittab"))
	if err != nil {
		return fmt.Errorf("customize sysvinit image: %w", err)
	}
	files := []File{
		{Path: "/etc/init.d/lvsforge-cmdline", Data: []byte(sysvCmdlineScript), Mode: 0o755},
		{Path: "/etc/inittab", Data: []byte(sysvInittab(string(inittab))), Mode: 0o644},
		{Path: "/etc/fstab", Data: []byte("/dev/vda / ext4 rw,errors=remount-ro 0 0\n"), Mode: 0o644},
	}
	for _, f := range files {
		if err := addFile(root, f); err != nil {
			return err
		}
	}
	return nil
}

// sysvInittab is Debian's inittab without the gettys (entries whose id is a
// tty number) and with the console entry last.
func sysvInittab(orig string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(orig, "\n") {
		if id, _, ok := strings.Cut(l, ":"); ok && id != "" && strings.Trim(id, "0123456789") == "" {
			continue
		}
		b.WriteString(l)
	}
	if s := b.String(); s != "" && !strings.HasSuffix(s, "\n") {
		b.WriteString("\n")
	}
	b.WriteString("# lvsforge: the test console, once rc 2 (sshd) is done.\n" + sysvConsoleEntry + "\n")
	return b.String()
}
