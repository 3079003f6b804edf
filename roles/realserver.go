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

type rsVIP struct{ Address, Label string }

func (r *renderer) realServer() error {
	s, h := r.s, r.h
	var svcs []ipvs.Service
	var tun, nat, gre bool
	var guePorts []int
	for _, sv := range r.t.ServicesOf(h.Name) {
		svcs = append(svcs, *sv)
		tun = tun || sv.Method == ipvs.Tunnel
		nat = nat || sv.Method == ipvs.Masq
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
	// with NAT the director rewrites the destination to the RIP.
	var vips []rsVIP
	seen := map[netip.Addr]bool{}
	for _, sv := range svcs {
		if sv.Method == ipvs.Masq || seen[sv.VIP] {
			continue
		}
		seen[sv.VIP] = true
		v := rsVIP{Address: sv.VIP.String()}
		if vipDev == "lo" {
			v.Label = "lo:" + strconv.Itoa(len(vips))
		}
		vips = append(vips, v)
	}
	keys := []string{"net/ipv4/ip_forward"}
	var arp, rp, sysctlLines, modules []string
	sysctlLines = append(sysctlLines, sysctlLine("net/ipv4/ip_forward", "0", false))
	if len(vips) > 0 {
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
	if tun {
		devs, why := []string{"all", "tunl0"}, "LVS-TUN needs the ipip module (tunl0) at boot"
		// tunl0's settings exist only once ipip is loaded, gre0's once
		// ip_gre is: at boot systemd-modules-load runs before
		// systemd-sysctl; on push, this.
		modules = append(modules, "ipip")
		if gre {
			devs, why = append(devs, "gre0"), "LVS-TUN needs the ipip module (tunl0) and, for GRE, ip_gre (gre0) at boot"
			modules = append(modules, "ip_gre")
		}
		for _, dev := range devs {
			k := "net/ipv4/conf/" + dev + "/rp_filter"
			keys = append(keys, k)
			rp = append(rp, k)
			sysctlLines = append(sysctlLines, sysctlLine(k, "0", dev != "all"))
		}
		if err := r.modulesLoad(why, modules); err != nil {
			return err
		}
	}
	gw, gwWhy := h.Gateway, "LVS-DR/TUN: replies leave through the router, not the director."
	if nat {
		gwWhy = "LVS-NAT: replies must return through the director, which rewrites them."
	}
	if err := r.sysctl("/etc/sysctl.d/60-lvsforge-realserver.conf", "LVS real server kernel settings ("+methodsOf(svcs...)+")", sysctlLines, modules...); err != nil {
		return err
	}
	data := map[string]any{
		"Host": h.Name, "Cluster": s.Metadata.Name, "Methods": methodsOf(svcs...), "Hidden": hidden && len(vips) > 0,
		"Tunnel": tun, "GRE": gre, "GUEPorts": guePorts, "Lock": lockPath(h, "lvs-realserver"), "Saved": "/run/lvs-realserver/saved-sysctls",
		"SavedKeys": keys, "ARP": arp, "RPFilter": rp, "VIPDevice": vipDev, "VIPs": vips,
		"Gateway": gw, "GatewayReason": gwWhy, "Public": h.Interfaces.Public,
	}
	if err := r.initScript("lvs-realserver", "lvs-realserver.sh.tmpl", data, "LVS real server VIPs and ARP suppression for cluster "+s.Metadata.Name, "", false); err != nil {
		return err
	}
	// Its restart takes the VIPs off the real server for a moment.
	r.out.Units[len(r.out.Units)-1].Interrupts = true
	return nil
}
