package cluster

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestLoadRefusesWhatIsNoSpecFile: -f of a device, a named pipe or a file
// larger than a spec can be fails at once. /dev/zero read whole would fill
// memory; a pipe with no writer would block forever, on open before read; a
// 64 GiB (sparse) file read whole would not fit in memory.
func TestLoadRefusesWhatIsNoSpecFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, tc := range []struct{ path, want string }{
		{fifo, "read spec: " + fifo + " is a named pipe, not a regular file: name the spec's YAML file"},
		{"/dev/zero", "read spec: /dev/zero is a character device, not a regular file: name the spec's YAML file"},
		{dir, "read spec: " + dir + " is a directory, not a regular file: name the spec's YAML file"},
		{big, "invalid spec (1 problem):\n  " + big + ":1:1: spec is larger than the 4194304 bytes a spec can be: name the spec's YAML file"},
	} {
		_, err := Load(tc.path)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Load(%s): got %v\nwant %s", tc.path, err, tc.want)
		}
	}
}
