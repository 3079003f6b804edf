package vmtests

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// The part-1 scenarios: the cluster serves traffic through the VIP.
var (
	seedDR = &Scenario{
		Name: "seed-dr",
		Doc:  "the spec as given (the seed's LVS-DR cluster by default): 200 requests split as its scheduler and weights say; every service answers through its VIP; every director's IPVS table is the rendered one (the standby keeps it too)",
		Run: func(ctx context.Context, r *Run) error {
			if err := trafficCheck(ctx, r, 200, netip.Addr{}); err != nil {
				return err
			}
			return checkTables(ctx, r)
		},
	}
	arpScenario = &Scenario{
		Name: "arp",
		Doc:  "for the whole run no real server answers ARP for a VIP (seen on the switch), and the client's neighbour entry for each VIP is the active director's MAC",
		Run:  runARP,
	}
	rsScript = &Scenario{
		Name: "rs-script",
		Doc:  "each real server's rendered init script, started twice, holds each VIP once with ARP suppressed; stop removes the VIPs and restores the sysctls it changed",
		Run:  runRSScript,
	}
	wrrScenario = &Scenario{
		Name: "wrr",
		Doc:  "scheduler wrr with weights 3:1 (3 for each service's first real server, 1 for the others) splits 200 requests 150/50 within 5 %; then scheduler sh sends each of 8 client addresses to one server",
		Spec: func(s *cluster.Spec) error {
			for i := range s.Services {
				s.Services[i].Scheduler = "wrr"
				s.Services[i].Persistence = nil
			}
			for i, sv := range s.Services {
				for j, rs := range s.RealServers(&s.Services[i]) {
					w := 1
					if j == 0 {
						w = 3
					}
					setWeight(s, rs.Name, sv.Name, w)
				}
			}
			return nil
		},
		Run: runWRR,
	}
	tunScenario = &Scenario{
		Name: "tun",
		Doc:  "every service forwarded by LVS-TUN (ipip; the VIP on tunl0 of the real servers): the same traffic and table checks",
		Spec: func(s *cluster.Spec) error {
			for i := range s.Services {
				s.Services[i].Forwarding = cluster.ForwardTUN
				s.Services[i].RealPort = s.Services[i].Port
			}
			return nil
		},
		Run: func(ctx context.Context, r *Run) error {
			for _, rs := range r.Spec.HostsByRole(cluster.RoleRealServer) {
				out, err := r.C.Exec(ctx, rs.Name, "ip -o addr show dev tunl0")
				if err != nil {
					return err
				}
				for _, sv := range r.Spec.ServicesOf(rs) {
					if !holdsAddr(out, sv.VIP) {
						r.Errorf("%s: tunl0 does not hold %s:\n%s", rs.Name, sv.VIP, out)
					}
				}
			}
			if err := trafficCheck(ctx, r, 200, netip.Addr{}); err != nil {
				return err
			}
			return checkTables(ctx, r)
		},
	}
	natScenario = &Scenario{
		Name: "nat",
		Doc:  "every service forwarded by LVS-NAT: the active director holds a floating gateway the real servers route through, forwards, and the client sits beyond the router; the same traffic and table checks",
		Spec: natSpec,
		Run: func(ctx context.Context, r *Run) error {
			active, err := r.C.ActiveDirector(ctx, r.Spec.Services[0].VIP)
			if err != nil {
				return err
			}
			if out, err := r.C.Exec(ctx, active, "cat /proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(out) != "1" {
				r.Errorf("ip_forward on %s is %q (%v), want 1", active, strings.TrimSpace(out), err)
			}
			if err := trafficCheck(ctx, r, 200, netip.Addr{}); err != nil {
				return err
			}
			return checkTables(ctx, r)
		},
	}
)

// setWeight gives real server rs weight w for service sv; a real server
// that had no weights served every service with weight 1 and keeps doing so.
func setWeight(s *cluster.Spec, rs, sv string, w int) {
	h := s.Host(rs)
	if len(h.Weights) == 0 {
		h.Weights = map[string]int{}
		for _, other := range s.Services {
			h.Weights[other.Name] = 1
		}
	}
	h.Weights[sv] = w
}

// checkTables compares every running director's IPVS table with the
// rendered rules: the active one's, and the standby's, which keeps the
// table too (heartbeat's hot standby, keepalived on every node), so that a
// takeover has nothing to load.
func checkTables(ctx context.Context, r *Run) error {
	if _, err := r.C.ActiveDirector(ctx, r.Spec.Services[0].VIP); err != nil {
		return err
	}
	for _, d := range r.Spec.HostsByRole(cluster.RoleDirector) {
		if err := r.C.CheckRules(ctx, d.Name, r.Spec); err != nil {
			r.Errorf("%v", err)
		}
	}
	return nil
}

