package cluster

import (
	"testing"
)

// dualStack are the edits that make testdata/base.yaml a dual-stack
// cluster: an IPv6 service beside the IPv4 one, and an IPv6 address
// (address6) on every host.
var dualStack = []string{
	"hosts:\n", "  - name: http6\n    vip: 2001:db8:7::110\n    port: 80\n    scheduler: rr\nhosts:\n",
	"    address: 192.168.7.9/24\n", "    address: 192.168.7.9/24\n    address6: 2001:db8:7::9/64\n",
	"    address: 192.168.7.10/24\n", "    address: 192.168.7.10/24\n    address6: 2001:db8:7::a/64\n",
	"    address: 192.168.7.11/24\n", "    address: 192.168.7.11/24\n    address6: 2001:db8:7::11/64\n",
}

// ipv6Only makes testdata/base.yaml an IPv6-only cluster.
var ipv6Only = []string{
	"    vip: 192.168.7.110\n", "    vip: 2001:db8:7::110\n",
	"    address: 192.168.7.9/24\n", "    address: 2001:db8:7::9/64\n",
	"    address: 192.168.7.10/24\n", "    address: 2001:db8:7::a/64\n",
	"    address: 192.168.7.11/24\n", "    address: 2001:db8:7::11/64\n",
	"    gateway: 192.168.7.254\n", "    gateway: fe80::1\n",
}

