// Package roles decides what each host of a cluster gets: which files (with
// their modes), which kernel profile, which sysctls, which daemons must be
// enabled or restarted when a file changes. A director and a real server are
// described here; the templates package only lays the values out.
package roles

import (
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/ipvs"
	"github.com/lvsforge/lvsforge/templates"
)

// HostFiles is everything rendered for one host.
type HostFiles struct {
	Host  cluster.Host
	Files []install.File
	Units []install.Unit
}

// Render renders every host of the spec, in spec order, each host's files
// sorted by path. It reads the heartbeat secret, so it fails if that is missing.
func Render(s *cluster.Spec) ([]HostFiles, error) { return RenderDrained(s, nil) }

// RenderDrained renders the spec with real servers drained (lvsforge
// drain): the directors' checkers get weight 0 for them, and their record
// of the drains (install.DrainsFile) lists them, so that the next push,
// which reads it back, keeps them.
func RenderDrained(s *cluster.Spec, drains []ipvs.Drain) ([]HostFiles, error) {
	var out []HostFiles
	var secret string
	if s.HA.Backend == cluster.BackendHeartbeat {
		var err error
		if secret, err = s.Secret(); err != nil {
			return nil, fmt.Errorf("read authkey: %w", err)
		}
	}
	t := ipvs.Build(s).Drained(drains)
	for i := range s.Hosts {
		h := &s.Hosts[i]
		r := &renderer{s: s, t: t, drains: drains, h: h, secret: secret}
		var err error
		switch h.Role {
		case cluster.RoleDirector:
			err = r.director()
		case cluster.RoleRealServer:
			err = r.realServer()
		}
		if err == nil {
			err = r.grub()
		}
		if err != nil {
			return nil, fmt.Errorf("render host %s: %w", h.Name, err)
		}
		sort.Slice(r.out.Files, func(a, b int) bool { return r.out.Files[a].Path < r.out.Files[b].Path })
		r.out.Host = *h
		out = append(out, r.out)
	}
	return out, nil
}

// renderer accumulates one host's files.
type renderer struct {
	s *cluster.Spec
	// t is the IPVS table every host's files encode a part of.
	t      *ipvs.Table
	drains []ipvs.Drain
	h      *cluster.Host
	secret string
	out    HostFiles
}

func (r *renderer) add(path string, mode fs.FileMode, tmpl string, data any, units ...string) error {
	b, err := templates.Render(tmpl, data)
	if err != nil {
		return err
	}
	r.out.Files = append(r.out.Files, install.File{Path: path, Mode: mode, Data: b, Units: units})
	return nil
}

// initScript places an init script and, on systemd hosts, its unit, and
// records the unit with the commands that enable and restart it. A script
// that reloads (re-applies its settings without a stop) is reloaded, or
// started, when its files change, never stopped.
func (r *renderer) initScript(name, tmpl string, data any, description, before string, reload bool) error {
	unit := install.Unit{Name: name}
	if r.h.Init == cluster.InitSystemd {
		script := "/usr/local/sbin/" + name
		if err := r.add(script, 0o755, tmpl, data, name); err != nil {
			return err
		}
		path := "/etc/systemd/system/" + name + ".service"
		if err := r.add(path, 0o644, "unit.service.tmpl", map[string]any{
			"Path": path, "Host": r.h.Name, "Cluster": r.s.Metadata.Name,
			"Description": description, "Before": before, "Script": script, "Reload": reload,
		}, name); err != nil {
			return err
		}
		// A changed file runs Enable, then Restart: one daemon-reload there
		// covers both.
		unit.Enable = [][]string{{"systemctl", "daemon-reload"}, enableSystemd(name)}
		unit.Restart = [][]string{{"systemctl", "restart", name + ".service"}}
		if reload {
			unit.Restart = [][]string{{"systemctl", "reload-or-restart", name + ".service"}}
		}
	} else {
		if err := r.add("/etc/init.d/"+name, 0o755, tmpl, data, name); err != nil {
			return err
		}
		unit.Enable = enableSysV(r.h.OS, name)
		unit.Restart = [][]string{{"/etc/init.d/" + name, "restart"}}
		unit.OnSystemd = sysvOnSystemd(r.h.OS, name, "restart", false)
		if reload {
			unit.Restart = [][]string{{"/etc/init.d/" + name, "reload"}}
			unit.OnSystemd = sysvOnSystemd(r.h.OS, name, "reload-or-restart", false)
		}
	}
	r.out.Units = append(r.out.Units, unit)
	return nil
}

// enableSystemd enables a unit unless it already is: `systemctl enable` of a
// unit with a SysV script beside it (heartbeat) runs update-rc.d, seconds on
// a small host, on every push otherwise. --no-reload: enabling only links
// the unit for the next boot, and a unit lvsforge has just written was
// loaded by the daemon-reload before it; the implicit reload would be a
// second one.
func enableSystemd(name string) []string {
	return []string{"sh", "-c", "systemctl is-enabled -q " + name + ".service || systemctl --no-reload enable " + name + ".service"}
}

func enableSysV(osFamily, name string) [][]string {
	if osFamily == cluster.OSRedHat {
		return [][]string{{"chkconfig", "--add", name}, {"chkconfig", name, "on"}}
	}
	return [][]string{{"update-rc.d", name, "defaults"}}
}