func runARP(ctx context.Context, r *Run) error {
	directors := map[string]string{}
	rss := map[string]string{}
	for _, h := range r.Spec.Hosts {
		m := r.C.Nodes[h.Name].MAC
		if h.Role == cluster.RoleDirector {
			directors[m] = h.Name
		} else {
			rss[m] = h.Name
		}
	}
	for _, vip := range r.Spec.VIPs() {
		active, err := r.C.ActiveDirector(ctx, vip)
		if err != nil {
			return err
		}
		// One request, so that the client has a fresh neighbour entry.
		for _, sv := range checkedServices(r.Spec) {
			if sv.VIP == vip {
				if _, err := r.C.Requests(ctx, sv, 1, netip.Addr{}); err != nil {
					return err
				}
				break
			}
		}
		repliers := r.C.LAN.ARPRepliers(0, netip.MustParseAddr(vip))
		var names []string
		for _, m := range repliers {
			if rs, ok := rss[m.String()]; ok {
				r.Errorf("real server %s (%s) answered ARP for the VIP %s", rs, m, vip)
			}
			if d, ok := directors[m.String()]; ok {
				names = append(names, d)
			} else if _, ok := rss[m.String()]; !ok {
				r.Errorf("%s, not a cluster host, answered ARP for the VIP %s", m, vip)
			}
		}
		r.Figure("ARP repliers for "+vip, float64(len(repliers)), "")
		if len(names) == 0 {
			r.Errorf("no director's ARP reply for %s crossed the switch", vip)
		}
		out, err := r.C.ClientRun(ctx, "ip neigh show "+vip)
		if err != nil {
			return err
		}
		want := r.C.Nodes[active].MAC
		if !strings.Contains(out, "lladdr "+want) {
			r.Errorf("the client's neighbour entry for %s is %q, want the active director %s's %s", vip, strings.TrimSpace(out), active, want)
		}
		r.Logf("ARP for %s answered by %s; client neighbour %s", vip, strings.Join(names, ", "), strings.TrimSpace(out))
	}
	return nil
}

// rsScriptPath is where push installs the real-server script.
func rsScriptPath(h *cluster.Host) string {
	if h.Init == cluster.InitSystemd {
		return "/usr/local/sbin/lvs-realserver"
	}
	return "/etc/init.d/lvs-realserver"
}

// arpKeys are the sysctls the real-server script changes on the modern
// profile for interface iface.
func arpKeys(iface string) []string {
	return []string{
		"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_announce",
		"net/ipv4/conf/" + iface + "/arp_ignore", "net/ipv4/conf/" + iface + "/arp_announce",
	}
}

func readSysctls(ctx context.Context, c *Cluster, host string, keys []string) (map[string]string, error) {
	var cmd []string
	for _, k := range keys {
		cmd = append(cmd, "echo \""+k+" $(cat /proc/sys/"+k+")\"")
	}
	out, err := c.Exec(ctx, host, strings.Join(cmd, "; "))
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	return got, nil
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
	for _, sv := range r.Spec.ServicesOf(h) {
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
	if forwardingOf(r.Spec, h) == cluster.ForwardNAT {
		return nil
	}
	vipDev := "lo"
	if forwardingOf(r.Spec, h) == cluster.ForwardTUN {
		vipDev = "tunl0"
	}
	out, err := r.C.Exec(ctx, h.Name, "ip -o -4 addr show dev "+vipDev)
	if err != nil {
		return err
	}
	for _, sv := range r.Spec.ServicesOf(h) {
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

// forwardingOf is the forwarding method of the services real server h
// serves (the validator keeps them consistent per host).
func forwardingOf(s *cluster.Spec, h *cluster.Host) string {
	for _, sv := range s.ServicesOf(h) {
		return sv.Forwarding
	}
	return ""
}

func runWRR(ctx context.Context, r *Run) error {
	if err := trafficCheck(ctx, r, 200, netip.Addr{}); err != nil {
		return err
	}
	// Then sh: each client address always reaches one server.
	sh, err := deriveSpec(r.Spec, func(s *cluster.Spec) error {
		for i := range s.Services {
			s.Services[i].Scheduler = "sh"
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := r.C.Converge(ctx, sh); err != nil {
		return err
	}
	sv := checkedServices(sh)[0]
	servers := map[string]bool{}
	for _, src := range ClientAddrs {
		t, err := r.C.Requests(ctx, sv, 10, src)
		if err != nil {
			return err
		}
		if t.Failed > 0 || len(t.By) != 1 {
			r.Errorf("sh: client %s reached %s, want one server for all 10 requests\nanswers: %s\n%s", src, t, t.Sequence(), r.C.lbState(ctx, sv))
		}
		for n := range t.By {
			servers[n] = true
		}
	}
	r.Figure("sh: servers reached by 8 clients", float64(len(servers)), "")
	return nil
}

// natSpec turns every service into LVS-NAT: the real servers route through
// a floating gateway the active director holds (the lowest free address of
// their subnet, unless the spec has one).
func natSpec(s *cluster.Spec) error {
	for i := range s.Services {
		s.Services[i].Forwarding = cluster.ForwardNAT
	}
	if s.HA.FloatingGateway == "" {
		rs := s.HostsByRole(cluster.RoleRealServer)[0]
		p := rs.Prefix().Masked()
		taken := map[netip.Addr]bool{}
		for _, h := range s.Hosts {
			taken[h.Prefix().Addr()] = true
			if gw, err := netip.ParseAddr(h.Gateway); err == nil {
				taken[gw] = true
			}
		}
		for _, v := range s.VIPs() {
			taken[netip.MustParseAddr(v)] = true
		}
		gw, err := lowFreeAddr(p, taken)
		if err != nil {
			return err
		}
		s.HA.FloatingGateway = netip.PrefixFrom(gw, p.Bits()).String()
	}
	gw := netip.MustParsePrefix(s.HA.FloatingGateway).Addr().String()
	for i := range s.Hosts {
		if s.Hosts[i].Role == cluster.RoleRealServer {
			s.Hosts[i].Gateway = gw
		}
	}
	return nil
}

// lowFreeAddr is the lowest host address of p not taken.
func lowFreeAddr(p netip.Prefix, taken map[netip.Addr]bool) (netip.Addr, error) {
	for a := p.Masked().Addr().Next(); p.Contains(a); a = a.Next() {
		if !taken[a] && !isBroadcast(p, a) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s for a floating gateway", p)
}

func isBroadcast(p netip.Prefix, a netip.Addr) bool {
	return !p.Contains(a.Next()) || a.Next() == (netip.Addr{})
}
