package vmtests

import (
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
)

func TestHoldsAddr(t *testing.T) {
	out := `2: eth0    inet 192.168.7.9/24 scope global eth0\       valid_lft forever preferred_lft forever
2: eth0    inet 192.168.7.110/24 brd 192.168.7.255 scope global secondary eth0\       valid_lft forever preferred_lft forever`
	if !holdsAddr(out, "192.168.7.110") || holdsAddr(out, "192.168.7.11") || holdsAddr(out, "192.168.7.1") {
		t.Error("holdsAddr matched the wrong addresses")
	}
}

func TestExpectedSplit(t *testing.T) {
	spec := func(sched string, weights ...int) (*cluster.Spec, *cluster.Service) {
		s := &cluster.Spec{Services: []cluster.Service{{Name: "http", VIP: "10.0.0.100", Port: 80, RealPort: 80, Protocol: "tcp", Forwarding: cluster.ForwardDR, Scheduler: sched}}}
		for i, w := range weights {
			s.Hosts = append(s.Hosts, cluster.Host{Name: "rs" + string(rune('1'+i)), Role: cluster.RoleRealServer,
				Address: fmt.Sprintf("10.0.0.%d/24", 11+i), Weights: map[string]int{"http": w}})
		}
		return s, &s.Services[0]
	}
	tally := func(by map[string]int, failed int) Tally {
		n := failed
		for _, c := range by {
			n += c
		}
		return Tally{N: n, By: by, Failed: failed}
	}
	cases := []struct {
		sched   string
		weights []int
		t       Tally
		ok      bool
	}{
		{"rr", []int{1, 1}, tally(map[string]int{"rs1": 100, "rs2": 100}, 0), true},
		{"rr", []int{1, 1}, tally(map[string]int{"rs1": 102, "rs2": 98}, 0), false},
		{"rr", []int{1, 1}, tally(map[string]int{"rs1": 100, "rs2": 99}, 1), false},
		{"rr", []int{1, 0}, tally(map[string]int{"rs1": 200}, 0), true},
		{"rr", []int{1, 0}, tally(map[string]int{"rs1": 199, "rs2": 1}, 0), false},
		{"wrr", []int{3, 1}, tally(map[string]int{"rs1": 150, "rs2": 50}, 0), true},
		{"wrr", []int{3, 1}, tally(map[string]int{"rs1": 141, "rs2": 59}, 0), true},
		{"wrr", []int{3, 1}, tally(map[string]int{"rs1": 139, "rs2": 61}, 0), false},
		{"sh", []int{1, 1}, tally(map[string]int{"rs2": 10}, 0), true},
		{"sh", []int{1, 1}, tally(map[string]int{"rs1": 1, "rs2": 9}, 0), false},
		{"fo", []int{1, 5}, tally(map[string]int{"rs2": 10}, 0), true},
		{"fo", []int{1, 5}, tally(map[string]int{"rs1": 10}, 0), false},
		{"wlc", []int{1, 1}, tally(map[string]int{"rs1": 10}, 0), false},
		{"wlc", []int{1, 1}, tally(map[string]int{"rs1": 6, "rs2": 4}, 0), true},
		{"nq", []int{1, 1}, tally(map[string]int{"rs1": 10}, 0), true},
		{"nq", []int{1, 1}, tally(map[string]int{"rs3": 10}, 0), false},
	}
	for _, tc := range cases {
		s, sv := spec(tc.sched, tc.weights...)
		msg := expectedSplit(s, sv, tc.t)
		if (msg == "") != tc.ok {
			t.Errorf("%s %v %s: got %q, want ok=%v", tc.sched, tc.weights, tc.t, msg, tc.ok)
		}
	}
	// mh hashes the client's address, and with mh-port its port too: one
	// client's connections then spread.
	s, sv := spec("mh", 1, 1)
	if msg := expectedSplit(s, sv, tally(map[string]int{"rs1": 30, "rs2": 30}, 0)); msg == "" {
		t.Error("mh without mh-port, one client on two servers: want a failure")
	}
	sv.SchedulerFlags = []string{"mh-port", "mh-fallback"}
	if msg := expectedSplit(s, sv, tally(map[string]int{"rs1": 33, "rs2": 27}, 0)); msg != "" {
		t.Errorf("mh-port, one client on both servers: %s", msg)
	}
	if msg := expectedSplit(s, sv, tally(map[string]int{"rs1": 60}, 0)); msg == "" {
		t.Error("mh-port, 60 connections of one client on one server: want a failure")
	}
}

