package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSSHKeyFile: ssh.key is found as ssh finds ~/ and as the spec finds
// every other file it names, relative to the spec's directory.
func TestSSHKeyFile(t *testing.T) {
	t.Setenv("HOME", "/home/ops")
	s := &Spec{Dir: "/etc/lvs"}
	for key, want := range map[string]string{
		"":              "",
		"~/.ssh/id_lvs": "/home/ops/.ssh/id_lvs",
		"keys/d1":       "/etc/lvs/keys/d1",
		"./d1":          "/etc/lvs/d1",
		"/srv/keys/d1":  "/srv/keys/d1",
	} {
		if got := s.SSHKeyFile(&Host{SSH: SSH{Key: key}}); got != want {
			t.Errorf("ssh.key %q: %q, want %q", key, got, want)
		}
	}
}

// TestPrivateAuthkey: an authkey others can read loses their access and
// keeps its bytes; a private one and a symbolic link (whose target may be
// shared) are left as they are.
func TestPrivateAuthkey(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("test-secret-0123456789\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	open, private, target := write("open", 0o644), write("private", 0o600), write("target", 0o640)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path          string
		before, after os.FileMode
	}{
		{open, 0o644, 0o600},
		{private, 0o600, 0o600},
		{link, 0o640, 0o640},
	} {
		before, after, err := PrivateAuthkey(tc.path)
		if err != nil || before != tc.before || after != tc.after {
			t.Errorf("%s: %04o -> %04o, %v; want %04o -> %04o", filepath.Base(tc.path), before, after, err, tc.before, tc.after)
		}
		st, _ := os.Stat(tc.path)
		if st.Mode().Perm() != tc.after {
			t.Errorf("%s: mode %04o on disk, want %04o", filepath.Base(tc.path), st.Mode().Perm(), tc.after)
		}
	}
	if b, _ := os.ReadFile(open); string(b) != "test-secret-0123456789\n" {
		t.Errorf("the secret changed: %q", b)
	}
}
