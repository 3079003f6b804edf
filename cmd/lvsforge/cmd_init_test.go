package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitForceKeepsTheAuthkeyPrivate: init --force over a cluster whose
// authkey others can read keeps the secret, makes the file 0600 and says
// so; it reports the mode the file has, never an assumed 0600.
func TestInitForceKeepsTheAuthkeyPrivate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode os.FileMode // of an authkey already there; 0: none
		want string
	}{
		{"no authkey", 0, "authkey: a new heartbeat secret, mode 0600"},
		{"private authkey", 0o600, "authkey: the heartbeat secret already there, kept, mode 0600"},
		{"authkey others can read", 0o644, "authkey: the heartbeat secret already there, kept; its mode 0644 let others read it, now 0600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key := filepath.Join(dir, "authkey")
			const secret = "the-cluster-secret-0123456789\n"
			if tc.mode != 0 {
				os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte("# an older spec\n"), 0o644)
				if err := os.WriteFile(key, []byte(secret), tc.mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(key, tc.mode)
			}
			code, out, errOut := run(t, "init", "--force", "--dir", dir, "--src-dir", t.TempDir())
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("init: exit %d, want 0 and %q in:\n%s%s", code, tc.want, out, errOut)
			}
			st, err := os.Stat(key)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("authkey: %v, %v; want mode 0600", st, err)
			}
			if b, _ := os.ReadFile(key); tc.mode != 0 && string(b) != secret {
				t.Errorf("the existing secret was replaced: %q", b)
			}
			if code, _, errOut := run(t, "validate", "-f", filepath.Join(dir, "cluster.yaml")); code != 0 {
				t.Errorf("validate: exit %d: %s", code, errOut)
			}
		})
	}
}
