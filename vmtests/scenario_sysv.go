package vmtests

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
)

// A spec's `init: sysv` on a real host: the keepalived scenarios run their
// last real server at init: sysv, on a VM that boots sysvinit (the image
// with sysvinit-core, see guestimage), so that push's SysV path (an init.d
// script enabled by update-rc.d) runs where it is meant to. Those scenarios
// boot a cluster of their own anyway (another HA backend): the sysvinit
// host costs no boot of its own.

// sysvRealServer puts s's last real server at init: sysv.
func sysvRealServer(s *cluster.Spec) {
	if rss := s.HostsByRole(cluster.RoleRealServer); len(rss) > 0 {
		rss[len(rss)-1].Init = cluster.InitSysV
	}
}

// runSysVHosts checks each real server at init: sysv: its VM runs sysvinit;
// push enabled the script the sysvinit way, with rc links in the runlevels
// its LSB header names; after a power cycle the script is running with
// nothing but init to have started it; the script's own checks pass; and
// the host takes its share of the requests.
func runSysVHosts(ctx context.Context, r *Run) error {
	var hosts []*cluster.Host
	for _, h := range r.Spec.HostsByRole(cluster.RoleRealServer) {
		if h.Init == cluster.InitSysV {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		r.Logf("no real server at init: sysv: nothing to check")
		return nil
	}
	start := time.Now()
	for _, h := range hosts {
		if err := checkSysVHost(ctx, r, h); err != nil {
			return err
		}
	}
	if err := trafficCheck(ctx, r, 20, netip.Addr{}); err != nil {
		return err
	}
	r.Figure("init: sysv checks", time.Since(start).Seconds(), "s")
	return nil
}

func checkSysVHost(ctx context.Context, r *Run, h *cluster.Host) error {
	script := rsScriptPath(h)
	name := path.Base(script)
	// The same test as push's facts, and init's own binary.
	out, err := r.C.Exec(ctx, h.Name, "readlink /proc/1/exe; if [ -d /run/systemd/system ]; then echo systemd is running; fi")
	if err != nil {
		return err
	}
	if f := strings.Fields(out); len(f) != 1 || path.Base(f[0]) != "init" {
		r.Errorf("%s: PID 1 is %q, want sysvinit's init", h.Name, strings.TrimSpace(out))
	}
	header, err := r.C.Exec(ctx, h.Name, "sed -n '/^### BEGIN INIT INFO/,/^### END INIT INFO/p' "+script)
	if err != nil {
		return err
	}
	links, err := r.C.Exec(ctx, h.Name, fmt.Sprintf(`for f in /etc/rc?.d/[SK][0-9][0-9]%s; do if [ -L "$f" ]; then echo "$f $(readlink "$f")"; fi; done`, name))
	if err != nil {
		return err
	}
	for _, p := range rcLinkProblems(header, links, name) {
		r.Errorf("%s: %s", h.Name, p)
	}

	// After a power cycle, nothing but init has run the script: it runs,
	// and the VIPs and sysctls are what its start sets.
	t := time.Now()
	if err := r.C.PowerOff(ctx, h.Name); err != nil {
		return err
	}
	if err := r.C.PowerOn(ctx, h.Name); err != nil {
		return err
	}
	r.Figure(h.Name+" power cycle, sysvinit boot", time.Since(t).Seconds(), "s")
	if out, err := r.C.Exec(ctx, h.Name, script+" status"); err != nil {
		r.Errorf("%s: after a boot, %s status: %v %s: its rc links did not start it", h.Name, script, err, out)
	}
	if h.KernelProfile == cluster.ProfileModern {
		if err := checkRSHolds(ctx, r, h, "after a boot"); err != nil {
			return err
		}
	}
	// Back in the table: the test applications (the boot lost them) and
	// the directors' next checks.
	if err := r.C.startServicesOn(ctx, r.Spec, h); err != nil {
		return err
	}
	for _, sv := range servicesOf(r.Spec, h) {
		if kindOf(sv) == "" {
			continue
		}
		active, err := r.C.ActiveDirector(ctx, sv.VIP)
		if err != nil {
			return err
		}
		want := weightOf(r.Spec, h, sv)
		if _, err := r.C.waitTable(ctx, active, sv, checkLimit(r.Spec), fmt.Sprintf("%s in at weight %d", h.Name, want), func(tab map[string]int) bool {
			w, ok := tab[h.Name]
			return ok && w == want
		}); err != nil {
			return err
		}
	}
	return checkRSScript(ctx, r, h)
}

// rcLinkProblems compares the rc links of init script name (lines "LINK
// TARGET", as the loop in checkSysVHost prints them) with its LSB header:
// a start link in each Default-Start runlevel, a stop link in each
// Default-Stop one, none elsewhere, each pointing at the script.
func rcLinkProblems(header, links, name string) []string {
	want := map[string]byte{}
	for _, l := range strings.Split(header, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(l, "#"))
		key, val, _ := strings.Cut(l, ":")
		kind := map[string]byte{"Default-Start": 'S', "Default-Stop": 'K'}[key]
		for _, lvl := range strings.Fields(val) {
			if kind != 0 {
				want[lvl] = kind
			}
		}
	}
	var problems []string
	if len(want) == 0 {
		problems = append(problems, "its LSB header names no runlevel:\n"+header)
	}
	got := map[string]byte{}
	for _, l := range strings.Split(strings.TrimSpace(links), "\n") {
		link, target, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		dir, base := path.Split(link) // /etc/rc2.d/, S01name
		lvl := strings.TrimSuffix(strings.TrimPrefix(dir, "/etc/rc"), ".d/")
		got[lvl] = base[0]
		if path.Base(target) != name || !strings.HasPrefix(target, "../init.d/") && target != "/etc/init.d/"+name {
			problems = append(problems, fmt.Sprintf("%s points at %s, want /etc/init.d/%s", link, target, name))
		}
	}
	var levels []string
	for lvl := range want {
		levels = append(levels, lvl)
	}
	for lvl := range got {
		if _, ok := want[lvl]; !ok {
			levels = append(levels, lvl)
		}
	}
	slices.Sort(levels)
	for _, lvl := range levels {
		switch w, g := want[lvl], got[lvl]; {
		case g == 0:
			problems = append(problems, fmt.Sprintf("no %c link of %s in /etc/rc%s.d (update-rc.d did not enable it there)", w, name, lvl))
		case w == 0:
			problems = append(problems, fmt.Sprintf("a %c link of %s in /etc/rc%s.d, a runlevel its header does not name", g, name, lvl))
		case g != w:
			problems = append(problems, fmt.Sprintf("a %c link of %s in /etc/rc%s.d, want %c", g, name, lvl, w))
		}
	}
	return problems
}