func TestDualStackAndIPv6OnlySpecs(t *testing.T) {
	for name, edits := range map[string][]string{"dual stack": dualStack, "IPv6 only": ipv6Only} {
		s, err := Parse([]byte(edited(t, edits)), "c.yaml", "testdata")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rs := s.Host("rs1")
		p6, ok := rs.PrefixOf(true)
		if !ok || p6.String() != "2001:db8:7::11/64" {
			t.Errorf("%s: rs1's IPv6 address is %v %v, want 2001:db8:7::11/64", name, p6, ok)
		}
		p4, ok4 := rs.PrefixOf(false)
		if name == "dual stack" && (!ok4 || p4.String() != "192.168.7.11/24" || rs.GatewayOf(false) != "192.168.7.254" || rs.GatewayOf(true) != "") {
			t.Errorf("%s: rs1's IPv4 address %v %v, gateways %q %q", name, p4, ok4, rs.GatewayOf(false), rs.GatewayOf(true))
		}
		if name == "IPv6 only" && (ok4 || rs.GatewayOf(true) != "fe80::1" || rs.GatewayOf(false) != "") {
			t.Errorf("%s: rs1 has an IPv4 address (%v) or its gateways are %q %q", name, ok4, rs.GatewayOf(false), rs.GatewayOf(true))
		}
	}
	s, err := Parse([]byte(edited(t, dualStack, []string{"  initdead: 120\n", "  initdead: 120\n  floatingGateway: 192.168.7.1/24\n  floatingGateway6: 2001:db8:7::1/64\n",
		"    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    gateway6: 2001:db8:7::fe\n"})), "c.yaml", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	g4, _ := s.FloatingGatewayOf(false)
	g6, _ := s.FloatingGatewayOf(true)
	if g4.String() != "192.168.7.1/24" || g6.String() != "2001:db8:7::1/64" || s.Host("rs1").GatewayOf(true) != "2001:db8:7::fe" {
		t.Errorf("floating gateways %v %v, rs1's IPv6 gateway %q", g4, g6, s.Host("rs1").GatewayOf(true))
	}
}

// invalidIPv6Specs are edits of testdata/base.yaml (often made dual-stack
// or IPv6-only first), each with the exact errors it must produce: every
// address rule IPv4 has, for IPv6, and the rules of the two families side
// by side.
var invalidIPv6Specs = []struct {
	name      string
	edits     [][]string
	wantError string
}{
	{"IPv6 VIP not written canonically", [][]string{dualStack, {"vip: 2001:db8:7::110", "vip: 2001:DB8:7:0::110"}},
		`c.yaml:14:5: services[1].vip: invalid address "2001:DB8:7:0::110": write it as 2001:db8:7::110 (lowercase, no leading zeros, the longest run of zero groups as ::)`},
	{"IPv4-mapped VIP", [][]string{{"vip: 192.168.7.110", "vip: \"::ffff:192.168.7.110\""}},
		`c.yaml:9:5: services[0].vip: invalid address "::ffff:192.168.7.110": an IPv4-mapped IPv6 address; write the IPv4 address 192.168.7.110`},
	{"link-local VIP", [][]string{dualStack, {"vip: 2001:db8:7::110", "vip: fe80::110"}},
		"c.yaml:14:5: services[1].vip: fe80::110 is a link-local address (fe80::/10), which no router forwards: use a global or unique local unicast address, e.g. 2001:db8::110"},
	{"VIP with a zone", [][]string{dualStack, {"vip: 2001:db8:7::110", "vip: 2001:db8:7::110%eth0"}},
		`c.yaml:14:5: services[1].vip: invalid address "2001:db8:7::110%eth0": expected an IPv4 address such as 192.168.7.110 or an IPv6 one such as 2001:db8::110`},
	{"IPv6 VIP and no IPv6 anywhere", [][]string{{"vip: 192.168.7.110", "vip: 2001:db8:7::110"}},
		"c.yaml:9:5: services[0].vip: VIP 2001:db8:7::110 of service \"http\" is IPv6, and no director has an IPv6 address: a director brings the VIP up on its public interface, on its subnet; give each director an IPv6 address: address6 beside an IPv4 address, or address itself\n" +
			"c.yaml:24:5: hosts[2].address: real server rs1 has no IPv6 address, but it serves service \"http\", whose VIP 2001:db8:7::110 is IPv6: IPVS forwards to a real server of the service's family; give it an IPv6 address: address6 beside an IPv4 address, or address itself, or give it weight 0 for \"http\""},
	{"IPv4 VIP in an IPv6-only cluster", [][]string{ipv6Only, {"hosts:\n", "  - name: old\n    vip: 192.168.7.120\n    port: 23\nhosts:\n"}},
		"c.yaml:14:5: services[1].vip: VIP 192.168.7.120 of service \"old\" is IPv4, and no director has an IPv4 address: a director brings the VIP up on its public interface, on its subnet; give each director an IPv4 address: address, with the IPv6 one in address6\n" +
			"c.yaml:27:5: hosts[2].address: real server rs1 has no IPv4 address, but it serves service \"old\", whose VIP 192.168.7.120 is IPv4: IPVS forwards to a real server of the service's family; give it an IPv4 address: address, with the IPv6 one in address6, or give it weight 0 for \"old\""},
	{"one director without an IPv6 address", [][]string{dualStack, {"    address6: 2001:db8:7::a/64\n", ""}},
		"c.yaml:25:5: hosts[1].address: director d2 has no IPv6 address, but VIP 2001:db8:7::110 of service \"http6\" is IPv6: the VIP is brought up on its public interface, on its subnet; give it an IPv6 address: address6 beside an IPv4 address, or address itself"},
	{"address6 not IPv6", [][]string{dualStack, {"address6: 2001:db8:7::a/64", "address6: 192.168.8.10/24"}},
		"c.yaml:26:5: hosts[1].address6: 192.168.8.10/24 is not an IPv6 address: address6 is the IPv6 address of a dual-stack host, with prefix length, e.g. 2001:db8:7::9/64"},
	{"address6 on an IPv6 host", [][]string{ipv6Only, {"    address: 2001:db8:7::9/64\n", "    address: 2001:db8:7::9/64\n    address6: 2001:db8:7::99/64\n"}},
		"c.yaml:17:5: hosts[0].address6: the host's address 2001:db8:7::9/64 is IPv6 already: address6 is the IPv6 address of a host whose address is IPv4; remove address6, or make address the host's IPv4 address"},
	{"address6 not written canonically", [][]string{dualStack, {"address6: 2001:db8:7::a/64", "address6: 2001:db8:7:0:0:0:0:a/64"}},
		`c.yaml:26:5: hosts[1].address6: invalid address "2001:db8:7:0:0:0:0:a/64": write it as 2001:db8:7::a/64 (lowercase, no leading zeros, the longest run of zero groups as ::)`},
	{"IPv6 address without prefix", [][]string{ipv6Only, {"address: 2001:db8:7::11/64", "address: 2001:db8:7::11"}},
		`c.yaml:24:5: hosts[2].address: invalid address "2001:db8:7::11": expected an address with prefix length, e.g. 192.168.7.9/24 or 2001:db8::9/64`},
	{"duplicate IPv6 address", [][]string{dualStack, {"address6: 2001:db8:7::a/64", "address6: 2001:db8:7::9/64"}},
		"c.yaml:26:5: hosts[1].address6: address 2001:db8:7::9 is already used by host d1"},
	{"IPv6 VIP equals a RIP", [][]string{dualStack, {"vip: 2001:db8:7::110", "vip: 2001:db8:7::11"}},
		"c.yaml:14:5: services[1].vip: address 2001:db8:7::11 is already used by host rs1"},
	{"IPv6 VIP is the subnet-router anycast address", [][]string{dualStack, {"vip: 2001:db8:7::110", "vip: \"2001:db8:7::\""}},
		"c.yaml:14:5: services[1].vip: 2001:db8:7:: is the subnet-router anycast address of 2001:db8:7::/64 (every host bit 0), which the routers on the link answer: use another address of 2001:db8:7::/64, from 2001:db8:7::1 on"},
	{"IPv6 RIP is the subnet-router anycast address", [][]string{ipv6Only, {"address: 2001:db8:7::11/64", "address: \"2001:db8:7::/64\""}},
		"c.yaml:24:5: hosts[2].address: 2001:db8:7:: is the subnet-router anycast address of 2001:db8:7::/64 (every host bit 0), which the routers on the link answer: use another address of 2001:db8:7::/64, from 2001:db8:7::1 on"},
	{"IPv6 VIP on no director's subnet", [][]string{dualStack, {"vip: 2001:db8:7::110", "vip: 2001:db8:8::110"}},
		"c.yaml:14:5: services[1].vip: VIP 2001:db8:8::110 of service \"http6\" is on no director's subnet (2001:db8:7::/64): a director brings the VIP up on its public interface; use an address of that subnet\n" +
			"c.yaml:31:5: hosts[2].address6: LVS-DR real server rs1 (2001:db8:7::11/64) must be on the L2 subnet of VIP 2001:db8:8::110 of service \"http6\""},
	{"IPv6 DR real server off the VIP's subnet", [][]string{dualStack, {"address6: 2001:db8:7::11/64", "address6: 2001:db8:8::11/64"}},
		"c.yaml:31:5: hosts[2].address6: LVS-DR real server rs1 (2001:db8:8::11/64) must be on the L2 subnet of VIP 2001:db8:7::110 of service \"http6\""},
	{"gateway of the other family", [][]string{{"    gateway: 192.168.7.254\n", "    gateway: 2001:db8:7::fe\n"}},
		"c.yaml:25:5: hosts[2].gateway: 2001:db8:7::fe is an IPv6 address, but the host's address 192.168.7.11/24 is IPv4: gateway is the default route of its address's family; a dual-stack host's IPv6 one goes in gateway6"},
	{"gateway6 without address6", [][]string{{"    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    gateway6: fe80::1\n"}},
		"c.yaml:26:5: hosts[2].gateway6: gateway6 is the IPv6 default route of a dual-stack host, which has address6: set address6, or, on a host whose address is IPv6, write it in gateway"},
	{"gateway6 not IPv6", [][]string{dualStack, {"    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    gateway6: 192.168.7.253\n"}},
		"c.yaml:33:5: hosts[2].gateway6: 192.168.7.253 is not an IPv6 address: gateway6 is the IPv6 default route of a dual-stack host"},
	{"multicast gateway6", [][]string{dualStack, {"    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    gateway6: ff02::2\n"}},
		"c.yaml:33:5: hosts[2].gateway6: ff02::2 is a multicast address: use a global or unique local unicast address, e.g. 2001:db8::110"},
	{"IPv6 gateway is the subnet-router anycast address", [][]string{dualStack, {"    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    gateway6: \"2001:db8:7::\"\n"}},
		"c.yaml:33:5: hosts[2].gateway6: 2001:db8:7:: is the subnet-router anycast address of 2001:db8:7::/64 (every host bit 0), which the routers on the link answer: use another address of 2001:db8:7::/64, from 2001:db8:7::1 on"},
	{"sorry server of the other family", [][]string{dualStack, {"    port: 80\n    scheduler: rr\nhosts:", "    port: 80\n    scheduler: rr\n    fallback: {address: 192.168.7.50}\nhosts:"}},
		"c.yaml:17:16: services[1].fallback.address: the sorry server of an IPv6 service must have an IPv6 address, like its VIP 2001:db8:7::110"},
	{"dotted persistence netmask of an IPv6 service", [][]string{dualStack, {"    port: 80\n    scheduler: rr\nhosts:", "    port: 80\n    scheduler: rr\n    persistence: {timeout: 60, netmask: 255.255.255.0}\nhosts:"}},
		`c.yaml:17:32: services[1].persistence.netmask: invalid netmask "255.255.255.0": an IPv6 service's persistence netmask is a prefix length from 1 to 128, e.g. 64`},
	{"gre tunnel to IPv6 real servers", [][]string{dualStack, {heartbeatHA, toKeepalived, "    port: 80\n    scheduler: rr\nhosts:", "    port: 80\n    scheduler: rr\n    forwarding: tun\n    tunnel: {type: gre}\nhosts:"}},
		"c.yaml:18:14: services[1].tunnel.type: the real servers of an IPv6 service decapsulate IPv6-in-IPv6 (ip6tnl0) only: a gre tunnel needs an IPv4 service; use type ipip"},
	{"ldirectord negotiating smtp with IPv6", [][]string{dualStack, {"    port: 80\n    scheduler: rr\nhosts:", "    port: 25\n    scheduler: rr\n    check: {type: negotiate, service: smtp}\nhosts:"}},
		"c.yaml:17:30: services[1].check.service: ldirectord negotiates with an IPv6 service in dns, http, https, nntp, simpletcp, sip only, not smtp: use one of those, check.type connect, external or off, or ha.backend keepalived"},
	{"floatingGateway6 not IPv6", [][]string{{"  initdead: 120\n", "  initdead: 120\n  floatingGateway6: 192.168.7.1/24\n"}},
		"c.yaml:31:3: ha.floatingGateway6: 192.168.7.1/24 is not an IPv6 address: floatingGateway6 is the IPv6 floating gateway of a cluster whose floatingGateway is IPv4"},
	{"two IPv6 floating gateways", [][]string{ipv6Only, {"  initdead: 120\n", "  initdead: 120\n  floatingGateway: 2001:db8:7::1/64\n  floatingGateway6: 2001:db8:7::2/64\n"}},
		"c.yaml:32:3: ha.floatingGateway6: floatingGateway 2001:db8:7::1 is IPv6 already: floatingGateway6 is the IPv6 one beside an IPv4 floatingGateway; remove one of them"},
	{"IPv6 NAT gateway not a director", [][]string{dualStack, {"    port: 80\n    scheduler: rr\nhosts:", "    port: 80\n    scheduler: rr\n    forwarding: nat\nhosts:",
		"    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    gateway6: 2001:db8:7::fe\n"}},
		"c.yaml:34:5: hosts[2].gateway6: a LVS-NAT real server's gateway must be a director address or ha.floatingGateway6, not 2001:db8:7::fe"},
	{"IPv6 NAT real server without an IPv6 gateway", [][]string{ipv6Only, {"    forwarding: dr\n", "    forwarding: nat\n", "    gateway: fe80::1\n", ""}},
		"c.yaml:22:5: hosts[2].gateway: a LVS-NAT real server's gateway must be a director address or ha.floatingGateway"},
	{"IPv6 NAT gateway is one director's own address", [][]string{ipv6Only, {"    forwarding: dr\n", "    forwarding: nat\n", "    gateway: fe80::1\n", "    gateway: 2001:db8:7::9\n"}},
		"c.yaml:25:5: hosts[2].gateway: 2001:db8:7::9 is director d1's own address, but with 2 directors the real servers' gateway must move with the VIP: set ha.floatingGateway and use its address here"},
	{"bcast medium over IPv6", [][]string{{"heartbeatAddress: 192.168.0.1/24}", "heartbeatAddress: fd00::1/64}"}},
		"c.yaml:32:8: ha.media[0].type: director d1's address on eth1 is IPv6 (fd00::1), and heartbeat's bcast medium is IPv4 only: use type ucast, which heartbeat sends as ucast6 to IPv6 addresses"},
	{"link-local ping node", [][]string{{"  initdead: 120\n", "  initdead: 120\n  ping: [fe80::1]\n"}},
		"c.yaml:31:10: ha.ping[0]: fe80::1 is a link-local address (fe80::/10), which no router forwards: use a global or unique local unicast address, e.g. 2001:db8::110"},
}

func TestInvalidIPv6Specs(t *testing.T) {
	for _, tc := range invalidIPv6Specs {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, edited(t, tc.edits...), tc.wantError)
		})
	}
}
