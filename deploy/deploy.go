// Package deploy owns everything lvsforge does to a remote host: SSH
// connections (agent and key auth, ssh_config, jump hosts, known_hosts
// checking), fact gathering, and the one function that mutates a host
// (apply), which executes a Plan of atomic file writes and commands. Dry-run
// and diff are the same Plan printed instead of applied, built from facts
// gathered for real. Push fans a plan out over hosts with a bounded pool and
// reports every host.
package deploy

import (
	"errors"
	"fmt"
	"path"

	"github.com/lvsforge/lvsforge/install"
)

// Host is what to install on one host: files first, then Commands (run only
// when something on the host changed), then, for each unit with a changed
// file, its Enable and its Restart or Reload commands.
type Host struct {
	Target Target
	// Init is the init system the spec says the host runs (cluster.InitSystemd or
	// cluster.InitSysV): the rendered units and the commands that enable them are
	// for it, so a host that runs the other fails its plan, except SysV
	// scripts on a systemd host, which systemd runs (see Unit.OnSystemd).
	// Empty: not checked.
	Init     string
	Files    []install.File
	Units    []install.Unit
	Commands [][]string
	// Kernel, when set, is installed (its files join Files), activated for
	// one boot or confirmed; see Kernel.
	Kernel *Kernel
}

// pushed is h as a push writes it: its boot files only when a kernel is
// installed, then the kernel's own files and the units' fingerprints.
func (h *Host) pushed() *Host {
	hp := *h
	hp.Files = nil
	for _, f := range h.Files {
		if !f.Boot || h.Kernel.installs() {
			hp.Files = append(hp.Files, f)
		}
	}
	if h.Kernel != nil {
		hp.Files = append(hp.Files, h.Kernel.files()...)
	}
	hp.Files = append(hp.Files, fingerprintFiles(h.Units)...)
	return &hp
}

// ErrBadPath is returned for a target path that is not absolute, not clean or
// contains control characters: such a path could not be passed safely to the
// remote shell or would not mean what it says.
var ErrBadPath = errors.New("bad target path")

func checkPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%w %q: want an absolute, clean file path", ErrBadPath, p)
	}
	for _, r := range p {
		// sha256sum escapes names with a backslash or a newline.
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("%w %q: control character or backslash", ErrBadPath, p)
		}
	}
	return nil
}
