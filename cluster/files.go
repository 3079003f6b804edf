package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The files a spec names on this machine: the authkey file, a local kernel
// tarball, the SSH keys. Validation checks that they are there, so that
// validate finds what fetch, render or push would stumble on later.

// localPath resolves a path the spec names: relative to the spec's directory.
func (s *Spec) localPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.Dir, p)
}

// SSHKeyFile is the private key file h's ssh.key names, as push opens it:
// "~/" is the home directory, as ssh reads it, and a relative path is
// relative to the spec's directory, like every other file a spec names.
// It is "" when the spec names no key.
func (s *Spec) SSHKeyFile(h *Host) string {
	k := h.SSH.Key
	if rest, ok := strings.CutPrefix(k, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
		return k
	}
	if k == "" {
		return ""
	}
	return s.localPath(k)
}

// regularFile says what is wrong with p as the named file ("" if nothing):
// missing (then fix says what to do), not a regular file, or unreadable.
func regularFile(p, what, fix string) string {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s %s does not exist: %s", what, p, fix)
	case err != nil:
		return fmt.Sprintf("cannot read the %s: %v", what, err)
	case !st.Mode().IsRegular():
		return fmt.Sprintf("%s %s is %s, not a regular file: %s", what, p, fileKind(st.Mode()), fix)
	}
	return ""
}

// kernelTarball checks that a tarball or distro source's local path exists.
func (v *validator) kernelTarball() {
	src := &v.s.Kernel.Source
	if src.Path == "" || checkPath(src.Path) != nil || (src.Type != SourceTarball && src.Type != SourceDistro) {
		return
	}
	fix := "copy the tarball there, or give its url instead"
	if src.Type == SourceDistro {
		fix = "install the distro's kernel source package (Debian: apt-get install linux-source-" + seriesOf(v.s.Kernel.Version) + "), or correct the path"
	}
	if problem := regularFile(v.s.localPath(src.Path), "kernel tarball", fix); problem != "" {
		v.add("kernel.source.path", "%s", problem)
	}
}

// seriesOf is the X.Y of a kernel version, as Debian names linux-source-X.Y.
func seriesOf(version string) string {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return version
	}
	return parts[0] + "." + parts[1]
}

// sshKey checks that the key file a host's ssh.key names exists.
func (v *validator) sshKey(path string, h *Host) {
	if strings.HasPrefix(h.SSH.Key, "~/") {
		if _, err := os.UserHomeDir(); err != nil {
			v.add(path, "%s starts with ~/ but there is no home directory to find it in ($HOME is not set): write the key's full path", h.SSH.Key)
			return
		}
	}
	if problem := regularFile(v.s.SSHKeyFile(h), "ssh key", "create it (ssh-keygen -f FILE) or correct the path; without ssh.key, push uses the agent and ~/.ssh/config"); problem != "" {
		v.add(path, "%s", problem)
	}
}

// PrivateAuthkey takes group and other access away from the authkey file at
// path, which validation refuses for a heartbeat secret. It changes only a
// regular file of its own, never through a symbolic link, whose target may
// be shared. It returns the mode of the file (or of the link's target)
// before and after.
func PrivateAuthkey(path string) (before, after fs.FileMode, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("check authkey mode: %w", err)
	}
	before = st.Mode().Perm()
	lst, err := os.Lstat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("check authkey mode: %w", err)
	}
	if !lst.Mode().IsRegular() || before&0o077 == 0 {
		return before, before, nil
	}
	after = before &^ 0o077
	if err := os.Chmod(path, after); err != nil {
		return 0, 0, fmt.Errorf("make authkey private: %w", err)
	}
	return before, after, nil
}