// sysvOnSystemd manages the SysV script name on a host running systemd
// (Unit.OnSystemd): enabled as the host's own tools do (the rc links
// systemd-sysv-generator turns into the unit's boot order), then
// daemon-reload, so that the unit of a new or changed script exists, then
// systemctl restart (verb) and, with reload, reload-or-restart.
func sysvOnSystemd(osFamily, name, verb string, reload bool) *install.Commands {
	c := &install.Commands{
		Enable:  append(enableSysV(osFamily, name), []string{"systemctl", "daemon-reload"}),
		Restart: [][]string{{"systemctl", verb, name + ".service"}},
	}
	if reload {
		c.Reload = [][]string{{"systemctl", "reload-or-restart", name + ".service"}}
	}
	return c
}

// daemon records a packaged daemon (heartbeat, ldirectord, keepalived)
// the host runs, enabled at boot, and returns it. One that reloads
// (re-reads its config without a stop) gets a Reload too, and the caller
// sets its Fingerprint: what that reload cannot apply.
func (r *renderer) daemon(name string, reload bool) *install.Unit {
	u := install.Unit{Name: name}
	if r.h.Init == cluster.InitSystemd {
		u.Enable = [][]string{enableSystemd(name)}
		u.Restart = [][]string{{"systemctl", "restart", name + ".service"}}
		if reload {
			u.Reload = [][]string{{"systemctl", "reload-or-restart", name + ".service"}}
		}
	} else {
		u.Enable = enableSysV(r.h.OS, name)
		u.Restart = [][]string{{"/etc/init.d/" + name, "restart"}}
		if reload {
			u.Reload = [][]string{{"/etc/init.d/" + name, "reload"}}
		}
		u.OnSystemd = sysvOnSystemd(r.h.OS, name, "restart", reload)
	}
	r.out.Units = append(r.out.Units, u)
	return &r.out.Units[len(r.out.Units)-1]
}

// ModulesLoadPath is the modules-load.d drop-in that loads, at boot, the
// modules whose settings the sysctl drop-in holds.
const ModulesLoadPath = "/etc/modules-load.d/lvsforge.conf"

func (r *renderer) modulesLoad(why string, modules []string) error {
	return r.add(ModulesLoadPath, 0o644, "sysctl.conf.tmpl", map[string]any{
		"Path": ModulesLoadPath, "Why": why, "Host": r.h.Name, "Cluster": r.s.Metadata.Name, "Lines": modules, "Optional": false,
	}, "sysctl")
}

// sysctl writes a sysctl.d drop-in and the unit that applies it, after
// loading the modules whose settings it holds.
func (r *renderer) sysctl(path, why string, lines []string, modules ...string) error {
	optional := false
	for _, l := range lines {
		optional = optional || strings.HasPrefix(l, "-")
	}
	if err := r.add(path, 0o644, "sysctl.conf.tmpl", map[string]any{
		"Path": path, "Why": why, "Host": r.h.Name, "Cluster": r.s.Metadata.Name, "Lines": lines, "Optional": optional,
	}, "sysctl"); err != nil {
		return err
	}
	var restart [][]string
	for _, m := range modules {
		restart = append(restart, []string{"modprobe", m})
	}
	r.out.Units = append(r.out.Units, install.Unit{Name: "sysctl", Restart: append(restart, []string{"sysctl", "-q", "-p", path})})
	return nil
}

// grub renders both GRUB flavours' entries for the host's role kernel.
func (r *renderer) grub() error {
	rk, _ := r.s.Kernel.ForRole(r.h.Role)
	data := map[string]any{
		"Host": r.h.Name, "Cluster": r.s.Metadata.Name, "Role": r.h.Role,
		"LocalVersion": rk.LocalVersion, "Release": r.s.Release(r.h.Role),
		"Root": r.h.Boot.Root, "GrubRoot": r.h.Boot.GrubRoot, "Panic": r.s.Kernel.PanicTimeout,
		"Cmdline": r.s.Kernel.Cmdline, "Path": install.GrubLegacyPath, "KernelDir": install.KernelDir,
	}
	n := len(r.out.Files)
	if err := r.add(install.Grub2Path, 0o755, "grub2.sh.tmpl", data); err != nil {
		return err
	}
	if r.h.OS == cluster.OSDebian {
		if err := r.add(install.GrubDefaultPath, 0o644, "grub-default.cfg.tmpl", map[string]any{
			"Path": install.GrubDefaultPath, "Host": r.h.Name, "Cluster": r.s.Metadata.Name,
		}); err != nil {
			return err
		}
	}
	if err := r.add(install.GrubLegacyPath, 0o644, "grub-legacy.conf.tmpl", data); err != nil {
		return err
	}
	for i := n; i < len(r.out.Files); i++ {
		r.out.Files[i].Boot = true
	}
	return nil
}

// Paths of the rendered files the tests look for.
const (
	AuthkeysPath   = "/etc/ha.d/authkeys"
	LdirectordPath = "/etc/ha.d/ldirectord.cf"
)

// methodsOf describes the forwarding methods of services, for script headers.
func methodsOf(svcs ...ipvs.Service) string {
	var names []string
	for _, sv := range svcs {
		if n := methodName[sv.Method]; !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

var methodName = map[ipvs.Method]string{ipvs.Route: "LVS-DR", ipvs.Tunnel: "LVS-TUN", ipvs.Masq: "LVS-NAT"}
