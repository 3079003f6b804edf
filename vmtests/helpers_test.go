package vmtests

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// outEnv names a directory that keeps consoles and pcaps after the run (one
// subdirectory per test); by default they go to a temporary directory.
const outEnv = "LVSFORGE_VMTEST_OUT"

// testCacheDir is the lvsforge cache the tests share with lvsforge itself.
func testCacheDir(t testing.TB) string { return testenv.CacheDir(t) }

// vmPrereqs skips the test (fails it in CI) unless QEMU, a static busybox
// and what the builds need are there.
func vmPrereqs(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("short: boots VMs")
	}
	testenv.LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.LookPath(t, "qemu-img", "qemu-utils")
	if dyn, err := build.IsDynamic(busyboxPath); err != nil || dyn {
		testenv.Missing(t, "a static busybox at "+busyboxPath, "apt-get install -y busybox-static")
	}
	for tool, pkg := range map[string]string{"make": "make", "gcc": "gcc", "flex": "flex", "bison": "bison", "bc": "bc"} {
		testenv.LookPath(t, tool, pkg)
	}
	if _, err := os.Stat("/usr/src/linux-source-6.1.tar.xz"); err != nil {
		testenv.Missing(t, "/usr/src/linux-source-6.1.tar.xz", "apt-get install -y linux-source-6.1")
	}
}

// clusterPrereqs adds what a whole cluster needs: root and debootstrap for
// the guest image.
func clusterPrereqs(t testing.TB) {
	t.Helper()
	vmPrereqs(t)
	testenv.Root(t)
	for tool, pkg := range map[string]string{"debootstrap": "debootstrap", "mke2fs": "e2fsprogs"} {
		testenv.LookPath(t, tool, pkg)
	}
}

var example struct {
	once sync.Once
	spec *cluster.Spec
	dir  string
	err  error
}

// exampleSpec is the built-in example (the seed's cluster) with the
// distro kernel source, its authkey in a directory of its own.
func exampleSpec(t testing.TB) *cluster.Spec {
	t.Helper()
	example.once.Do(func() {
		if example.dir, example.err = os.MkdirTemp("", "lvsforge-example-"); example.err != nil {
			return
		}
		if example.err = cluster.EnsureAuthkey(filepath.Join(example.dir, "authkey")); example.err != nil {
			return
		}
		var src cluster.ExampleSource
		if src, example.err = cluster.DetectSource("/usr/src"); example.err != nil {
			return
		}
		example.spec, example.err = cluster.Example(src, example.dir)
	})
	if example.err != nil {
		t.Fatal(example.err)
	}
	return example.spec
}

var artifacts struct {
	once sync.Once
	art  *build.SpecArtifacts
	err  error
}

// testArtifacts builds (or takes from the cache) the example's kernels with
// the vm fragment and the static ipvsadm, once per test binary.
func testArtifacts(t testing.TB) *build.SpecArtifacts {
	t.Helper()
	spec := exampleSpec(t)
	artifacts.once.Do(func() {
		cache, err := build.NewCache(testCacheDir(t))
		if err != nil {
			artifacts.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
		defer cancel()
		b := &build.Builder{Cache: cache, SystemXZ: true, Status: func(step, msg string) {
			if step != "compile" {
				t.Log(msg)
			}
		}}
		artifacts.art, artifacts.err = b.BuildSpec(ctx, &build.Fetcher{Cache: cache}, spec, build.FetchOptions{},
			build.SpecBuild{Roles: build.Roles, VM: true, Ipvsadm: true, Static: true})
	})
	if artifacts.err != nil {
		t.Fatal(artifacts.err)
	}
	return artifacts.art
}

// derived is deriveSpec for a test: base edited by f, or the test fails.
func derived(t testing.TB, base *cluster.Spec, f func(*cluster.Spec) error) *cluster.Spec {
	t.Helper()
	s, err := deriveSpec(base, f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// plannedNetwork is planNetwork for a test: s's network, or the test fails.
func plannedNetwork(t testing.TB, s *cluster.Spec) *netPlan {
	t.Helper()
	p, err := planNetwork(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
