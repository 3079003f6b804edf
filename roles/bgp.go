package roles

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// BirdConfPath is BIRD's configuration on a director of the bgp backend.
const BirdConfPath = "/etc/bird/bird.conf"

// The announcements of a bgp director: lvs-bgp keeps a blackhole route in
// kernel table BGPTable, with protocol BGPProto, for each VIP to announce,
// and BIRD (its kernel protocol) learns them from there. The kernel keeps
// that state while BIRD restarts, and BIRD learns it again at start. No
// ip rule points at the table, so its routes never route a packet; the
// protocol number tells lvs-bgp's routes from any other, which it leaves
// alone, and BIRD announces only them. Both numbers are unused by the
// distributions' rt_tables and rt_protos.
const (
	BGPTable = 4110
	BGPProto = 211
)

// bgpVIP is one VIP as lvs-bgp holds and announces it.
type bgpVIP struct {
	// Address is the VIP; Prefix, the VIP as a host address (/32).
	Address, Prefix string
	// Services are the VIP's services: any of them up announces it.
	Services []string
}

// bgpVIPs are the VIPs in spec order, each with its services.
func bgpVIPs(s *cluster.Spec) []bgpVIP {
	var out []bgpVIP
	for _, sv := range s.Services {
		a := netip.MustParseAddr(sv.VIP)
		i := slices.IndexFunc(out, func(v bgpVIP) bool { return v.Address == a.String() })
		if i < 0 {
			out = append(out, bgpVIP{Address: a.String(), Prefix: netip.PrefixFrom(a, a.BitLen()).String()})
			i = len(out) - 1
		}
		out[i].Services = append(out[i].Services, sv.Name)
	}
	return out
}

// bgpScript is where lvs-bgp lives on h: keepalived runs it by that path.
func bgpScript(h *cluster.Host) string {
	if h.Init == cluster.InitSystemd {
		return "/usr/local/sbin/lvs-bgp"
	}
	return "/etc/init.d/lvs-bgp"
}

// bgpARP are the settings that keep a director from answering ARP for the
// VIPs it holds on lo (the kernel answers for any local address on any
// interface otherwise): as on an LVS-DR real server.
func bgpARP(h *cluster.Host) []string {
	var out []string
	for _, dev := range []string{"all", h.Interfaces.Public} {
		out = append(out, "net/ipv4/conf/"+dev+"/arp_ignore 1", "net/ipv4/conf/"+dev+"/arp_announce 2")
	}
	return out
}

// bgp renders what only a director of the bgp backend has: lvs-bgp, which
// holds the VIPs and keeps the announcements, and BIRD's configuration.
// keepalived (r.keepalived) checks the real servers and reports to lvs-bgp.
func (r *renderer) bgp() error {
	s, h := r.s, r.h
	vips := bgpVIPs(s)
	var addrs, prefixes, services []string
	for _, v := range vips {
		addrs, prefixes = append(addrs, v.Address), append(prefixes, v.Prefix)
	}
	for _, sv := range s.Services {
		services = append(services, sv.Name)
	}
	if err := r.initScript("lvs-bgp", "lvs-bgp.sh.tmpl", map[string]any{
		"Cluster": s.Metadata.Name, "Host": h.Name, "Lock": lockPath(h, "lvs-bgp"), "Table": BGPTable, "Proto": BGPProto,
		"VIPs": vips, "Addresses": addrs, "Prefixes": prefixes, "Services": services, "ARP": bgpARP(h),
	}, "LVS VIPs on lo and their BGP announcement for cluster "+s.Metadata.Name, "keepalived.service bird.service", true); err != nil {
		return err
	}
	// Its restart withdraws the VIPs, and the routers move this
	// director's connections to the others.
	r.out.Units[len(r.out.Units)-1].Interrupts = true
	as, routerID := s.BGPOf(h)
	type peer struct {
		Name, Address string
		AS            int
	}
	var peers []peer
	for _, p := range s.HA.BGP.Peers {
		peers = append(peers, peer{Name: "peer_" + strings.NewReplacer(".", "_", ":", "_").Replace(p.Address), Address: p.Address, AS: p.AS})
	}
	if err := r.add(BirdConfPath, 0o644, "bird.conf.tmpl", map[string]any{
		"Host": h.Name, "Cluster": s.Metadata.Name, "RouterID": routerID, "Public": h.Interfaces.Public,
		"BFD": s.HA.BGP.BFD, "Table": BGPTable, "Proto": BGPProto, "VIPs": prefixes,
		"Address": h.IP(), "AS": as, "HoldTime": s.HA.BGP.HoldTime, "Peers": peers,
	}, "bird"); err != nil {
		return err
	}
	// birdc configure (the unit's reload) applies any change, restarting
	// the sessions whose settings changed; a restart drops every session,
	// and the routers move this director's connections to the others.
	r.daemon("bird", true).Interrupts = true
	return nil
}

// bgpSysctls are the lines a bgp director's sysctl drop-in adds: no ARP
// answers for the VIPs on lo.
func bgpSysctls(h *cluster.Host) []string {
	var out []string
	for _, kv := range bgpARP(h) {
		k, v, _ := strings.Cut(kv, " ")
		out = append(out, sysctlLine(k, v, false))
	}
	return out
}

// bgpQuorum is what keepalived runs for a service of the bgp backend as
// its quorum (at least one live real server) comes and goes, and what it
// runs when it starts and stops.
func bgpQuorum(h *cluster.Host, service string) (up, down string) {
	return bgpScript(h) + " up " + service, bgpScript(h) + " down " + service
}
