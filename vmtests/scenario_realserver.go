package vmtests

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/ipvs"
)

// The scenarios of the real servers: their script, and one going down.
var (
	rsScript = &Scenario{
		Name: "rs-script",
		Doc:  "each real server's rendered init script, started twice, holds each VIP once with ARP suppressed; stop removes the VIPs and restores the sysctls it changed",
		Run:  runRSScript,
	}
	rsDownScenario = &Scenario{
		Name: "realserver-down",
		Doc:  "the first real server's service stops: the health checks take it out (weight 0 when quiescent, removed otherwise) and every request lands on the others; it restarts and the split returns; detection and recovery times are measured",
		Run:  runRealServerDown,
	}
)

// rsScriptPath is where push installs the real-server script.
func rsScriptPath(h *cluster.Host) string {
	if h.Init == cluster.InitSystemd {
		return "/usr/local/sbin/lvs-realserver"
	}
	return "/etc/init.d/lvs-realserver"
}

func runRSScript(ctx context.Context, r *Run) error {
	for _, h := range r.Spec.HostsByRole(cluster.RoleRealServer) {
		if err := checkRSScript(ctx, r, h); err != nil {
			return err
		}
	}
	return trafficCheck(ctx, r, 20, netip.Addr{})
}

// checkRSScript runs real server h's rendered script: stop, start twice
// (each VIP once, ARP suppressed), status, stop (VIPs gone, sysctls
// restored), status, and start again for what follows.
func checkRSScript(ctx context.Context, r *Run, h *cluster.Host) error {
	if h.KernelProfile != cluster.ProfileModern {
		r.Logf("%s: profile %s: the hidden switches need a patched kernel; not checked", h.Name, h.KernelProfile)
		return nil
	}
	script := rsScriptPath(h)
	keys := arpKeys(h.Interfaces.Public)
	// Stop, then put the kernel defaults back, as on a host that never
	// ran the script: the values stop must restore are then known.
	var reset []string
	for _, k := range keys {
		reset = append(reset, "echo 0 > /proc/sys/"+k)
	}
	if _, err := r.C.Exec(ctx, h.Name, script+" stop && "+strings.Join(reset, " && ")); err != nil {
		return err
	}
	for i := 1; i <= 2; i++ {
		if _, err := r.C.Exec(ctx, h.Name, script+" start"); err != nil {
			r.Errorf("%s: start #%d: %v", h.Name, i, err)
		}
	}
	if err := checkRSHolds(ctx, r, h, "after two starts"); err != nil {
		return err
	}
	if st, err := r.C.Exec(ctx, h.Name, script+" status"); err != nil {
		r.Errorf("%s: status after start: %v %s", h.Name, err, st)
	}
	if _, err := r.C.Exec(ctx, h.Name, script+" stop"); err != nil {
		r.Errorf("%s: stop: %v", h.Name, err)
	}
	out, err := r.C.Exec(ctx, h.Name, "ip -o -4 addr show")
	if err != nil {
		return err
	}
	for _, sv := range servicesOf(r.Spec, h) {
		if holdsAddr(out, sv.VIP) {
			r.Errorf("%s: stop left the VIP %s:\n%s", h.Name, sv.VIP, out)
		}
	}
	got, err := readSysctls(ctx, r.C, h.Name, keys)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if got[k] != "0" {
			r.Errorf("%s: stop left %s = %s, want the 0 it was before start", h.Name, k, got[k])
		}
	}
	if _, err := r.C.Exec(ctx, h.Name, script+" status"); err == nil {
		r.Errorf("%s: status says running after stop", h.Name)
	}
	// Back in service for what follows.
	_, err = r.C.Exec(ctx, h.Name, script+" start")
	return err
}

// checkRSHolds checks what a started real-server script holds on h: each
// of its VIPs once on lo (tunl0 for LVS-TUN) and ARP suppressed by the
// sysctls (LVS-NAT holds neither).
func checkRSHolds(ctx context.Context, r *Run, h *cluster.Host, when string) error {
	if methodOf(r.Spec, h) == ipvs.Masq {
		return nil
	}
	vipDev := "lo"
	if methodOf(r.Spec, h) == ipvs.Tunnel {
		vipDev = "tunl0"
	}
	out, err := r.C.Exec(ctx, h.Name, "ip -o -4 addr show dev "+vipDev)
	if err != nil {
		return err
	}
	for _, sv := range servicesOf(r.Spec, h) {
		if n := strings.Count(out, " "+sv.VIP+"/32 "); n != 1 {
			r.Errorf("%s: %s %s holds %s %d times, want once:\n%s", h.Name, when, vipDev, sv.VIP, n, out)
		}
	}
	keys := arpKeys(h.Interfaces.Public)
	got, err := readSysctls(ctx, r.C, h.Name, keys)
	if err != nil {
		return err
	}
	want := map[string]string{keys[0]: "1", keys[1]: "2", keys[2]: "1", keys[3]: "2"}
	for _, k := range keys {
		if got[k] != want[k] {
			r.Errorf("%s: %s %s = %s, want %s", h.Name, when, k, got[k], want[k])
		}
	}
	return nil
}

// svTable is sv's real servers in a director's live IPVS table, read
// into the model: each one's weight by host name; a real server that is
// not in the table is not in the map.
func (c *Cluster) svTable(ctx context.Context, director string, sv *cluster.Service) (map[string]int, error) {
	vs := virtualOf(c.Spec, sv)
	out, err := c.Exec(ctx, director, "ipvsadm -Ln "+vs.Rule())
	if err != nil {
		return nil, err
	}
	live, err := ipvs.ParseList(out)
	if err != nil {
		return nil, fmt.Errorf("read %s's table on %s: %w", sv.Name, director, err)
	}
	tab := map[string]int{}
	if ls := live.Service(vs.Key); ls != nil {
		for _, d := range vs.Dests {
			if ld := ls.Dest(d.Addr, d.Port); ld != nil {
				tab[d.Host] = ld.Weight
			}
		}
	}
	return tab, nil
}

