package vmtests

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/ipvs"
)

// ExternalClient is the client's source address when a spec has LVS-NAT
// services: a NAT real server answers through the director only if the
// client is not on its own subnet, so the client stands for a host beyond
// the router. 198.51.100.0/24 is TEST-NET-2: it never leaves the VM LAN.
var ExternalClient = netip.MustParsePrefix("198.51.100.10/32")

// ClientAddrs are the extra source addresses the client holds for checks
// that need several clients (the sh scheduler), from the same TEST-NET-2.
var ClientAddrs = testNet2(21, 28)

// SplitAddrs are the client's source addresses for the split checks, each
// used by one checkSplit in turn (Cluster.splitSource), from the same
// TEST-NET-2. A split asked from an address the client used within the
// last two minutes is not the scheduler's alone: the directors still hold
// that address's connections in FIN_WAIT for tcpFin (120 s), the client
// picks its source ports all over the range (the kernel resalts its port
// hash every 10 s), and in DR, conn_reuse_mode 1 sends a SYN from a port of
// such a connection to that connection's real server without scheduling.
// A capture counted 67 of 2500 SYNs so; after a drain, they all went to
// the server that stayed, and CI saw rr splits of 7/13 and 96/104. 150
// addresses come round again after 150 splits, each taking seconds.
var SplitAddrs = testNet2(100, 249)

