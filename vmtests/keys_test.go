package vmtests

import (
	"path/filepath"
	"testing"
)

// TestHarnessKeyPathIsAbsolute: the harness key becomes every VM host's
// ssh.key, which push resolves against the spec's directory when relative,
// so a relative cache directory must not give a relative key path.
func TestHarnessKeyPathIsAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	_, path, err := harnessKey("cache")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "cache", "vmtest", "id_ed25519"); path != want {
		t.Errorf("key path %q, want %q", path, want)
	}
}
