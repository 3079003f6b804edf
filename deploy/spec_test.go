package deploy_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/clustertest"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// exampleHosts renders the built-in example, its hosts at the given init
// system, and returns the push inputs of the named hosts, each pointed at
// a test host of e that takes its name (uname -n), in order.
func exampleHosts(t *testing.T, e *env, init string, names ...string) (*cluster.Spec, []deploy.Host) {
	t.Helper()
	spec := clustertest.Example(t)
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
	want := []string{install.GrubDefaultPath, install.Grub2Path, install.GrubLegacyPath}
	if fmt.Sprint(boot) != fmt.Sprint(want) {
		t.Fatalf("boot files %v, want %v", boot, want)
	}
	grubHost(t, e.c.Hosts[0])
	o := e.opts
	o.DryRun = true
	for _, kernel := range []bool{false, true} {
		hosts[0].Kernel = nil
		if kernel {
			k, err := deploy.LoadKernel(kernelBuild(t, spec.Release(cluster.RoleRealServer)))
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

// fakeSystemctl stands in for systemctl on a test host that presents
// itself as running systemd (/run/systemd/system): it records its
// arguments.
const fakeSystemctl = "#!/bin/sh\necho \"systemctl $*\" >> /var/log/lvsforge-test-systemctl\n"

// TestSysVOnSystemdHost: a real server the spec runs at `init: sysv` on a
// host whose PID 1 is systemd is pushed, not refused: its script is
// enabled with the host's update-rc.d (the real one), systemd is told of
// the new unit (daemon-reload) and restarts it.
func TestSysVOnSystemdHost(t *testing.T) {
	testenv.LookPath(t, "update-rc.d", "init-system-helpers")
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	_, hosts := exampleHosts(t, e, cluster.InitSysV, "rs1")
	script := "mkdir -p /run/systemd/system /usr/local/sbin && cat > /usr/local/sbin/systemctl && chmod 0755 /usr/local/sbin/systemctl"
	if _, err := h.ExecInput(strings.NewReader(fakeSystemctl), "sh", "-c", script); err != nil {
		t.Fatal(err)
	}
	r := mustPush(t, hosts, e.opts)
	plan := strings.Join(r.Hosts[0].Plan, "\n")
	t.Logf("plan:\n%s", plan)
	if r.Hosts[0].Init != cluster.InitSystemd {
		t.Fatalf("the host's init is %q, want systemd", r.Hosts[0].Init)
	}
	for _, want := range []string{
		"write /etc/init.d/lvs-realserver mode 0755",
		"enable lvs-realserver: update-rc.d lvs-realserver defaults",
		"enable lvs-realserver: systemctl daemon-reload",
		"restart lvs-realserver: systemctl restart lvs-realserver.service",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if strings.Contains(plan, "/etc/init.d/lvs-realserver restart") || strings.Contains(plan, "/etc/systemd/system/") {
		t.Errorf("systemd host got sysvinit's restart or a systemd unit file")
	}
	if links, _ := filepath.Glob(h.Path("/etc/rc2.d/S??lvs-realserver")); len(links) != 1 {
		t.Errorf("update-rc.d made no start link in /etc/rc2.d: %v", links)
	}
	// update-rc.d reloads systemd itself where it runs; lvsforge does so
	// on Red Hat's chkconfig too, then restarts the generated unit.
	if got := readHost(t, h, "/var/log/lvsforge-test-systemctl"); !strings.HasSuffix(got, "systemctl daemon-reload\nsystemctl restart lvs-realserver.service\n") {
		t.Errorf("systemctl calls:\n%s", got)
	}
}

// TestFromSpecFindsTheKeyBesideTheSpec: a relative ssh.key is the file
// beside the spec, where validation looked for it, not one in whatever
// directory push runs from.
func TestFromSpecFindsTheKeyBesideTheSpec(t *testing.T) {
	s := clustertest.Example(t)
	rs1 := s.Host("rs1")
	rs1.SSH.Key = "keys/rs1"
	hosts, err := deploy.FromSpec(s, []*cluster.Host{rs1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(s.Dir, "keys", "rs1")}; !slices.Equal(hosts[0].Target.KeyFiles, want) {
		t.Errorf("key files %v, want %v", hosts[0].Target.KeyFiles, want)
	}
}
