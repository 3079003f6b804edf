package vmtests

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// The scenario of IPv6: the seed's cluster made dual-stack.
var ipv6Scenario = &Scenario{
	Name: "ipv6",
	Doc: "the cluster made dual-stack: every host gains an IPv6 address, and an IPv6 LVS-DR and an IPv6 LVS-TUN (ip6ip6) service serve beside the IPv4 ones, " +
		"with a request every 100 ms to an IPv4 service all the while; the live tables are the model's; no real server answers a neighbour solicitation for an IPv6 VIP (seen on the switch) " +
		"and the client's neighbour entry for it is the active director's MAC; the primary's power-off moves the IPv6 VIP, announced by an unsolicited neighbour advertisement",
	Spec: dualStack,
	Run:  runIPv6,
}

// The IPv6 subnet of the dual-stack cluster (the documentation prefix,
// 2001:db8::/32: it never leaves the VM LAN) and its two VIPs.
const (
	net6    = "2001:db8:7::"
	vip6DR  = net6 + "110"
	vip6TUN = net6 + "111"
)

// dualStack gives every host an IPv6 address beside its IPv4 one (the same
// last digits: linuxha1's 192.168.7.9 is 2001:db8:7::9) and adds an IPv6
// copy of the first HTTP service twice: by LVS-DR (http6) and by LVS-TUN
// (tun6), served by every real server.
func dualStack(s *cluster.Spec) error {
	var base *cluster.Service
	for i := range s.Services {
		if kindOf(&s.Services[i]) == kindHTTP {
			base = &s.Services[i]
			break
		}
	}
	if base == nil {
		return fmt.Errorf("make the spec dual-stack: it has no HTTP service to copy")
	}
	dr, tun := *base, *base
	dr.Name, dr.VIP = "http6", vip6DR
	tun.Name, tun.VIP, tun.Forwarding, tun.RealPort, tun.Tunnel = "tun6", vip6TUN, cluster.ForwardTUN, base.Port, nil
	s.Services = append(s.Services, dr, tun)
	for i := range s.Hosts {
		h := &s.Hosts[i]
		a := h.Prefix().Addr()
		if !a.Is4() {
			return fmt.Errorf("make the spec dual-stack: %s's address %s is not IPv4", h.Name, a)
		}
		h.Address6 = fmt.Sprintf("%s%d/64", net6, a.As4()[3])
		if h.Role == cluster.RoleRealServer && h.Weights != nil {
			h.Weights[dr.Name], h.Weights[tun.Name] = 1, 1
		}
	}
	return nil
}

func runIPv6(ctx context.Context, r *Run) error {
	var v4, v6 []*cluster.Service
	for _, sv := range checkedServices(r.Spec) {
		if netip.MustParseAddr(sv.VIP).Is6() {
			v6 = append(v6, sv)
		} else {
			v4 = append(v4, sv)
		}
	}
	// The real servers' end: each IPv6 VIP on lo (a /128), and for
	// LVS-TUN the ip6ip6 fallback device up to decapsulate.
	for _, rs := range r.Spec.HostsByRole(cluster.RoleRealServer) {
		out, err := r.C.Exec(ctx, rs.Name, "ip -o addr show dev lo; echo up:; ip -o link show up dev ip6tnl0")
		if err != nil {
			return err
		}
		_, up, _ := strings.Cut(out, "up:")
		for _, sv := range servicesOf(r.Spec, rs) {
			if netip.MustParseAddr(sv.VIP).Is6() && !strings.Contains(out, " "+sv.VIP+"/128 ") {
				r.Errorf("%s: lo does not hold %s/128:\n%s", rs.Name, sv.VIP, out)
			}
		}
		if !strings.Contains(up, "ip6tnl0") {
			r.Errorf("%s: the ip6ip6 device ip6tnl0 is not up:\n%s", rs.Name, out)
		}
	}
	if err := checkTables(ctx, r); err != nil {
		return err
	}

	// Both families at once: the IPv4 probe runs while the IPv6 services
	// are asked, the client having forgotten their VIPs' neighbours so
	// that it solicits them again where the switch sees it.
	mark := r.C.LAN.Mark()
	for _, sv := range v6 {
		if _, err := r.C.ClientRun(ctx, "ip -6 neigh flush to "+sv.VIP+" dev eth0; true"); err != nil {
			return err
		}
	}
	// The probe asks an IPv4 HTTP service where there is one.
	httpFirst(v4)
	probe, err := r.C.StartProbe(ctx, v4[0], requestTimeout)
	if err != nil {
		return err
	}
	for _, sv := range v6 {
		if err := checkSplit(ctx, r, sv, 100, netip.Addr{}); err != nil {
			return err
		}
	}
	lines, err := probe.Stop(ctx)
	if err != nil {
		return err
	}
	failed := 0
	for _, l := range lines {
		if l.Server == "" {
			failed++
		}
	}
	r.Figure(v4[0].Name+" (IPv4) requests meanwhile", float64(len(lines)), "")
	if failed > 0 || len(lines) == 0 {
		r.Errorf("%d of the %d requests to the IPv4 service %s failed while the IPv6 services were asked", failed, len(lines), v4[0].Name)
	}

	if err := checkNeighbours(ctx, r, v6, mark); err != nil {
		return err
	}
	return failoverCycle(ctx, r, r.Spec, v6[0], "IPv6: ")
}

// checkNeighbours checks, for each IPv6 VIP, what the switch saw since
// mark: only directors advertised it, the active one among them, and the
// client's neighbour entry is that director's MAC.
func checkNeighbours(ctx context.Context, r *Run, svcs []*cluster.Service, mark int) error {
	roleOf := map[string]*cluster.Host{}
	for i := range r.Spec.Hosts {
		roleOf[r.C.Nodes[r.Spec.Hosts[i].Name].MAC] = &r.Spec.Hosts[i]
	}
	for _, sv := range svcs {
		active, err := r.C.ActiveDirector(ctx, sv.VIP)
		if err != nil {
			return err
		}
		want := r.C.Nodes[active].MAC
		var names []string
		answered := false
		for _, m := range r.C.LAN.Repliers(mark, netip.MustParseAddr(sv.VIP)) {
			h := roleOf[m.String()]
			switch {
			case h == nil:
				r.Errorf("%s, not a cluster host, advertised the VIP %s", m, sv.VIP)
			case h.Role != cluster.RoleDirector:
				r.Errorf("real server %s (%s) advertised the VIP %s", h.Name, m, sv.VIP)
			default:
				names = append(names, h.Name)
				answered = answered || m.String() == want
			}
		}
		if !answered {
			r.Errorf("the active director %s's neighbour advertisement for %s did not cross the switch (advertised by %v)", active, sv.VIP, names)
		}
		out, err := r.C.ClientRun(ctx, "ip -6 neigh show "+sv.VIP)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "lladdr "+want) {
			r.Errorf("the client's neighbour entry for %s is %q, want the active director %s's %s", sv.VIP, strings.TrimSpace(lastLines(out, 1)), active, want)
		}
		r.Logf("%s advertised by %s; client neighbour %s", sv.VIP, strings.Join(names, ", "), strings.TrimSpace(lastLines(out, 1)))
	}
	return nil
}
