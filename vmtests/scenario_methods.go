package vmtests

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// guePort is the gue scenario's UDP port of the tunnel on the real servers.
const guePort = 6080

// The scenarios of the other forwarding methods: LVS-TUN (IPIP and GUE)
// and LVS-NAT.
var (
	tunScenario = &Scenario{
		Name: "tun",
		Doc:  "every service forwarded by LVS-TUN (ipip; the VIP on tunl0 of the real servers): the same traffic and table checks",
		Spec: func(s *cluster.Spec) error { tunnelled(s, nil); return nil },
		Run:  runTunnelled,
	}
	gueScenario = &Scenario{
		Name: "gue",
		Doc:  "every service forwarded by LVS-TUN with GUE (IP-in-IP inside UDP, ipvsadm --tun-type gue) on the keepalived cluster (ldirectord knows only ipip): lvs-realserver has fou hand the tunnel's port to tunl0 on each real server; the same traffic and table checks",
		Spec: keepalivedWith(func(s *cluster.Spec) error {
			tunnelled(s, &cluster.Tunnel{Type: "gue", Port: guePort})
			return nil
		}),
		Run: runTunnelled,
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

// tunnelled forwards every service of s by LVS-TUN, with tunnel t (nil:
// ipip, the kernel's default).
func tunnelled(s *cluster.Spec, t *cluster.Tunnel) {
	for i := range s.Services {
		s.Services[i].Forwarding = cluster.ForwardTUN
		s.Services[i].RealPort = s.Services[i].Port
		s.Services[i].Tunnel = t
	}
}

// runTunnelled checks the real servers' end of the tunnels (each VIP on
// tunl0; for GUE, fou's port handing the packets to it: without the fou
// module, ip fou show fails, and the port is then missing), then the
// traffic and the tables.
func runTunnelled(ctx context.Context, r *Run) error {
	for _, rs := range r.Spec.HostsByRole(cluster.RoleRealServer) {
		out, err := r.C.Exec(ctx, rs.Name, "ip -o addr show dev tunl0; ip fou show 2>/dev/null; true")
		if err != nil {
			return err
		}
		for _, sv := range servicesOf(r.Spec, rs) {
			if !holdsAddr(out, sv.VIP) {
				r.Errorf("%s: tunl0 does not hold %s:\n%s", rs.Name, sv.VIP, out)
			}
			if t := sv.Tunnel; t != nil && t.Type == "gue" {
				if want := fmt.Sprintf("port %d gue", t.Port); !strings.Contains(out, want) {
					r.Errorf("%s: ip fou show has no %q:\n%s", rs.Name, want, out)
				}
			}
		}
	}
	if err := trafficCheck(ctx, r, 200, netip.Addr{}); err != nil {
		return err
	}
	return checkTables(ctx, r)
}
