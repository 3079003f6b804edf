package cluster

import (
	"os"
	"strings"
	"testing"
)

// toBGP turns testdata/base.yaml into a bgp cluster: the bgp backend with
// one peer, and a VIP off the directors' subnet (they answer no ARP for it).
var toBGP = []string{
	heartbeatHA, "  backend: bgp\n  bgp:\n    as: 65010\n    peers:\n      - {address: 192.168.7.254, as: 65000}\n",
	"    vip: 192.168.7.110", "    vip: 10.10.10.10",
}

// bgpSpec is base.yaml turned into a bgp cluster, then edited (old, new
// pairs, replaced in order).
func bgpSpec(t *testing.T, edits ...string) string {
	t.Helper()
	return edited(t, toBGP, edits)
}

// mhService makes base.yaml's service one the bgp backend recommends.
var mhService = []string{"    scheduler: rr\n", "    scheduler: mh\n    schedulerFlags: [mh-port, mh-fallback]\n"}

func TestBGPSpecDefaults(t *testing.T) {
	text := bgpSpec(t, append(mhService, "    address: 192.168.7.10/24\n", "    address: 192.168.7.10/24\n    bgp: {as: 65012, routerID: 10.255.0.2}\n")...)
	s, err := Parse([]byte(text), "c.yaml", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	if s.HA.BGP.HoldTime != DefaultHoldTime || s.HA.BGP.BFD {
		t.Errorf("ha.bgp defaults: %+v, want holdTime %d, no BFD", s.HA.BGP, DefaultHoldTime)
	}
	for _, tc := range []struct {
		host string
		as   int
		id   string
	}{{"d1", 65010, "192.168.7.9"}, {"d2", 65012, "10.255.0.2"}} {
		if as, id := s.BGPOf(s.Host(tc.host)); as != tc.as || id != tc.id {
			t.Errorf("%s: AS %d, router ID %s; want %d, %s", tc.host, as, id, tc.as, tc.id)
		}
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings for mh with mh-port and mh-fallback: %v", s.Warnings)
	}
}

// invalidBGPSpecs are edits of the bgp cluster (bgpSpec), each with the
// exact errors it must produce.
var invalidBGPSpecs = []struct {
	name      string
	edits     []string
	wantError string
}{
	{"no peer", []string{"    peers:\n      - {address: 192.168.7.254, as: 65000}\n", ""},
		"c.yaml:28:3: ha.bgp.peers: the directors announce the VIPs to at least one BGP peer (the routers in front of them): add peers: [{address: 192.168.7.254, as: 65000}]"},
	{"a director without an AS", []string{"    as: 65010\n", "", "    address: 192.168.7.10/24\n", "    address: 192.168.7.10/24\n    bgp: {as: 65012}\n"},
		"c.yaml:14:5: hosts[0]: director d1 has no BGP AS: set ha.bgp.as (every director's) or its own bgp.as"},
	{"AS numbers 0, AS_TRANS and too large", []string{"    as: 65010\n", "    as: 0\n", "as: 65000}", "as: 4294967295}", "    address: 192.168.7.10/24\n", "    address: 192.168.7.10/24\n    bgp: {as: 23456}\n"},
		"c.yaml:21:11: hosts[1].bgp.as: AS 23456 is AS_TRANS, which stands in for 4-byte AS numbers and belongs to no one: use your own AS (private ones: 64512-65534, 4200000000-4294967294)\n" +
			"c.yaml:30:5: ha.bgp.as: 0 is out of range: expected an AS number 1-4294967294\n" +
			"c.yaml:32:34: ha.bgp.peers[0].as: 4294967295 is out of range: expected an AS number 1-4294967294"},
	{"hold time below 3", []string{"    as: 65010\n", "    as: 65010\n    holdTime: 2\n"},
		"c.yaml:30:5: ha.bgp.holdTime: 2 is out of range: expected 3-65535"},
	{"hold time 0", []string{"    as: 65010\n", "    as: 65010\n    holdTime: 0\n"},
		"c.yaml:30:5: ha.bgp.holdTime: 0 is out of range: expected 3-65535"},
	{"peer off the directors' subnet", []string{"address: 192.168.7.254, as", "address: 10.0.0.1, as"},
		"c.yaml:31:10: ha.bgp.peers[0].address: peer 10.0.0.1 is not on director d1's subnet (192.168.7.0/24): BIRD peers directly, from each director's public address; use a router on that subnet\n" +
			"c.yaml:31:10: ha.bgp.peers[0].address: peer 10.0.0.1 is not on director d2's subnet (192.168.7.0/24): BIRD peers directly, from each director's public address; use a router on that subnet"},
	{"peer is a real server", []string{"address: 192.168.7.254, as", "address: 192.168.7.11, as"},
		"c.yaml:31:10: ha.bgp.peers[0].address: address 192.168.7.11 is already used by host rs1: a peer is a router of its own"},
	{"peer twice, and a broadcast address", []string{"      - {address: 192.168.7.254, as: 65000}\n", "      - {address: 192.168.7.254, as: 65000}\n      - {address: 192.168.7.254, as: 65001}\n      - {address: 192.168.7.255, as: 65001}\n      - {address: 192.168.7.300, as: 65001}\n"},
		"c.yaml:32:10: ha.bgp.peers[1].address: address 192.168.7.254 is already used by peer 0: a peer is a router of its own\n" +
			"c.yaml:33:10: ha.bgp.peers[2].address: 192.168.7.255 is the broadcast address of 192.168.7.0/24, which no host can have: use an address from 192.168.7.1 to 192.168.7.254\n" +
			`c.yaml:34:10: ha.bgp.peers[3].address: invalid IPv4 address "192.168.7.300": expected e.g. 192.168.7.110`},
	{"two directors with one router ID", []string{"    address: 192.168.7.10/24\n", "    address: 192.168.7.10/24\n    bgp: {routerID: 192.168.7.9}\n"},
		"c.yaml:21:11: hosts[1].bgp.routerID: router ID 192.168.7.9 is already director d1's: BGP tells speakers apart by it; set bgp.routerID on one of them"},
	{"router IDs that are no dotted quad", []string{"    address: 192.168.7.9/24\n", "    address: 192.168.7.9/24\n    bgp: {routerID: 0.0.0.0}\n", "    address: 192.168.7.10/24\n", "    address: 192.168.7.10/24\n    bgp: {routerID: \"2001:db8::1\"}\n"},
		"c.yaml:17:11: hosts[0].bgp.routerID: invalid router ID \"0.0.0.0\": expected a dotted quad other than 0.0.0.0, e.g. 10.255.0.1 (a director's router ID is its address unless bgp.routerID sets one)\n" +
			"c.yaml:22:11: hosts[1].bgp.routerID: invalid router ID \"2001:db8::1\": expected a dotted quad other than 0.0.0.0, e.g. 10.255.0.1 (a director's router ID is its address unless bgp.routerID sets one)"},
	{"VIP on the directors' subnet", []string{"    vip: 10.10.10.10", "    vip: 192.168.7.110"},
		"c.yaml:9:5: services[0].vip: VIP 192.168.7.110 of service \"http\" is on director d1's subnet (192.168.7.0/24): with the bgp backend the directors hold the VIPs on lo and answer no ARP for them, so the hosts on that subnet could not reach it; use an address of no director's subnet (the routers reach it through the directors' host routes)"},
	{"DR real server off a director's subnet", []string{"    address: 192.168.7.11/24", "    address: 10.0.0.11/24"},
		"c.yaml:24:5: hosts[2].address: LVS-DR real server rs1 (10.0.0.11/24) must be on the L2 subnet of every director, which forwards to it by its MAC address: it is not on director d1's (192.168.7.0/24)"},
	{"NAT", []string{"    forwarding: dr", "    forwarding: nat"},
		"c.yaml:12:5: services[0].forwarding: with the bgp backend every director forwards at once, and a real server's replies go to its one gateway: LVS-NAT would send the replies of every other director's connections to the wrong one; use dr or tun\n" +
			"c.yaml:25:5: hosts[2].gateway: a LVS-NAT real server's gateway must be a director address or ha.floatingGateway, not 192.168.7.254"},
	{"sorry server", []string{"    forwarding: dr\n", "    forwarding: dr\n    fallback: {address: 192.168.7.200}\n"},
		"c.yaml:13:5: services[0].fallback: with the bgp backend a director whose checks find no live real server withdraws the VIP, so no packet would reach the sorry server: remove fallback"},
	{"keepalived's checks", []string{"    forwarding: dr\n", "    forwarding: dr\n    protocol: udp\n"},
		"c.yaml:8:5: services[0].check.type: keepalived's TCP_CHECK cannot check a udp service: use type external (a program of yours) or off"},
	{"bgp settings on a real server", []string{"    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    bgp: {as: 65020}\n"},
		"c.yaml:26:5: hosts[2].bgp: only directors speak BGP: remove bgp from real server rs1"},
	{"fields of the other backends", []string{"  backend: bgp\n", "  backend: bgp\n  primary: d1\n  deadtime: 30\n  keepalived: {advertInt: 1}\n  sync: {enabled: true}\n  floatingGateway: 192.168.7.1/24\n"},
		"c.yaml:28:3: ha.primary: the bgp backend does not use ha.primary: remove it, or set ha.backend to heartbeat or keepalived\n" +
			"c.yaml:29:3: ha.deadtime: the bgp backend does not use ha.deadtime: remove it, or set ha.backend to heartbeat\n" +
			"c.yaml:30:3: ha.keepalived: the bgp backend does not use ha.keepalived: remove it, or set ha.backend to keepalived\n" +
			"c.yaml:31:3: ha.sync: the bgp backend does not use ha.sync: remove it, or set ha.backend to heartbeat or keepalived\n" +
			"c.yaml:32:3: ha.floatingGateway: the bgp backend does not use ha.floatingGateway: remove it, or set ha.backend to heartbeat or keepalived"},
	{"bgp fields with keepalived", []string{"  backend: bgp\n", "  backend: keepalived\n", "    address: 192.168.7.10/24\n", "    address: 192.168.7.10/24\n    bgp: {as: 65012}\n", "    vip: 10.10.10.10", "    vip: 192.168.7.110"},
		"c.yaml:21:5: hosts[1].bgp: the keepalived backend does not use hosts[1].bgp: remove it, or set ha.backend to bgp\n" +
			"c.yaml:29:3: ha.bgp: the keepalived backend does not use ha.bgp: remove it, or set ha.backend to bgp"},
	{"no director", []string{"    role: director\n", "    role: realserver\n", "    role: director\n", "    role: realserver\n", "    interfaces: {public: eth0, heartbeat: eth1, heartbeatAddress: 192.168.0.1/24}\n", "", "    interfaces: {public: eth0, heartbeat: eth1, heartbeatAddress: 192.168.0.2/24}\n", ""},
		"c.yaml:13:1: hosts: the bgp backend needs at least one director"},
}

func TestInvalidBGPSpecs(t *testing.T) {
	for _, tc := range invalidBGPSpecs {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, bgpSpec(t, tc.edits...), tc.wantError)
		})
	}
}

