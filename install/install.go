// Package install is the contract between roles, which decides what each
// host gets, and deploy, which puts it there: the files lvsforge installs
// on a host, the units (daemons and set-up scripts) a changed file
// restarts or reloads, and the paths on the hosts that both refer to.
package install

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// Paths on the hosts that more than one package refers to.
const (
	// Grub2Path is the GRUB 2 script that lists the kernels lvsforge
	// installed; GrubDefaultPath makes GRUB remember its default;
	// GrubLegacyPath is the GRUB legacy stanza deploy merges into grub.conf.
	Grub2Path       = "/etc/grub.d/42_lvsforge"
	GrubDefaultPath = "/etc/default/grub.d/lvsforge.cfg"
	GrubLegacyPath  = "/etc/lvsforge/grub-legacy.conf"
	// StateDir holds what lvsforge keeps on a host between pushes.
	StateDir = "/var/lib/lvsforge"
	// KernelDir holds each installed kernel's modules tarball and marker.
	KernelDir = StateDir + "/kernel"
	// PendingFile lists the steps of a push not yet completed on the host.
	PendingFile = StateDir + "/pending"
	// UnitStateDir holds each unit's fingerprint as last applied (Unit.Fingerprint).
	UnitStateDir = StateDir + "/units"
	// DrainsFile, on every director, records the drained real servers.
	DrainsFile = StateDir + "/drained"
)

// File is one file to install on a host.
type File struct {
	// Path is absolute and clean.
	Path string
	// Mode is the permission bits; 0 means 0644. Secrets never get group or
	// other bits whatever Mode says.
	Mode fs.FileMode
	// UID and GID own the file: 0, root, unless set (every file roles
	// renders is root's). They are set on the temporary before any data, so
	// a replaced file never takes the SSH user's ownership.
	UID, GID int
	// Locate, when set, names a command: the file goes where the host's
	// `command -v Locate` finds it, so that an installed binary is replaced
	// where everything runs it from, or at Path when the host has none.
	Locate string
	// Data is the content of small, rendered files.
	Data []byte
	// Artifact is streamed from local disk instead of Data (kernels, tarballs).
	Artifact *Artifact
	// Secret files (authkeys) are never shown: no content, diff or hash in
	// any output.
	Secret bool
	// Boot files (GRUB's configuration) change what the host boots: push
	// writes them only when it installs a kernel, so that pushing
	// configuration never changes a boot setting.
	Boot bool
	// Units names the units to enable and restart (or reload) when this
	// file changes.
	Units []string
}

// Size is the file's length.
func (f *File) Size() int64 {
	if f.Artifact != nil {
		return f.Artifact.Size
	}
	return int64(len(f.Data))
}

// SHA256 is the hex sha256 of the file's content.
func (f *File) SHA256() string {
	if f.Artifact != nil {
		return f.Artifact.SHA256
	}
	s := sha256.Sum256(f.Data)
	return hex.EncodeToString(s[:])
}

// Open returns the file's content.
func (f *File) Open() (io.ReadCloser, error) {
	if f.Artifact != nil {
		return f.Artifact.Open()
	}
	return io.NopCloser(strings.NewReader(string(f.Data))), nil
}

// FinalMode is the mode the file must end up with: Mode, 0644 when unset,
// without group and other bits for a secret.
func (f *File) FinalMode() fs.FileMode {
	m := f.Mode.Perm()
	if m == 0 {
		m = 0o644
	}
	if f.Secret {
		m &^= 0o077
		if m == 0 {
			m = 0o600
		}
	}
	return m
}

// Unit is a daemon or set-up step on a host and the commands that manage
// it. A unit is touched only when one of its files changed.
type Unit struct {
	Name string
	// Enable makes it start at boot, idempotently.
	Enable [][]string
	// Restart applies changed files; Reload, when set, applies changes
	// that need no restart (see Fingerprint).
	Restart [][]string
	Reload  [][]string
	// OnSystemd, set for the init scripts and daemons of an `init: sysv`
	// host, replaces Enable, Restart and Reload when the host's PID 1 turns out to be
	// systemd. Debian and Red Hat run LSB scripts under systemd
	// (systemd-sysv-generator makes a unit of each /etc/init.d script), but
	// only through it: the unit must be generated (daemon-reload) before
	// systemctl can restart it, and a script run directly runs outside
	// systemd, which then neither tracks nor stops it (ours do not source
	// /lib/lsb/init-functions, which would hand the call to systemctl).
	// What PID 1 is only the push finds out, from the host: roles renders
	// both command sets, deploy picks one.
	OnSystemd *Commands
	// Interrupts says that restarting the unit interrupts the service the
	// host gives (a real server's VIP set-up, a director's HA daemon): on
	// a live cluster, push drains the real server, or moves the VIPs off
	// the director, before it restarts such a unit. A reload never does.
	Interrupts bool
	// Fingerprint, for a unit that can Reload, is what its reload cannot
	// apply, as text: ldirectord's virtual services, keepalived's
	// configuration outside its virtual_server blocks. A change of the
	// unit's files is reloaded when the fingerprint is the one last applied
	// on the host (kept under UnitStateDir), and restarts it otherwise.
	Fingerprint string
}

// Commands manage a unit on one init system (Unit.OnSystemd).
type Commands struct {
	Enable, Restart, Reload [][]string
}

// On is u with the commands for a host whose PID 1 is init.
func (u Unit) On(init string) Unit {
	if init == cluster.InitSystemd && u.OnSystemd != nil {
		u.Enable, u.Restart, u.Reload = u.OnSystemd.Enable, u.OnSystemd.Restart, u.OnSystemd.Reload
	}
	return u
}

// Artifact is a large local file, hashed once and streamed to every host.
type Artifact struct {
	Name   string
	Size   int64
	SHA256 string
	// Open returns the content; it is called once per host that needs it.
	Open func() (io.ReadCloser, error)
}

// OpenArtifact hashes a local file so that hosts already holding it are skipped.
func OpenArtifact(p string) (*Artifact, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("hash artifact %s: %w", p, err)
	}
	return &Artifact{
		Name:   p,
		Size:   n,
		SHA256: hex.EncodeToString(h.Sum(nil)),
		Open:   func() (io.ReadCloser, error) { return os.Open(p) },
	}, nil
}