// waitTable polls sv's table on director until match accepts it, and
// returns how long that took.
func (c *Cluster) waitTable(ctx context.Context, director string, sv *cluster.Service, limit time.Duration, want string, match func(tab map[string]int) bool) (time.Duration, error) {
	var tab map[string]int
	var err error
	d, ok := poll(ctx, limit, 250*time.Millisecond, func(ctx context.Context) bool {
		tab, err = c.svTable(ctx, director, sv)
		return err == nil && match(tab)
	})
	if !ok {
		return 0, fmt.Errorf("%s's table on %s did not become %s within %s (weights now %v, %v)", sv.Name, director, want, limit, tab, err)
	}
	return d, nil
}

// checkLimit bounds a wait for the health checks to change a table: the
// longest check interval plus its timeout, then a minute for a checker
// that starts or reloads on an emulated CPU.
func checkLimit(s *cluster.Spec) time.Duration {
	var longest int
	for _, sv := range s.Services {
		longest = max(longest, sv.Check.Interval+sv.Check.Timeout)
	}
	return time.Duration(longest)*time.Second + time.Minute
}

// rsDownService is the service realserver-down takes a real server out
// of: the first checked HTTP service, else the first checked one.
func rsDownService(s *cluster.Spec) *cluster.Service {
	var first *cluster.Service
	for _, sv := range checkedServices(s) {
		if sv.Check.Type == "off" {
			continue
		}
		if kindOf(sv) == kindHTTP {
			return sv
		}
		if first == nil {
			first = sv
		}
	}
	return first
}

func runRealServerDown(ctx context.Context, r *Run) error {
	sv := rsDownService(r.Spec)
	if sv == nil {
		r.Logf("no service with a health check: nothing to check")
		return nil
	}
	var rss []*cluster.Host
	for _, d := range virtualOf(r.Spec, sv).Dests {
		rss = append(rss, r.Spec.Host(d.Host))
	}
	if len(rss) < 2 {
		r.Logf("%s has one real server: taking it out leaves nothing to check", sv.Name)
		return nil
	}
	rs := rss[0]
	active, err := r.C.ActiveDirector(ctx, sv.VIP)
	if err != nil {
		return err
	}
	quiescent := sv.Quiescent == nil || *sv.Quiescent
	// out: rs is out of the table (weight 0 when quiescent, gone
	// otherwise); in: every other real server is in at its weight.
	out := func(tab map[string]int) bool {
		w, ok := tab[rs.Name]
		if quiescent {
			return ok && w == 0
		}
		return !ok
	}
	in := func(tab map[string]int, hosts []*cluster.Host) bool {
		for _, h := range hosts {
			if w, ok := tab[h.Name]; !ok || w != weightOf(r.Spec, h, sv) {
				return false
			}
		}
		return true
	}
	limit := checkLimit(r.Spec)
	r.Logf("stopping %s on %s", sv.Name, rs.Name)
	if _, err := r.C.Exec(ctx, rs.Name, fmt.Sprintf("%s stop %s %d", guestTestSvc, kindOf(sv), sv.RealPort)); err != nil {
		return err
	}
	detect, err := r.C.waitTable(ctx, active, sv, limit, rs.Name+" out", out)
	if err != nil {
		return err
	}
	r.Figure("detection of "+rs.Name+" down", detect.Seconds(), "s")
	r.Figure("check interval + timeout", float64(sv.Check.Interval+sv.Check.Timeout), "s")
	// Traffic goes out once the table says the others serve: a check of
	// theirs that failed too (a check timeout on a loaded machine) would
	// leave the requests no server, which is not what this checks.
	if d, err := r.C.waitTable(ctx, active, sv, limit, rs.Name+" out and the others in", func(tab map[string]int) bool { return out(tab) && in(tab, rss[1:]) }); err != nil {
		return err
	} else if d > time.Second {
		r.Logf("the other real servers were out of the table too for %.1f s: their health checks failed", d.Seconds())
	}
	t, err := r.C.Requests(ctx, sv, 20, netip.Addr{})
	if err != nil {
		return err
	}
	if t.Failed > 0 || t.By[rs.Name] > 0 {
		r.Errorf("with %s down: %s, want every request answered by the others\nanswers: %s\n%s", rs.Name, t, t.Sequence(), r.C.lbState(ctx, sv))
	}
	r.Logf("%s down: %s", rs.Name, t)

	// Only rs's application comes back: restarting the others' too would
	// take them out of the table for a check.
	if _, err := r.C.Exec(ctx, rs.Name, strings.Join(startCmds(sv), " && ")); err != nil {
		return err
	}
	back, err := r.C.waitTable(ctx, active, sv, limit, "every real server in at its weight", func(tab map[string]int) bool { return in(tab, rss) })
	if err != nil {
		return err
	}
	r.Figure("recovery of "+rs.Name, back.Seconds(), "s")
	t, err = r.C.Requests(ctx, sv, 20, netip.Addr{})
	if err != nil {
		return err
	}
	if msg := expectedSplit(r.Spec, sv, t); msg != "" {
		r.Errorf("after %s came back: %s\nanswers: %s\n%s", rs.Name, msg, t.Sequence(), r.C.lbState(ctx, sv))
	}
	r.Logf("%s back: %s", rs.Name, t)
	return nil
}
