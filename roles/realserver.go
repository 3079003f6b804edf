package roles

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/ipvs"
)

// sysctlLine writes a /proc/sys key (net/ipv4/conf/eth0/arp_ignore) as a
// sysctl.d line. Keys keep the slash form when an interface name has a dot
// (eth0.100), where the dotted form would be ambiguous. optional keys get
// the "-" prefix: ignored where the kernel lacks them (tunl0 before ipip
// loads, "hidden" without the patch).
func sysctlLine(key, value string, optional bool) string {
	k := key
	if !strings.Contains(key, ".") {
		k = strings.ReplaceAll(key, "/", ".")
	}
	if optional {
		k = "-" + k
	}
	return k + " = " + value
}

// rsVIP is a VIP the real server holds: an IPv4 one as /32 on lo or
// tunl0, an IPv6 one as /128 on lo.
type rsVIP struct {
	Address, Label, Dev string
	Bits                int
	// First6 marks the first IPv6 VIP, which the script explains.
	V6, First6 bool
}

// rsGateway is a default route of the real server, "-6" in Flag for IPv6.
type rsGateway struct{ Flag, Via, Reason string }

func (r *renderer) realServer() error {
	s, h := r.s, r.h
	var svcs []ipvs.Service
	var tun, tun6, gre bool
	var guePorts []int
	nat := map[bool]bool{}
	for _, sv := range r.t.ServicesOf(h.Name) {
		svcs = append(svcs, *sv)
		if sv.Method == ipvs.Tunnel {
			if sv.Is6() {
				tun6 = true
			} else {
				tun = true
			}
		}
		nat[sv.Is6()] = nat[sv.Is6()] || sv.Method == ipvs.Masq
		switch t := sv.DestOf(h.Name).Tunnel; {
		case sv.Method != ipvs.Tunnel:
		case t.Type == "gre":
			gre = true
		case t.Type == "gue" && !slices.Contains(guePorts, int(t.Port)):
			guePorts = append(guePorts, int(t.Port))
		}
	}
	slices.Sort(guePorts)
	hidden := h.KernelProfile == cluster.ProfileHidden
	vipDev := "lo"
	if tun {
		vipDev = "tunl0"
	}
	// The VIPs this real server must accept traffic for: DR and TUN only;
	// with NAT the director rewrites the destination to the RIP. An IPv6
	// VIP goes on lo whatever the method: ip6tnl0 hands the decapsulated
	// packets to the stack, which takes any local address on any device,
	// and the kernel answers neighbour solicitations only for addresses
	// of the device they arrive on, so lo's VIP needs no arp_ignore.
	var vips []rsVIP
	v4vips := 0
	seen := map[netip.Addr]bool{}
	for _, sv := range svcs {
		if sv.Method == ipvs.Masq || seen[sv.VIP] {
			continue
		}
		seen[sv.VIP] = true
		v := rsVIP{Address: sv.VIP.String(), Dev: vipDev, Bits: 32}
		if sv.VIP.Is6() {
			v.Dev, v.Bits, v.V6, v.First6 = "lo", 128, true, len(vips) == v4vips
		} else {
			if vipDev == "lo" {
				v.Label = "lo:" + strconv.Itoa(v4vips)
			}
			v4vips++
		}
		vips = append(vips, v)
	}
	keys := []string{"net/ipv4/ip_forward"}
	var arp, rp, sysctlLines, modules []string
	sysctlLines = append(sysctlLines, sysctlLine("net/ipv4/ip_forward", "0", false))
	if v4vips > 0 {
		if hidden {
			keys = append(keys, "net/ipv4/conf/all/hidden", "net/ipv4/conf/"+vipDev+"/hidden")
			sysctlLines = append(sysctlLines, sysctlLine("net/ipv4/conf/all/hidden", "1", true), sysctlLine("net/ipv4/conf/"+vipDev+"/hidden", "1", true))
		} else {
			for _, dev := range []string{"all", h.Interfaces.Public} {
				for _, kv := range [][2]string{{"arp_ignore", "1"}, {"arp_announce", "2"}} {
					k := "net/ipv4/conf/" + dev + "/" + kv[0]
					keys = append(keys, k)
					arp = append(arp, k+" "+kv[1])
					sysctlLines = append(sysctlLines, sysctlLine(k, kv[1], false))
				}
			}
		}
	}
	var why []string
	if tun {
		devs := []string{"all", "tunl0"}
		// tunl0's settings exist only once ipip is loaded, gre0's once
		// ip_gre is: at boot systemd-modules-load runs before
		// systemd-sysctl; on push, this.
		modules = append(modules, "ipip")
		why = append(why, "the ipip module (tunl0)")
		if gre {
			devs = append(devs, "gre0")
			why = append(why, "for GRE, ip_gre (gre0)")
			modules = append(modules, "ip_gre")
		}
		for _, dev := range devs {
			k := "net/ipv4/conf/" + dev + "/rp_filter"
			keys = append(keys, k)
			rp = append(rp, k)
			sysctlLines = append(sysctlLines, sysctlLine(k, "0", dev != "all"))
		}
	}
	if tun6 {
		// IPv6 has no reverse-path filter: ip6tnl0 needs no sysctl, only
		// its module.
		modules = append(modules, "ip6_tunnel")
		if tun {
			why = append(why, "for IPv6, ip6_tunnel (ip6tnl0)")
		} else {
			why = append(why, "the ip6_tunnel module (ip6tnl0)")
		}
	}
	if len(modules) > 0 {
		if err := r.modulesLoad("LVS-TUN needs "+strings.Join(why, " and, ")+" at boot", modules); err != nil {
			return err
		}
	}
	var gws []rsGateway
	for _, v6 := range []bool{false, true} {
		gw := h.GatewayOf(v6)
		if gw == "" {
			continue
		}
		g := rsGateway{Via: gw, Reason: "LVS-DR/TUN: replies leave through the router, not the director."}
		if v6 {
			g.Flag = " -6"
		}
		if nat[v6] {
			g.Reason = "LVS-NAT: replies must return through the director, which rewrites them."
		}
		gws = append(gws, g)
	}
	if err := r.sysctl("/etc/sysctl.d/60-lvsforge-realserver.conf", "LVS real server kernel settings ("+methodsOf(svcs...)+")", sysctlLines, modules...); err != nil {
		return err
	}
	data := map[string]any{
		"Host": h.Name, "Cluster": s.Metadata.Name, "Methods": methodsOf(svcs...), "Hidden": hidden && v4vips > 0,
		"Tunnel": tun, "Tunnel6": tun6, "GRE": gre, "GUEPorts": guePorts, "Lock": lockPath(h, "lvs-realserver"), "Saved": "/run/lvs-realserver/saved-sysctls",
		"SavedKeys": keys, "ARP": arp, "RPFilter": rp, "VIPDevice": vipDev, "VIPs": vips,
		"Gateways": gws, "Public": h.Interfaces.Public,
	}
	if err := r.initScript("lvs-realserver", "lvs-realserver.sh.tmpl", data, "LVS real server VIPs and ARP suppression for cluster "+s.Metadata.Name, "", false); err != nil {
		return err
	}
	// Its restart takes the VIPs off the real server for a moment.
	r.out.Units[len(r.out.Units)-1].Interrupts = true
	return nil
}
