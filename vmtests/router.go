package vmtests

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
)

// The router VM (Cluster.Router) of a spec whose directors announce the
// VIPs over BGP: a guest of the cluster image running Debian's FRR, the
// directors' one BGP peer, which spreads the flows to each VIP over every
// director that announces it (ECMP) and hashes each flow by its ports too.

// routerIface is the router VM's NIC on the cluster LAN.
const routerIface = "eth0"

// routerMaxPaths is FRR's maximum-paths: more than any spec's directors.
const routerMaxPaths = 16

// routerConnectRetry is how often, in seconds, FRR opens a session to a
// director that has none: BIRD waits two minutes after a failed attempt of
// its own, so the router is the one that keeps trying.
const routerConnectRetry = 5

// routerArgs are the router VM's boot settings: its NIC, the router legs on
// the hosts' subnets and its address on the client's.
func (p *netPlan) routerArgs(nicMAC string) []string {
	args := []string{"lvs.ifname=" + nicMAC + "," + routerIface}
	for _, l := range p.Legs {
		args = append(args, "lvs.ip="+routerIface+","+l.String())
	}
	return append(args, "lvs.ip="+routerIface+","+p.Router.String())
}

// frrConf is the router's /etc/frr/frr.conf: one BGP session to each
// director, from the spec's peer address and AS, with the spec's hold
// time, and the settings the README's "Several active directors" section
// names for a router that spreads the VIPs over the directors: multipath
// across different ASes (the directors' may differ), no policy required
// on eBGP sessions, and maximum-paths.
func frrConf(s *cluster.Spec) string {
	peer := s.HA.BGP.Peers[0]
	hold := s.HA.BGP.HoldTime
	if hold == 0 {
		hold = cluster.DefaultHoldTime
	}
	var b strings.Builder
	fmt.Fprintf(&b, "! /etc/frr/frr.conf of the VM tests' router (lvsforge vmtests): cluster %s\n", s.Metadata.Name)
	b.WriteString("frr defaults traditional\nhostname " + RouterName + "\nlog syslog informational\n!\n")
	fmt.Fprintf(&b, "router bgp %d\n", peer.AS)
	fmt.Fprintf(&b, " bgp router-id %s\n", peer.Address)
	b.WriteString(" bgp log-neighbor-changes\n no bgp ebgp-requires-policy\n bgp bestpath as-path multipath-relax\n")
	fmt.Fprintf(&b, " timers bgp %d %d\n", max(1, hold/3), hold)
	for _, d := range s.HostsByRole(cluster.RoleDirector) {
		as, _ := s.BGPOf(d)
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n", d.IP(), as)
		fmt.Fprintf(&b, " neighbor %s description %s\n", d.IP(), d.Name)
		fmt.Fprintf(&b, " neighbor %s timers connect %d\n", d.IP(), routerConnectRetry)
	}
	b.WriteString(" !\n address-family ipv4 unicast\n")
	fmt.Fprintf(&b, "  maximum-paths %d\n  maximum-paths ibgp %d\n", routerMaxPaths, routerMaxPaths)
	b.WriteString(" exit-address-family\nexit\n!\n")
	return b.String()
}

// routerSetup is the router VM's configuration after boot, as one shell
// command line: forwarding, ECMP hashing on ports too (policy 1: the
// client's connections from one address spread), no ICMP redirects (the
// client and the directors share its one NIC, on different subnets), and
// FRR's bgpd started with frrConf.
func routerSetup(s *cluster.Spec) string {
	conf := base64.StdEncoding.EncodeToString([]byte(frrConf(s)))
	return strings.Join([]string{
		"sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf." + routerIface + ".send_redirects=0",
		"echo " + conf + " | base64 -d >/etc/frr/frr.conf",
		"sed -i 's/^bgpd=no/bgpd=yes/' /etc/frr/daemons",
		"systemctl restart frr.service",
	}, " && ")
}

// routePaths are the next hops of `ip route show PREFIX` output: one
// for a single path, each "nexthop via" of a multipath route.
func routePaths(out string) []netip.Addr {
	var hops []netip.Addr
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] != "via" {
			continue
		}
		if a, err := netip.ParseAddr(f[i+1]); err == nil && !slices.Contains(hops, a) {
			hops = append(hops, a)
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops
}

// RouterPaths are the directors the router's kernel sends vip's packets
// to now (its FIB, which FRR fills from the BGP routes), by name, sorted.
func (c *Cluster) RouterPaths(ctx context.Context, vip string) ([]string, error) {
	out, err := c.Exec(ctx, RouterName, "ip -4 route show "+vip+"/32")
	if err != nil {
		return nil, err
	}
	return c.directorsAt(routePaths(out)), nil
}

// directorsAt names the directors at the addresses hops (an address of no
// director as itself), sorted.
func (c *Cluster) directorsAt(hops []netip.Addr) []string {
	var out []string
	for _, a := range hops {
		name := a.String()
		for _, d := range c.Spec.HostsByRole(cluster.RoleDirector) {
			if d.IP() == a.String() {
				name = d.Name
			}
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// runningDirectors are the spec's directors whose VMs run, sorted.
func (c *Cluster) runningDirectors(spec *cluster.Spec) []string {
	var out []string
	for _, d := range spec.HostsByRole(cluster.RoleDirector) {
		if !c.Nodes[d.Name].off() {
			out = append(out, d.Name)
		}
	}
	slices.Sort(out)
	return out
}

// announced says whether the router sends every VIP of spec over exactly
// the directors want; otherwise an error with what it does.
func (c *Cluster) announced(ctx context.Context, spec *cluster.Spec, want []string) error {
	for _, vip := range spec.VIPs() {
		got, err := c.RouterPaths(ctx, vip)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("the router sends %s to %v, want %v", vip, got, want)
		}
	}
	return nil
}

// waitAnnounced waits until the router sends every VIP of spec over
// exactly the directors want, and returns how long that took.
func (c *Cluster) waitAnnounced(ctx context.Context, spec *cluster.Spec, want []string, limit time.Duration) (time.Duration, error) {
	var err error
	d, ok := poll(ctx, limit, 500*time.Millisecond, func(ctx context.Context) bool {
		err = c.announced(ctx, spec, want)
		return err == nil
	})
	if !ok {
		return 0, fmt.Errorf("within %s: %v\n%s", limit, err, c.routerState(context.WithoutCancel(ctx), spec))
	}
	return d, nil
}

// announceLimit bounds the wait for a director's announcement to reach the
// router or leave it through its checks: keepalived's first (or failing)
// check, lvs-bgp, BIRD, the BGP session (FRR retries every
// routerConnectRetry seconds) and zebra, on loaded emulated CPUs.
func announceLimit(s *cluster.Spec) time.Duration {
	return 2*checkLimit(s) + time.Duration(routerConnectRetry)*time.Second
}

// routerState is the router's view, for a failure message: its BGP
// sessions and routes, bgpd's last words (session changes), and its FIB's
// routes to the VIPs.
func (c *Cluster) routerState(ctx context.Context, spec *cluster.Spec) string {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := "vtysh -c 'show bgp summary' -c 'show ip bgp'; journalctl --no-pager -b -u frr | tail -20"
	for _, vip := range spec.VIPs() {
		cmd += "; ip route show " + vip + "/32"
	}
	out, err := c.Exec(ctx, RouterName, cmd)
	if err != nil {
		out += "\n" + err.Error()
	}
	return "--- " + RouterName + ":\n\t" + strings.ReplaceAll(strings.TrimSpace(out), "\n", "\n\t")
}
