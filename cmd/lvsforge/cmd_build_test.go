package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// TestBuildKernelCLI runs "build kernel --role director" on Debian's 6.1
// tarball twice; the second run must come from the cache. The cache is the
// one the build package's kernel test and the VM tests share, so the first
// run is usually a cache hit too and a test run compiles the kernel once.
func TestBuildKernelCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("short: builds a kernel")
	}
	const tarball = "/usr/src/linux-source-6.1.tar.xz"
	if _, err := os.Stat(tarball); err != nil {
		testenv.Missing(t, tarball, "apt-get install -y linux-source-6.1")
	}
	sum, err := build.FileSHA256(tarball)
	if err != nil {
		t.Fatal(err)
	}
	spec := writeSpec(t, "6.1.192", "type: distro", "path: "+tarball, "sha256: "+sum)
	cache := testenv.CacheDir(t)
	args := []string{"build", "kernel", "--role", "director", "-f", spec, "--cache-dir", cache, "--json"}
	var first string
	for i := range 2 {
		code, out, errOut := run(t, args...)
		if code != 0 {
			t.Fatalf("build %d: exit %d: %s", i+1, code, errOut)
		}
		var res struct {
			Kernels []struct {
				Role, Release, Dir, BzImage string
				Cached                      bool
			}
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Kernels) != 1 {
			t.Fatalf("build %d: --json output %q: %v", i+1, out, err)
		}
		k := res.Kernels[0]
		if k.Role != "director" || !strings.HasSuffix(k.Release, "-lvs") {
			t.Errorf("build %d: %+v", i+1, k)
		}
		if _, err := os.Stat(k.BzImage); err != nil {
			t.Error(err)
		}
		if i == 0 {
			first = k.Dir
		} else if !k.Cached || k.Dir != first {
			t.Errorf("second build not from the cache: %+v", k)
		}
	}
}