// testNet2 is 198.51.100.lo to 198.51.100.hi, of TEST-NET-2.
func testNet2(lo, hi byte) []netip.Addr {
	var out []netip.Addr
	for i := int(lo); i <= int(hi); i++ {
		out = append(out, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	return out
}

// addAddrsCmd adds addrs, consecutive addresses of one /24 (testNet2), to
// the client's dev in one console line.
func addAddrsCmd(addrs []netip.Addr, dev string) string {
	first, last := addrs[0].As4(), addrs[len(addrs)-1].As4()
	return fmt.Sprintf("i=%d; while [ $i -le %d ]; do ip addr add %d.%d.%d.$i/32 dev %s || exit 1; i=$((i+1)); done",
		first[3], last[3], first[0], first[1], first[2], dev)
}

// When the directors announce the VIPs over BGP (ha.backend bgp), the site's
// router is a VM of its own, Cluster.Router, running FRR: it holds the
// router legs (the directors' BGP peer among them) and RouterUplink, and the
// client sits behind it at RoutedClient, on the same switch but another
// subnet, with its default route through the router. Every request then
// crosses the router's ECMP routes to the VIPs, as it would at a site.
var (
	RoutedClient = netip.MustParsePrefix("198.51.100.10/24")
	RouterUplink = netip.MustParsePrefix("198.51.100.1/24")
)

// RouterName is the router VM's name (its console log, Exec's host).
const RouterName = "router"

// netPlan is how a spec's hosts sit on the VM LAN. Everything the spec
// says (addresses, interfaces, gateways) is kept; what a real site has
// besides the cluster, a router and a client, is one VM: the client holds a
// "router leg" address on every subnet the hosts use (the hosts' own
// gateway address where the spec names one outside the cluster, as the
// seed's 192.168.7.254, which the article calls both CIP and SGW) and
// forwards between them.
type netPlan struct {
	// Gateway is each host's default route: the spec's, or the router leg
	// of its subnet for hosts that have none.
	Gateway map[string]netip.Addr
	// Legs are the router's addresses, with their prefix lengths, on the
	// subnets of the hosts' addresses (set up when the client boots);
	// Legs6 those on the subnets of dual-stack hosts' address6, which
	// Converge adds to a running cluster (setIPv6).
	Legs  []netip.Prefix
	Legs6 []netip.Prefix
	// Client is the source address of the client's requests; External says
	// it is ExternalClient rather than a router leg.
	Client   netip.Addr
	External bool
	// Router is the router VM's address on the client's subnet; valid
	// only when the router is a VM of its own (see RoutedClient).
	Router netip.Prefix
}

// planNetwork lays a spec out on one Ethernet segment.
func planNetwork(s *cluster.Spec) (*netPlan, error) {
	taken := map[netip.Addr]bool{}
	for _, h := range s.Hosts {
		taken[h.Prefix().Addr()] = true
		if h.Address6 != "" {
			taken[netip.MustParsePrefix(h.Address6).Addr()] = true
		}
		if h.Interfaces.HeartbeatAddress != "" {
			taken[netip.MustParsePrefix(h.Interfaces.HeartbeatAddress).Addr()] = true
		}
	}
	for _, v := range s.VIPs() {
		taken[netip.MustParseAddr(v)] = true
	}
	if s.HA.FloatingGateway != "" {
		taken[netip.MustParsePrefix(s.HA.FloatingGateway).Addr()] = true
	}

	// One leg per subnet the hosts are on, in spec order: the hosts' own
	// gateway where the spec names one there, else a free address.
	legOf := map[netip.Prefix]netip.Addr{}
	legs := func(addr func(h *cluster.Host) string, gateway func(h *cluster.Host) string) ([]netip.Prefix, error) {
		var out []netip.Prefix
		for i := range s.Hosts {
			a, err := netip.ParsePrefix(addr(&s.Hosts[i]))
			if err != nil {
				continue
			}
			p := a.Masked()
			if _, ok := legOf[p]; ok {
				continue
			}
			var leg netip.Addr
			for j := range s.Hosts {
				if gw, err := netip.ParseAddr(gateway(&s.Hosts[j])); err == nil && p.Contains(gw) && !taken[gw] {
					leg = gw
					break
				}
			}
			if !leg.IsValid() {
				if leg, err = freeAddr(p, taken); err != nil {
					return nil, err
				}
			}
			taken[leg] = true
			legOf[p] = leg
			out = append(out, netip.PrefixFrom(leg, p.Bits()))
		}
		return out, nil
	}
	plan := &netPlan{Gateway: map[string]netip.Addr{}}
	var err error
	if plan.Legs, err = legs(func(h *cluster.Host) string { return h.Address }, func(h *cluster.Host) string { return h.Gateway }); err != nil {
		return nil, err
	}
	if plan.Legs6, err = legs(func(h *cluster.Host) string { return h.Address6 }, func(h *cluster.Host) string { return h.Gateway6 }); err != nil {
		return nil, err
	}
	for _, h := range s.Hosts {
		if gw, err := netip.ParseAddr(h.Gateway); err == nil {
			plan.Gateway[h.Name] = gw
		} else {
			plan.Gateway[h.Name] = legOf[h.Prefix().Masked()]
		}
	}

	nat := ipvs.Build(s).Uses(ipvs.Masq)
	vip := netip.MustParseAddr(s.Services[0].VIP)
	for _, p := range plan.Legs {
		if !nat && p.Contains(vip) {
			plan.Client = p.Addr()
		}
	}
	if !plan.Client.IsValid() {
		plan.Client, plan.External = ExternalClient.Addr(), true
	}
	if s.HA.Backend == cluster.BackendBGP {
		if err := plan.routeThroughRouter(s); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// routeThroughRouter puts the client behind a router VM that peers with
// the directors: the spec's one BGP peer, at the router leg of the
// directors' subnet.
func (p *netPlan) routeThroughRouter(s *cluster.Spec) error {
	if len(s.HA.BGP.Peers) != 1 {
		return fmt.Errorf("plan the VM network: the VM router is one BGP peer, and ha.bgp.peers has %d", len(s.HA.BGP.Peers))
	}
	if s.Host(RouterName) != nil {
		return fmt.Errorf("plan the VM network: host %s has the router VM's name", RouterName)
	}
	peer := netip.MustParseAddr(s.HA.BGP.Peers[0].Address)
	if !slices.ContainsFunc(p.Legs, func(l netip.Prefix) bool { return l.Addr() == peer }) {
		return fmt.Errorf("plan the VM network: the router VM peers from its leg on the directors' subnet (%v), not from ha.bgp.peers[0] %s: make the peer the hosts' gateway", p.Legs, peer)
	}
	p.Client, p.External, p.Router = RoutedClient.Addr(), true, RouterUplink
	return nil
}

// freeAddr returns the highest host address of p that is not taken: .254
// on a /24, where routers usually sit; ::fe or below on an IPv6 subnet.
func freeAddr(p netip.Prefix, taken map[netip.Addr]bool) (netip.Addr, error) {
	if p.Addr().Is6() && p.Bits() <= 120 {
		b := p.Masked().Addr().As16()
		for last := 0xfe; last >= 1; last-- {
			b[15] = byte(last)
			if a := netip.AddrFrom16(b); !taken[a] {
				return a, nil
			}
		}
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Addr{}, fmt.Errorf("plan the VM network: subnet %s has no room for a router address", p)
	}
	b := p.Masked().Addr().As4()
	base := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	size := uint32(1) << (32 - p.Bits())
	for off := size - 2; off >= 1; off-- {
		v := base + off
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if !taken[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("plan the VM network: every address of %s is taken", p)
}

// clientSetup is the client VM's network configuration as shell commands:
// the router legs, forwarding, the source addresses, and a host route to
// every VIP that says which source the requests come from.
func (p *netPlan) clientSetup(s *cluster.Spec, dev string) []string {
	cmds := []string{"ip link set " + dev + " up"}
	if p.Router.IsValid() {
		// Behind the router VM: its own subnet, everything through it.
		cmds = append(cmds, "ip addr add "+RoutedClient.String()+" dev "+dev)
		cmds = append(cmds, addAddrsCmd(ClientAddrs, dev), addAddrsCmd(SplitAddrs, dev))
		cmds = append(cmds, "ip route add default via "+p.Router.Addr().String())
		for _, v := range s.VIPs() {
			cmds = append(cmds, p.vipRoute(v, dev, p.Client))
		}
		return cmds
	}
	for _, l := range p.Legs {
		cmds = append(cmds, "ip addr add "+l.String()+" dev "+dev)
	}
	cmds = append(cmds, "echo 1 > /proc/sys/net/ipv4/ip_forward")
	if p.External {
		cmds = append(cmds, "ip addr add "+ExternalClient.String()+" dev "+dev)
	}
	cmds = append(cmds, addAddrsCmd(ClientAddrs, dev), addAddrsCmd(SplitAddrs, dev))
	for _, v := range s.VIPs() {
		// An IPv6 VIP is on the link through its leg's prefix (Legs6,
		// which come later).
		if netip.MustParseAddr(v).Is4() {
			cmds = append(cmds, p.vipRoute(v, dev, p.Client))
		}
	}
	return cmds
}

// vipRoute is the client's route to vip, sending from src. A host route on
// the link: the VIP's owner, the active director, answers ARP for it;
// behind a router VM, through the router.
func (p *netPlan) vipRoute(vip, dev string, src netip.Addr) string {
	if p.Router.IsValid() {
		return "ip route replace " + vip + "/32 via " + p.Router.Addr().String() + " dev " + dev + " src " + src.String()
	}
	return "ip route replace " + vip + "/32 dev " + dev + " src " + src.String()
}
