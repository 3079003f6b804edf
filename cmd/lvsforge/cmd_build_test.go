package main

import (
	"bytes"
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

// TestBuildProgressPlainLines: without a terminal, a long step's progress
// (extraction, compilation) is at most one log line every 5 s, while every
// step that starts is printed, and the first progress line after a new
// step is not held back.
func TestBuildProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	p := newFetchProgress(&out)
	p.step("extract", "extracting linux 6.1 source")
	p.step("extract", "extracting linux 6.1 source: 10.0/130.5 MiB (7%)")
	p.step("extract", "extracting linux 6.1 source: 20.0/130.5 MiB (15%)")
	p.step("extracted", "extracted linux 6.1 source: 130.5 MiB in 8.1s")
	p.step("compile", "director: make -j2 bzImage modules")
	p.step("compile", "director: 50 objects compiled")
	want := "extracting linux 6.1 source\nextracted linux 6.1 source: 130.5 MiB in 8.1s\ndirector: make -j2 bzImage modules\n"
	if out.String() != want {
		t.Errorf("log lines:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestBuildKernelBadPackage(t *testing.T) {
	if code, _, errOut := run(t, "build", "kernel", "--role", "director", "--package", "tgz"); code != 2 || !strings.Contains(errOut, `--package "tgz": want deb or rpm`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