func TestPlanNetworkSeed(t *testing.T) {
	s := exampleSpec(t)
	p := plannedNetwork(t, s)
	// The article's CIP = SGW: the client is the real servers' router .254.
	if len(p.Legs) != 1 || p.Legs[0].String() != "192.168.7.254/24" || p.Client.String() != "192.168.7.254" || p.External {
		t.Errorf("legs %v client %v external %v", p.Legs, p.Client, p.External)
	}
	for _, h := range s.Hosts {
		if p.Gateway[h.Name].String() != "192.168.7.254" {
			t.Errorf("%s: gateway %v", h.Name, p.Gateway[h.Name])
		}
	}
	nat := derived(t, s, natSpec)
	np := plannedNetwork(t, nat)
	if !np.External || np.Client != ExternalClient.Addr() {
		t.Errorf("NAT: client %v external %v, want the external address", np.Client, np.External)
	}
	if gw := netip.MustParsePrefix(nat.HA.FloatingGateway).Addr(); np.Gateway["rs1"] != gw || gw.String() != "192.168.7.1" {
		t.Errorf("NAT: rs1 routes via %v, floating gateway %v", np.Gateway["rs1"], gw)
	}
	if np.Gateway["linuxha1"].String() != "192.168.7.254" {
		t.Errorf("NAT: a director routes via %v, want the router", np.Gateway["linuxha1"])
	}
}

// TestPlanNetworkOtherSubnet: a TUN real server on another subnet gets a
// router leg there, and a host without a gateway routes through the leg of
// its own subnet.
func TestPlanNetworkOtherSubnet(t *testing.T) {
	s := &cluster.Spec{
		Services: []cluster.Service{{Name: "web", VIP: "10.1.0.100", Forwarding: cluster.ForwardTUN}},
		Hosts: []cluster.Host{
			{Name: "lb1", Role: cluster.RoleDirector, Address: "10.1.0.2/24"},
			{Name: "web1", Role: cluster.RoleRealServer, Address: "10.1.0.21/24", Gateway: "10.1.0.1"},
			{Name: "web2", Role: cluster.RoleRealServer, Address: "10.2.0.22/24", Gateway: "10.2.0.1"},
		},
	}
	p := plannedNetwork(t, s)
	var legs []string
	for _, l := range p.Legs {
		legs = append(legs, l.String())
	}
	if strings.Join(legs, " ") != "10.1.0.1/24 10.2.0.1/24" {
		t.Errorf("legs %v", legs)
	}
	if p.Gateway["lb1"].String() != "10.1.0.1" || p.Client.String() != "10.1.0.1" {
		t.Errorf("lb1 gateway %v, client %v", p.Gateway["lb1"], p.Client)
	}
}

// TestPlanNetworkDualStack: the ipv6 scenario's hosts keep the seed's IPv4
// plan, so it runs on the seed's cluster; the client gets an IPv6 leg,
// ::fe of their subnet, which setIPv6 adds to the running client.
func TestPlanNetworkDualStack(t *testing.T) {
	seed := exampleSpec(t)
	s := derived(t, seed, dualStack)
	if h := s.Host("rs1"); h.Address6 != "2001:db8:7::11/64" {
		t.Errorf("rs1's address6 %q", h.Address6)
	}
	p := plannedNetwork(t, s)
	if len(p.Legs6) != 1 || p.Legs6[0].String() != "2001:db8:7::fe/64" {
		t.Errorf("IPv6 legs %v, want [2001:db8:7::fe/64]", p.Legs6)
	}
	c := &Cluster{Spec: seed, plan: plannedNetwork(t, seed)}
	if !c.compatible(s) {
		t.Errorf("the dual-stack spec does not run on the seed's cluster")
	}
	for _, cmd := range p.clientSetup(s, "eth0") {
		if strings.Contains(cmd, net6) {
			t.Errorf("the client's boot setup has an IPv6 command %q: its legs come later", cmd)
		}
	}
}

