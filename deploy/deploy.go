// Package deploy owns everything lvsforge does to a remote host: SSH
// connections (agent and key auth, ssh_config, jump hosts, known_hosts
// checking), fact gathering, and the one function that mutates a host
// (apply), which executes a Plan of atomic file writes and commands. Dry-run
// and diff are the same Plan printed instead of applied, built from facts
// gathered for real. Push fans a plan out over hosts with a bounded pool and
// reports every host.
package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
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
	// Secret files are never shown: no content, diff or hash in any output.
	Secret bool
	// Boot files (GRUB's configuration) are written only by a push that
	// installs a kernel (Host.Kernel with an Image): pushing configuration
	// never changes what the host boots.
	Boot bool
	// Units names the Host.Units to enable and restart (or reload) when
	// this file changes.
	Units []string
}

// Unit is a daemon or set-up step and the commands that manage it. A unit
// is touched only when one of its files changed.
type Unit struct {
	Name string
	// Enable makes the unit start at boot (idempotent).
	Enable [][]string
	// Restart applies changed files. Reload, when set, is used instead if
	// the change needs no restart (see needsRestart).
	Restart [][]string
	Reload  [][]string
	// OnSystemd, when set, replaces Enable, Restart and Reload on a host
	// whose PID 1 is systemd: a SysV script's unit (roles.Unit.OnSystemd).
	OnSystemd *UnitCommands
}

// UnitCommands manage a unit on one init system.
type UnitCommands struct {
	Enable, Restart, Reload [][]string
}

// on is u with the commands for a host running init.
func (u Unit) on(init string) Unit {
	if init == InitSystemd && u.OnSystemd != nil {
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

// Host is what to install on one host: files first, then Commands (run only
// when something on the host changed), then, for each unit with a changed
// file, its Enable and its Restart or Reload commands.
type Host struct {
	Target Target
	// Init is the init system the spec says the host runs (InitSystemd or
	// InitSysV): the rendered units and the commands that enable them are
	// for it, so a host that runs the other fails its plan, except SysV
	// scripts on a systemd host, which systemd runs (see Unit.OnSystemd).
	// Empty: not checked.
	Init     string
	Files    []File
	Units    []Unit
	Commands [][]string
	// Kernel, when set, is installed (its files join Files), activated for
	// one boot or confirmed; see Kernel.
	Kernel *Kernel
}

func (f *File) size() int64 {
	if f.Artifact != nil {
		return f.Artifact.Size
	}
	return int64(len(f.Data))
}

func (f *File) sha256() string {
	if f.Artifact != nil {
		return f.Artifact.SHA256
	}
	s := sha256.Sum256(f.Data)
	return hex.EncodeToString(s[:])
}

func (f *File) open() (io.ReadCloser, error) {
	if f.Artifact != nil {
		return f.Artifact.Open()
	}
	return io.NopCloser(strings.NewReader(string(f.Data))), nil
}

// mode is the mode the file must end up with.
func (f *File) mode() fs.FileMode {
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

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
