package initramfs

import (
	_ "embed"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// ReadyMarker is the console line the busybox init prints once the network
// is configured and the command shell reads the console.
const ReadyMarker = "lvsforge-init: ready"

// CmdlineScript applies the lvs.* kernel command line settings (host name,
// addresses, gateway, root's SSH keys; see the script's header), so one
// archive or image serves every VM of a cluster. The Debian guest image runs
// the same script at boot.
//
//go:embed cmdline.sh
var CmdlineScript []byte

// initScript is /init of the busybox guest. It loads the modules, then
// either hands over to a disk image (lvs.root=DEV: mount DEV as ext4 and
// switch_root to its /sbin/init) or applies CmdlineScript and stays. After
// printing ReadyMarker it evaluates each console line in a subshell,
// with terminal echo off, so a host can drive it line by line (see
// qemu.VM.Run) and an `exit` in a command cannot kill PID 1.
//
//go:embed init.sh
var initScript []byte

// BusyboxOptions describes a busybox guest.
type BusyboxOptions struct {
	// Busybox is the host path of a statically linked busybox
	// (Debian: busybox-static, /bin/busybox).
	Busybox string
	// ModulesDir is the host's /lib/modules/RELEASE of the kernel the guest
	// boots; empty when every driver is built in.
	ModulesDir string
	// Modules are loaded in dependency order before the network is set up.
	Modules []string
}

// Busybox builds the archive of a busybox guest: busybox with a symlink per
// applet, the modules and their dependencies, /dev/console and /init. Callers
// may add files (scripts, configs) before writing it.
func Busybox(o BusyboxOptions) (*Archive, error) {
	a := NewArchive()
	if err := a.CopyFile("/bin/busybox", o.Busybox); err != nil {
		return nil, err
	}
	// Ask the binary which applets it has and where they live, instead of
	// running `busybox --install` in the guest: the archive stays a pure
	// function of its inputs and init needs no /proc for it.
	out, err := exec.Command(o.Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" || applet == "init" || applet == "linuxrc" {
			continue
		}
		if err := a.Symlink("/"+applet, "/bin/busybox"); err != nil {
			return nil, err
		}
	}
	if len(o.Modules) > 0 {
		paths, err := ResolveModules(o.ModulesDir, o.Modules...)
		if err != nil {
			return nil, err
		}
		var order strings.Builder
		for _, p := range paths {
			guest := path.Join("/lib/modules", p)
			if err := a.CopyFile(guest, filepath.Join(o.ModulesDir, filepath.FromSlash(p))); err != nil {
				return nil, err
			}
			order.WriteString(guest + "\n")
		}
		if err := a.File("/etc/modules.order", []byte(order.String()), 0o644); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/etc"} {
		if err := a.Dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	// The kernel opens /dev/console for init's stdio before anything can
	// mount devtmpfs.
	if err := a.CharDev("/dev/console", 0o600, 5, 1); err != nil {
		return nil, err
	}
	if err := a.File("/bin/lvsforge-cmdline", CmdlineScript, 0o755); err != nil {
		return nil, err
	}
	if err := a.File("/init", initScript, 0o755); err != nil {
		return nil, err
	}
	return a, nil
}