// TestBGPWarnings: with several active directors, a scheduler that picks
// real servers from each director's own state, or mh without the flags
// that make it spread and survive a failed real server, is valid but
// warned about, at the field to change.
func TestBGPWarnings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits []string
		want  string
	}{
		{"rr", nil, "c.yaml:11:5: services[0].scheduler: with 2 active directors, rr picks a real server from each director's own state, so they pick different ones: a connection the routers move to another director (when one comes or goes) lands on another real server and breaks; use scheduler mh with schedulerFlags [mh-port, mh-fallback]"},
		{"sh", []string{"    scheduler: rr\n", "    scheduler: sh\n"},
			"c.yaml:11:5: services[0].scheduler: with 2 active directors, mh is the scheduler made for this (Maglev hashing: every director picks the same real server, and a real server that fails moves only its own connections); sh is consistent only while every director lists the same real servers in the same order: use scheduler mh with schedulerFlags [mh-port, mh-fallback]"},
		{"mh without flags", []string{"    scheduler: rr\n", "    scheduler: mh\n"},
			"c.yaml:11:5: services[0].scheduler: with 2 active directors add mh-port (hash the client's port too, or every connection of one client, or of many behind one NAT, goes to one real server) and mh-fallback (a new connection whose hash falls on a failed real server, kept at weight 0, goes to the next one instead of being refused)"},
		{"mh without mh-port", []string{"    scheduler: rr\n", "    scheduler: mh\n    schedulerFlags: [mh-fallback]\n"},
			"c.yaml:12:5: services[0].schedulerFlags: with 2 active directors add mh-port (hash the client's port too, or every connection of one client, or of many behind one NAT, goes to one real server)"},
		{"mh, not quiescent", []string{"    scheduler: rr\n", "    scheduler: mh\n    schedulerFlags: [mh-port]\n    quiescent: false\n"},
			"c.yaml:13:5: services[0].quiescent: keepalived then removes a failed real server and adds it back, at the head of IPVS's list, when it recovers: the directors' lists, and the mh tables built from them, come to differ, and a connection the routers move to another director lands on another real server; leave quiescent true"},
		{"mh with both flags", mhService, ""},
		{"rr with one director", []string{"  - name: d2\n    role: director", "  - name: d2\n    role: realserver", "    interfaces: {public: eth0, heartbeat: eth1, heartbeatAddress: 192.168.0.2/24}\n", ""}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(bgpSpec(t, tc.edits...)), "c.yaml", "testdata")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range s.Warnings {
				got = append(got, w.Error())
			}
			if g := strings.Join(got, "\n"); g != tc.want {
				t.Errorf("want the warnings\n%s\ngot\n%s", tc.want, g)
			}
		})
	}
	// Another backend has one active director: nothing to warn about.
	base, _ := os.ReadFile("testdata/base.yaml")
	if s, err := Parse(base, "c.yaml", "testdata"); err != nil || len(s.Warnings) != 0 {
		t.Errorf("heartbeat with rr: %v, warnings %v", err, s.Warnings)
	}
}
