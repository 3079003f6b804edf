package vmtests

import (
	"context"
	"net/netip"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// The scenarios of ARP: only the active director answers for a VIP.
var (
	arpScenario = &Scenario{
		Name: "arp",
		Doc:  "for the whole run no real server answers ARP for a VIP (seen on the switch), and the client's neighbour entry for each VIP is the active director's MAC",
		Run:  runARP,
	}
)

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
		repliers := r.C.LAN.Repliers(0, netip.MustParseAddr(vip))
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
