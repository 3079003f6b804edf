package ipvs

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/clustertest"
)

// dualStackSpec is the example with an IPv6 address on every host and
// IPv6 services beside the IPv4 ones: one with persistence by /64, one
// tunnelled, a firewall-mark one, and one whose netmask is one client.
func dualStackSpec(t *testing.T) *cluster.Spec {
	t.Helper()
	s := clustertest.Example(t)
	for i := range s.Hosts {
		s.Hosts[i].Address6 = netip.PrefixFrom(netip.MustParseAddr("2001:db8:7::"+strings.TrimPrefix(s.Hosts[i].IP(), "192.168.7.")), 64).String()
	}
	s.Services = append(s.Services,
		cluster.Service{Name: "http6", VIP: "2001:db8:7::110", Port: 80, Protocol: "tcp", Scheduler: "rr", Forwarding: cluster.ForwardDR,
			Persistence: &cluster.Persistence{Timeout: 300, Netmask: "64"}, Check: cluster.Check{Type: "connect", Interval: 10, Timeout: 5}},
		cluster.Service{Name: "dns6", VIP: "2001:db8:7::111", Port: 53, Protocol: "udp", Scheduler: "wrr", Forwarding: cluster.ForwardTUN,
			Persistence: &cluster.Persistence{Timeout: 60, Netmask: "128"}, Check: cluster.Check{Type: "off", Interval: 10, Timeout: 5}},
		cluster.Service{Name: "web6", VIP: "2001:db8:7::110", FWMark: 6, FWMarkPorts: []int{443}, Protocol: "tcp", Scheduler: "rr", Forwarding: cluster.ForwardDR,
			Check: cluster.Check{Type: "connect", Port: 443, Interval: 10, Timeout: 5}},
	)
	return clustertest.Valid(t, s)
}

// TestBuildDualStack: each virtual service gets the real servers'
// addresses of its own family (a dual-stack host has one of each), the
// rules write IPv6 in brackets and a mark's family with -6, and they read
// back into the same table.
func TestBuildDualStack(t *testing.T) {
	built := Build(dualStackSpec(t))
	want := []string{
		"-A -t [2001:db8:7::110]:80 -s rr -p 300 -M 64",
		"-a -t [2001:db8:7::110]:80 -r [2001:db8:7::11]:80 -g -w 1",
		"-a -t [2001:db8:7::110]:80 -r [2001:db8:7::12]:80 -g -w 1",
		"-A -u [2001:db8:7::111]:53 -s wrr -p 60",
		"-a -u [2001:db8:7::111]:53 -r [2001:db8:7::11]:53 -i -w 1",
		"-a -u [2001:db8:7::111]:53 -r [2001:db8:7::12]:53 -i -w 1",
		"-A -f 6 -6 -s rr",
		"-a -f 6 -6 -r [2001:db8:7::11]:0 -g -w 1",
		"-a -f 6 -6 -r [2001:db8:7::12]:0 -g -w 1",
	}
	rules := built.Rules()
	if got := rules[:6]; !strings.Contains(strings.Join(got, "\n"), "-a -t 192.168.7.110:80 -r 192.168.7.11:80 -g -w 1") {
		t.Errorf("the IPv4 services lost their IPv4 real servers:\n%s", strings.Join(got, "\n"))
	}
	wantLines(t, "rules", rules[6:], want)
	if !built.Has6() || !built.UsesIn(Tunnel, true) || built.UsesIn(Tunnel, false) || !built.UsesIn(Route, false) {
		t.Errorf("Has6 %v, UsesIn(Tunnel, IPv6) %v, UsesIn(Tunnel, IPv4) %v, UsesIn(Route, IPv4) %v", built.Has6(), built.UsesIn(Tunnel, true), built.UsesIn(Tunnel, false), built.UsesIn(Route, false))
	}
	wantRoundTrip(t, built)
}

// TestOpenConnsDualStack: a drained dual-stack real server's open
// connections are counted in every family it serves, at its address of
// each; a connection begun but not yet established counts; one the client
// has closed (FIN_WAIT: a DR director sees only the client's side), a
// closed one, a UDP timer or a persistence template does not; a
// firewall-mark service's connections are known by its VIP and ports.
func TestOpenConnsDualStack(t *testing.T) {
	want := Build(dualStackSpec(t))
	conns, err := ParseConns(`IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 192.168.7.1:41000  192.168.7.110:80   192.168.7.11:80
TCP 00:59  SYN_RECV    192.168.7.1:41001  192.168.7.110:80   192.168.7.11:80
TCP 01:59  TIME_WAIT   192.168.7.1:41002  192.168.7.110:80   192.168.7.11:80
TCP 00:10  CLOSE       192.168.7.1:41003  192.168.7.110:80   192.168.7.11:80
TCP 14:59  ESTABLISHED 192.168.7.1:41004  192.168.7.110:80   192.168.7.12:80
TCP 14:59  ESTABLISHED 192.168.7.1:41005  192.168.7.110:23   192.168.7.12:23
TCP 01:00  FIN_WAIT    [2001:db8:7::1]:41006 [2001:db8:7::110]:80 [2001:db8:7::11]:80
TCP 14:59  ESTABLISHED [2001:db8:7::1]:41009 [2001:db8:7::110]:80 [2001:db8:7::11]:80
TCP 04:59  NONE        [2001:db8:7::]:0   [2001:db8:7::110]:80 [2001:db8:7::11]:80
TCP 14:59  ESTABLISHED [2001:db8:7::1]:41007 [2001:db8:7::110]:443 [2001:db8:7::11]:443
UDP 04:59  UDP         [2001:db8:7::1]:41008 [2001:db8:7::111]:53 [2001:db8:7::11]:53
IP_50 00:59 NONE       192.168.7.1:0      192.168.7.110:0    192.168.7.11:0
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 11 || conns[8].State != "NONE" || conns[6].Client != netip.MustParseAddrPort("[2001:db8:7::1]:41006") || conns[10].Proto != UDP {
		t.Fatalf("parsed %+v", conns)
	}
	for _, c := range []struct {
		d    Drain
		want int
	}{
		{Drain{Host: "rs1"}, 2 + 1 + 1},
		{Drain{Host: "rs1", Services: []string{"http6"}}, 1},
		{Drain{Host: "rs1", Services: []string{"web6"}}, 1},
		{Drain{Host: "rs1", Services: []string{"dns6", "telnet"}}, 0},
		{Drain{Host: "rs2", Services: []string{"http", "telnet"}}, 2},
	} {
		if got := want.OpenConns(conns, c.d); got != c.want {
			t.Errorf("%+v: %d open connections, want %d", c.d, got, c.want)
		}
	}
	if _, err := ParseConns("TCP 14:59 ESTABLISHED 192.168.7.1 192.168.7.110:80 192.168.7.11:80\n"); err == nil {
		t.Error("a source without a port parsed")
	}
}
