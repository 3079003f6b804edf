package deploy

import (
	"fmt"

	"github.com/lvsforge/lvsforge/install"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/roles"
)

// IpvsadmPath is where push installs the ipvsadm lvsforge built on a host
// that has none: elsewhere it replaces the host's own, wherever `command -v
// ipvsadm` finds it (the rendered scripts run ipvsadm from PATH). On
// merged-/usr systems (Debian 12, RHEL 7 and later) that is this file and
// /sbin/ipvsadm alike; on older ones, with /sbin apart, the distro's
// /sbin/ipvsadm is the one ldirectord runs, and it is the one replaced.
const IpvsadmPath = "/usr/sbin/ipvsadm"

// FromSpec renders the spec and turns the files and units of the selected
// hosts into push inputs, each with how it is reached (spec first, then
// ssh_config). `lvsforge push` and the VM tests both start here, so the VMs
// get exactly what a real host gets.
func FromSpec(s *cluster.Spec, selected []*cluster.Host, sc *SSHConfig) ([]Host, error) {
	rendered, err := roles.Render(s)
	if err != nil {
		return nil, err
	}
	byName := map[string]roles.HostFiles{}
	for _, r := range rendered {
		byName[r.Host.Name] = r
	}
	var hosts []Host
	for _, h := range selected {
		t, err := SpecTarget(s, h, sc)
		if err != nil {
			return nil, err
		}
		r, ok := byName[h.Name]
		if !ok {
			return nil, fmt.Errorf("push %s: not a host of the spec", h.Name)
		}
		hosts = append(hosts, Host{Target: t, Init: h.Init, Files: r.Files, Units: r.Units})
	}
	return hosts, nil
}

// SpecTarget is ResolveTarget for a host of spec s: its ssh.key is found
// as the spec finds every file it names (relative to the spec's directory,
// where validation looked for it), not in the working directory.
func SpecTarget(s *cluster.Spec, h *cluster.Host, sc *SSHConfig) (Target, error) {
	hc := *h
	hc.SSH.Key = s.SSHKeyFile(h)
	return ResolveTarget(hc, sc)
}

// AddIpvsadm installs the ipvsadm binary at path (a `lvsforge build
// ipvsadm` artifact) on every director among hosts, over the host's own
// ipvsadm, or as IpvsadmPath.
func AddIpvsadm(s *cluster.Spec, hosts []Host, path string) error {
	art, err := install.OpenArtifact(path)
	if err != nil {
		return err
	}
	for i := range hosts {
		if h := s.Host(hosts[i].Target.Name); h != nil && h.Role == cluster.RoleDirector {
			hosts[i].Files = append(hosts[i].Files, install.File{Path: IpvsadmPath, Locate: "ipvsadm", Mode: 0o755, Artifact: art})
		}
	}
	return nil
}
