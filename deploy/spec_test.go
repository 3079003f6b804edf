package deploy_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/roles"
)

// exampleSpec is the built-in example with a fresh authkey.
func exampleSpec(t *testing.T) *cluster.Spec {
	t.Helper()
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	spec, err := cluster.Example(cluster.KernelOrgSource(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// exampleHosts renders the built-in example, its hosts at the given init
// system, and returns the push inputs of the named hosts, each pointed at
// a test host of e that takes its name (uname -n), in order.
func exampleHosts(t *testing.T, e *env, init string, names ...string) (*cluster.Spec, []deploy.Host) {
	t.Helper()
	spec := exampleSpec(t)
	var selected []*cluster.Host
	for i, name := range names {
		h := spec.Host(name)
		if h == nil {
			t.Fatalf("the example has no host %s", name)
		}
		th := e.c.Hosts[i]
		if err := th.SetHostname(name); err != nil {
			t.Fatal(err)
		}
		h.Init = init
		h.SSH = cluster.SSH{User: "root", Address: th.Addr, Port: 22, Key: e.c.ClientKeyFile}
		selected = append(selected, h)
	}
	hosts, err := deploy.FromSpec(spec, selected, nil)
	if err != nil {
		t.Fatal(err)
	}
	return spec, hosts
}

// TestBootFilesOnlyWithKernel: GRUB's configuration (the files roles marks
// as boot files) is left alone by a push without --kernel and written by
// one with it, which then regenerates grub.cfg.
func TestBootFilesOnlyWithKernel(t *testing.T) {
	e := newEnv(t, 1)
	spec, hosts := exampleHosts(t, e, cluster.InitSysV, "rs1")
	var boot []string
	for _, f := range hosts[0].Files {
		if f.Boot {
			boot = append(boot, f.Path)
		}
	}
	want := []string{roles.GrubDefaultPath, roles.Grub2Path, roles.GrubLegacyPath}
	if fmt.Sprint(boot) != fmt.Sprint(want) {
		t.Fatalf("boot files %v, want %v", boot, want)
	}
	grubHost(t, e.c.Hosts[0])
	o := e.opts
	o.DryRun = true
	for _, kernel := range []bool{false, true} {
		hosts[0].Kernel = nil
		if kernel {
			k, err := deploy.LoadKernel(kernelBuild(t, roles.Release(spec, cluster.RoleRealServer)))
			if err != nil {
				t.Fatal(err)
			}
			hosts[0].Kernel = k
		}
		plan := mustPush(t, hosts, o).Hosts[0].Plan
		var written []string
		for _, op := range plan {
			for _, p := range want {
				if strings.HasPrefix(op, "write "+p+" ") {
					written = append(written, p)
				}
			}
		}
		if kernel && (!slices.Equal(written, want) || !slices.Contains(plan, "run update-grub")) {
			t.Errorf("push --kernel writes boot files %v, want %v and update-grub:\n%s", written, want, strings.Join(plan, "\n"))
		}
		if !kernel && (len(written) > 0 || len(plan) == 0) {
			t.Errorf("push without --kernel writes boot files %v:\n%s", written, strings.Join(plan, "\n"))
		}
	}
}