// TestSplitAddrs runs the client's line that adds SplitAddrs in a shell,
// with ip printing its arguments: it must add each of them, and none of
// them may be an address the client holds for something else.
func TestSplitAddrs(t *testing.T) {
	out, err := exec.Command("sh", "-c", `ip() { echo "$@"; }; `+addAddrsCmd(SplitAddrs, "eth0")).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, a := range SplitAddrs {
		want = append(want, "addr add "+a.String()+"/32 dev eth0")
	}
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("the client adds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	other := append([]netip.Addr{ExternalClient.Addr(), RoutedClient.Addr(), RouterUplink.Addr()}, ClientAddrs...)
	for _, a := range other {
		if slices.Contains(SplitAddrs, a) {
			t.Errorf("%s is a split address and the client's for something else", a)
		}
	}
}

// TestScenarioSpecsValidate derives every scenario's spec from the example:
// each must pass the same validation as a spec file.
func TestScenarioSpecsValidate(t *testing.T) {
	base := exampleSpec(t)
	for _, sc := range Scenarios {
		s, err := deriveSpec(base, sc.Spec)
		if err != nil {
			t.Errorf("%s: %v", sc.Name, err)
			continue
		}
		if sc == connSyncScenario && len(virtualOf(s, &s.Services[len(s.Services)-1]).Dests) != 2 {
			t.Errorf("conn-sync: the echo service has no real servers")
		}
		if base.Hosts[2].Weights["echo"] != 0 {
			t.Errorf("%s: deriving changed the base spec's weights", sc.Name)
		}
	}
}

// TestScenariosShareBoots follows the Suite's choice over the whole list:
// a scenario runs on the running cluster when its spec is compatible, else
// it boots a new one. The clusters booted, and who shares each, are the
// suite's largest cost: a new scenario that boots its own is a choice to
// see here.
func TestScenariosShareBoots(t *testing.T) {
	base := exampleSpec(t)
	var groups [][]string
	var cur *Cluster
	for _, sc := range Scenarios {
		s, err := deriveSpec(base, sc.Spec)
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		if !cur.runs(sc, s) {
			groups = append(groups, nil)
			cur = nil
			if !sc.Standalone {
				plan, err := planNetwork(s)
				if err != nil {
					t.Fatal(err)
				}
				cur = &Cluster{Spec: s, plan: plan, opts: Options{BootDisks: sc.BootDisks}}
			}
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], sc.Name)
	}
	var got []string
	for _, g := range groups {
		got = append(got, strings.Join(g, " "))
	}
	want := []string{
		"seed-dr arp rs-script status drain wrr realserver-down heartbeat-links failover tun conn-sync-heartbeat live-change ipv6",
		"nat",
		"keepalived track gue live-change-keepalived conn-sync",
		"unicast-vrrp",
		"ecmp",
		"kernel-fallback",
		"rolling-upgrade",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the clusters the suite boots, and their scenarios:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestOutage(t *testing.T) {
	ok := func(t float64, s string) ProbeLine { return ProbeLine{T: t, Server: s} }
	fail := func(t float64) ProbeLine { return ProbeLine{T: t} }
	lines := []ProbeLine{
		ok(9.8, "rs1"), ok(10.0, "rs2"), // t0 = 10.1: the fault comes later
		ok(10.2, "rs1"), ok(10.4, "rs2"), // still answered before the power-off
		fail(11.5), fail(12.6), fail(13.7),
		ok(14.0, "rs1"), ok(14.2, "rs2"),
		fail(15.3), ok(15.5, "rs1"), // a shorter gap later (the failback)
	}
	last, first, failed, err := Outage(lines, 10.1)
	if err != nil {
		t.Fatal(err)
	}
	if last != 10.4 || first != 14.0 || failed != 3 {
		t.Errorf("Outage = %.1f..%.1f, %d failed; want 10.4..14.0, 3 failed", last, first, failed)
	}
	if _, _, _, err := Outage(lines[2:], 10.1); err == nil {
		t.Error("no answer before t0: want an error")
	}
	if _, _, _, err := Outage(lines[:2], 10.1); err == nil {
		t.Error("no answer after t0: want an error")
	}
}

// TestScenarioChecksHaveRoom: every scenario's checks, the spec as given
// (seed-dr) included, get the VMs' timeout and interval, while a spec's
// longer ones are kept; every derived spec still validates (timeout below
// interval).
func TestScenarioChecksHaveRoom(t *testing.T) {
	base := exampleSpec(t)
	for _, sc := range Scenarios {
		s, err := deriveSpec(base, sc.Spec)
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		for _, sv := range s.Services {
			if c := sv.Check; c.Timeout < vmCheckTimeout || c.Interval < vmCheckInterval || c.Timeout >= c.Interval {
				t.Errorf("%s: %s checks every %d s with a timeout of %d s, want at least %d and %d s", sc.Name, sv.Name, c.Interval, c.Timeout, vmCheckInterval, vmCheckTimeout)
			}
		}
	}
	if base.Services[0].Check.Timeout != 3 {
		t.Errorf("deriving changed the base spec's check timeout to %d", base.Services[0].Check.Timeout)
	}
	long, err := deriveSpec(base, func(s *cluster.Spec) error {
		s.Services[0].Check.Interval, s.Services[0].Check.Timeout = 60, 30
		s.Services[1].Check.Interval, s.Services[1].Check.Timeout = 5, 11
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := long.Services[0].Check; c.Interval != 60 || c.Timeout != 30 {
		t.Errorf("a spec's longer check became interval %d, timeout %d", c.Interval, c.Timeout)
	}
	if c := long.Services[1].Check; c.Interval != 12 || c.Timeout != 11 {
		t.Errorf("interval 5, timeout 11 became interval %d, timeout %d; want 12, 11", c.Interval, c.Timeout)
	}
}

// TestSysVRealServer: the keepalived scenarios run the last real server at
// init: sysv, the others as the spec says; a cluster booted for another
// init system on a host is not reused.
func TestSysVRealServer(t *testing.T) {
	base := exampleSpec(t)
	for _, sc := range []*Scenario{keepalivedScenario, connSyncScenario} {
		s := derived(t, base, sc.Spec)
		var inits []string
		for _, h := range s.Hosts {
			inits = append(inits, h.Name+"="+h.Init)
		}
		if got := strings.Join(inits, " "); got != "linuxha1=systemd linuxha2=systemd rs1=systemd rs2=sysv" {
			t.Errorf("%s: %s", sc.Name, got)
		}
	}
	ka := derived(t, base, keepalivedSpec)
	plan := plannedNetwork(t, ka)
	c := &Cluster{Spec: ka, plan: plan}
	cs := derived(t, base, connSyncScenario.Spec)
	if !c.compatible(cs) {
		t.Error("conn-sync does not reuse the keepalived cluster")
	}
	systemd := derived(t, ka, func(s *cluster.Spec) error { s.Host("rs2").Init = cluster.InitSystemd; return nil })
	if c.compatible(systemd) {
		t.Error("a spec with rs2 at init: systemd runs on the cluster that booted rs2 with sysvinit")
	}
}

func TestRCLinkProblems(t *testing.T) {
	header := `### BEGIN INIT INFO
# Provides:          lvs-realserver
# Required-Start:    $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
### END INIT INFO`
	links := func(ls ...string) string {
		var b strings.Builder
		for _, l := range ls {
			fmt.Fprintf(&b, "/etc/rc%s.d/%s01lvs-realserver ../init.d/lvs-realserver\n", l[1:], l[:1])
		}
		return b.String()
	}
	cases := []struct {
		name, links string
		want        []string
	}{
		{"update-rc.d defaults", links("K0", "K1", "S2", "S3", "S4", "S5", "K6"), nil},
		{"none", "", []string{"no S link of lvs-realserver in /etc/rc2.d", "no K link of lvs-realserver in /etc/rc0.d"}},
		{"disabled", links("K0", "K1", "K2", "K3", "K4", "K5", "K6"), []string{"a K link of lvs-realserver in /etc/rc2.d, want S"}},
		{"rcS", links("K0", "K1", "S2", "S3", "S4", "S5", "K6", "SS"), []string{"in /etc/rcS.d, a runlevel its header does not name"}},
		{"elsewhere", strings.Replace(links("K0", "K1", "S2", "S3", "S4", "S5", "K6"), "../init.d/lvs-realserver", "/usr/local/sbin/other", 1),
			[]string{"points at /usr/local/sbin/other"}},
	}
	for _, c := range cases {
		got := strings.Join(rcLinkProblems(header, c.links, "lvs-realserver"), "\n")
		if (got == "") != (len(c.want) == 0) {
			t.Errorf("%s: problems %q, want %q", c.name, got, c.want)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: problems %q lack %q", c.name, got, w)
			}
		}
	}
	if p := rcLinkProblems("", links("S2"), "lvs-realserver"); len(p) == 0 || !strings.Contains(p[0], "no runlevel") {
		t.Errorf("a script without a header: %q", p)
	}
}

// TestProbeLines: each request's start, server (or failure) and time
// taken; a line cut mid-write is skipped.
func TestProbeLines(t *testing.T) {
	got := probeLines("12.50 rs1 12.61\n12.60 - 22.60\n12.70 rs2\n12.80 rs2 14.30\n")
	want := []ProbeLine{{T: 12.5, Server: "rs1", Took: 0.11}, {T: 12.6, Took: 10}, {T: 12.8, Server: "rs2", Took: 1.5}}
	if len(got) != len(want) {
		t.Fatalf("probeLines = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].T != want[i].T || got[i].Server != want[i].Server || math.Abs(got[i].Took-want[i].Took) > 1e-9 {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
