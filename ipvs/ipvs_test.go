package ipvs

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/clustertest"
)

// The seed's cluster: two rr services on one VIP, both real servers, weight 1.
func TestBuildSeed(t *testing.T) {
	tb := Build(clustertest.Example(t))
	want := []string{
		"-A -t 192.168.7.110:23 -s rr",
		"-a -t 192.168.7.110:23 -r 192.168.7.11:23 -g -w 1",
		"-a -t 192.168.7.110:23 -r 192.168.7.12:23 -g -w 1",
		"-A -t 192.168.7.110:80 -s rr",
		"-a -t 192.168.7.110:80 -r 192.168.7.11:80 -g -w 1",
		"-a -t 192.168.7.110:80 -r 192.168.7.12:80 -g -w 1",
	}
	if !wantLines(t, "rules", tb.Rules(), want) {
		t.FailNow()
	}
	if got := tb.Named("http").Dests[1].Host; got != "rs2" {
		t.Errorf("http's second real server is %q, want rs2", got)
	}
	if got := len(tb.ServicesOf("rs1")); got != 2 {
		t.Errorf("rs1 serves %d services, want 2", got)
	}
}

// Every form ipvsadm 1.31 saves: IPv6 in brackets, a firewall mark of
// either family, persistence with a netmask, one-packet scheduling,
// scheduler flags, and the tunnel types with their options.
const saved = `-A -t 192.168.7.110:443 -s wrr -p 600 -M 255.255.255.0
-a -t 192.168.7.110:443 -r 192.168.7.21:443 -g -w 3
-a -t 192.168.7.110:443 -r 192.168.7.22:443 -i -w 1 --tun-type ipip
-A -f 7 -s sh -b sh-fallback,sh-port
-a -f 7 -r 192.168.7.21:0 -g -w 1
-A -f 8 -6 -s rr
-a -f 8 -6 -r [2001:db8::21]:0 -g -w 1
-A -u [2001:db8::100]:53 -s mh -p 300 -M 64 -o -b mh-fallback,mh-port
-a -u [2001:db8::100]:53 -r [2001:db8::21]:53 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum
-a -u [2001:db8::100]:53 -r [2001:db8::22]:53 -i -w 2 --tun-type gre --tun-nocsum
-A -t 10.0.0.1:8080 -s wlc
-a -t 10.0.0.1:8080 -r 10.0.1.5:80 -m -w 0
`

func TestParseRulesRoundTrip(t *testing.T) {
	tb := mustParse(t, ParseRules, saved)
	if n := len(tb.Services); n != 5 {
		t.Fatalf("%d services, want 5", n)
	}
	u := tb.Service(Key{Proto: UDP, Addr: netip.MustParseAddr("2001:db8::100"), Port: 53})
	if u == nil || !u.OnePacket || u.Persistent != 300 || u.Netmask != "64" || strings.Join(u.SchedFlags, ",") != "mh-fallback,mh-port" {
		t.Fatalf("IPv6 UDP service parsed as %+v", u)
	}
	if d := u.Dests[0]; d.Method != Tunnel || d.Tunnel != (TunnelOpts{Type: "gue", Port: 6080, Csum: "csum"}) || d.Weight != 2 {
		t.Errorf("GUE real server parsed as %+v", d)
	}
	if d := tb.Services[0].Dests[1]; d.Tunnel != (TunnelOpts{}) {
		t.Errorf("--tun-type ipip is the default and must parse as it: %+v", d.Tunnel)
	}
	if s := tb.Service(Key{Mark: 8, V6: true}); s == nil || !s.Is6() {
		t.Errorf("fwmark 8 -6 not found as an IPv6 firewall-mark service")
	}
	// Encoding the parsed table and parsing it again gives the same table:
	// the encoder writes every property the parser reads.
	again := mustParse(t, ParseRules, strings.Join(tb.Rules(), "\n"))
	if d := Diff(tb, again); len(d) > 0 || !reflect.DeepEqual(tb, again) {
		t.Errorf("round trip differs: %v\n%s", d, strings.Join(tb.Rules(), "\n"))
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"-a -t 1.2.3.4:80 -r 1.2.3.5:80 -g -w 1", "line 1 \"-a -t 1.2.3.4:80 -r 1.2.3.5:80 -g -w 1\": real server of tcp 1.2.3.4:80 before its -A line"},
		{"-A -t www.example.com:80 -s rr", "bad virtual address \"www.example.com:80\""},
		{"-A -t 1.2.3.4:80", "no scheduler (-s)"},
		{"-A -t 1.2.3.4:80 -s rr\n-A -t 1.2.3.4:80 -s wrr", "line 2"},
		{"-C", "want -A or -a"},
		{"-A -t 1.2.3.4:80 -s rr\n-a -t 1.2.3.4:80 -r 1.2.3.5:80 -g -w x", "bad weight \"x\": want a number"},
	} {
		_, err := ParseRules(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseRules(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

// listed is `ipvsadm -L -n` of the same kind of table, with connection
// counts, laid out as ipvsadm 1.31 prints it.
const listed = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.7.110:23 rr
  -> 192.168.7.11:23              Route   1      3          0
  -> 192.168.7.12:23              Route   0      1          7
TCP  192.168.7.110:443 wrr persistent 600 mask 255.255.255.0
  -> 192.168.7.21:443             Tunnel  3      0          0
FWM  7 sh (sh-fallback,sh-port)
  -> 192.168.7.21:0               Masq    1      0          0
FWM  8 IPv6 rr
UDP  [2001:db8::100]:53 mh (mh-fallback,mh-port) persistent 300 mask 64 ops
  -> [2001:db8::21]:53            Tunnel  2      0          12
`

func TestParseList(t *testing.T) {
	tb := mustParse(t, ParseList, listed)
	if n := len(tb.Services); n != 5 {
		t.Fatalf("%d services, want 5", n)
	}
	telnet := tb.Services[0]
	if d := telnet.Dests[1]; d.Weight != 0 || d.ActiveConns != 1 || d.InactConns != 7 || d.Method != Route {
		t.Errorf("rs2 of telnet parsed as %+v", d)
	}
	want := mustParse(t, ParseRules, `-A -t 192.168.7.110:23 -s rr
-a -t 192.168.7.110:23 -r 192.168.7.11:23 -g -w 1
-a -t 192.168.7.110:23 -r 192.168.7.12:23 -g -w 0
-A -t 192.168.7.110:443 -s wrr -p 600 -M 255.255.255.0
-a -t 192.168.7.110:443 -r 192.168.7.21:443 -i -w 3
-A -f 7 -s sh -b sh-port,sh-fallback
-a -f 7 -r 192.168.7.21:0 -m -w 1
-A -f 8 -6 -s rr
-A -u [2001:db8::100]:53 -s mh -p 300 -M 64 -o -b mh-fallback,mh-port
-a -u [2001:db8::100]:53 -r [2001:db8::21]:53 -i -w 2`)
	if d := Diff(want, tb); len(d) > 0 {
		t.Errorf("the listed table differs from the same rules: %v", d)
	}
	if _, err := ParseList("TCP  192.168.7.110:23 rr\n  -> 192.168.7.11:23 Route 1 0"); err == nil {
		t.Error("a real-server line with four columns parsed")
	}
}

func TestDiff(t *testing.T) {
	want := mustParse(t, ParseRules, `-A -t 192.168.7.110:80 -s rr
-a -t 192.168.7.110:80 -r 192.168.7.11:80 -g -w 1
-a -t 192.168.7.110:80 -r 192.168.7.12:80 -g -w 2
-a -t 192.168.7.110:80 -r 192.168.7.13:80 -g -w 1
-A -t 192.168.7.110:23 -s rr
-a -t 192.168.7.110:23 -r 192.168.7.11:23 -g -w 1`)
	live := mustParse(t, ParseRules, `-A -t 192.168.7.110:80 -s wlc
-a -t 192.168.7.110:80 -r 192.168.7.11:80 -g -w 0
-a -t 192.168.7.110:80 -r 192.168.7.12:80 -g -w 3
-a -t 192.168.7.110:80 -r 192.168.7.14:80 -g -w 1
-A -t 192.168.7.110:8080 -s rr`)
	var got []string
	for _, d := range Diff(want, live) {
		got = append(got, d.String())
	}
	wantDrift := []string{
		"tcp 192.168.7.110:80: service scheduler rr in the spec, scheduler wlc live",
		"tcp 192.168.7.110:80 -> 192.168.7.11:80: quiescent (weight 0 live, 1 in the spec)",
		"tcp 192.168.7.110:80 -> 192.168.7.12:80: weight 2 in the spec, 3 live",
		"tcp 192.168.7.110:80 -> 192.168.7.13:80: missing from the live table",
		"tcp 192.168.7.110:80 -> 192.168.7.14:80: in the live table, not in the spec",
		"tcp 192.168.7.110:23: missing from the live table",
		"tcp 192.168.7.110:8080: in the live table, not in the spec",
	}
	wantLines(t, "drift", got, wantDrift)
	if !Equal(want, want) || Equal(want, live) {
		t.Error("Equal disagrees with Diff")
	}
}

// optionsSpec is the example moved to keepalived (which balances SCTP and
// keeps GUE and GRE tunnels) with a service for each IPVS option: the
// rules of every one must restore into the same table.
func optionsSpec(t *testing.T) *cluster.Spec {
	t.Helper()
	s := clustertest.Example(t)
	s.HA.Backend = cluster.BackendKeepalived
	off := cluster.Check{Type: "off", Interval: 10, Timeout: 5}
	s.Services = append(s.Services,
		cluster.Service{Name: "dns", VIP: "192.168.7.110", Port: 53, Protocol: "udp", Scheduler: "mh", Forwarding: cluster.ForwardTUN,
			OnePacket: true, SchedulerFlags: []string{"mh-port", "mh-fallback"}, Tunnel: &cluster.Tunnel{Type: cluster.TunnelGUE, Port: 6080, Checksum: cluster.CsumOn}, Check: off},
		cluster.Service{Name: "sig", VIP: "192.168.7.110", Port: 2905, Protocol: "sctp", Scheduler: "sh", Forwarding: cluster.ForwardTUN,
			SchedulerFlags: []string{"sh-port"}, Tunnel: &cluster.Tunnel{Type: cluster.TunnelGRE, Checksum: cluster.CsumNone}, Check: off},
		cluster.Service{Name: "remote", VIP: "192.168.7.110", Port: 4789, Protocol: "udp", Scheduler: "rr", Forwarding: cluster.ForwardTUN,
			Tunnel: &cluster.Tunnel{Type: cluster.TunnelGUE, Port: 6081, Checksum: cluster.CsumRemote}, Check: off},
		cluster.Service{Name: "plain", VIP: "192.168.7.110", Port: 8080, Protocol: "tcp", Scheduler: "wlc", Forwarding: cluster.ForwardTUN,
			Tunnel: &cluster.Tunnel{Type: cluster.TunnelIPIP}, Check: off},
	)
	yes, mode := true, 2
	s.IPVS = cluster.IPVS{Timeouts: cluster.Timeouts{TCP: 3600, UDP: 60}, ExpireNodestConn: &yes, ExpireQuiescentTemplate: &yes, ConnReuseMode: &mode}
	s.HA.Sync = cluster.Sync{Enabled: true, Interface: "eth1", SyncID: 9}
	return clustertest.Valid(t, s)
}

// TestBuildOptions: the spec's IPVS options reach the model, and the
// rules encode them as ipvsadm 1.31's -S does.
func TestBuildOptions(t *testing.T) {
	tb := Build(optionsSpec(t))
	want := []string{
		"-A -u 192.168.7.110:53 -s mh -o -b mh-fallback,mh-port",
		"-a -u 192.168.7.110:53 -r 192.168.7.11:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
		"-a -u 192.168.7.110:53 -r 192.168.7.12:53 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
		"-A --sctp-service 192.168.7.110:2905 -s sh -b sh-port",
		"-a --sctp-service 192.168.7.110:2905 -r 192.168.7.11:2905 -i -w 1 --tun-type gre",
		"-a --sctp-service 192.168.7.110:2905 -r 192.168.7.12:2905 -i -w 1 --tun-type gre",
		"-A -u 192.168.7.110:4789 -s rr",
		"-a -u 192.168.7.110:4789 -r 192.168.7.11:4789 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum",
		"-a -u 192.168.7.110:4789 -r 192.168.7.12:4789 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum",
		"-A -t 192.168.7.110:8080 -s wlc",
		"-a -t 192.168.7.110:8080 -r 192.168.7.11:8080 -i -w 1",
		"-a -t 192.168.7.110:8080 -r 192.168.7.12:8080 -i -w 1",
	}
	wantLines(t, "rules", tb.Rules()[6:], want)
	if s := tb.Named("dns"); s.Tunnel != (TunnelOpts{Type: "gue", Port: 6080, Csum: "csum"}) {
		t.Errorf("dns's tunnel options: %+v", s.Tunnel)
	}
	if tb.Timeouts != (Timeouts{TCP: 3600, UDP: 60}) || tb.Sync == nil || *tb.Sync != (Sync{Interface: "eth1", SyncID: 9}) {
		t.Errorf("timeouts %+v, sync %+v", tb.Timeouts, tb.Sync)
	}
	wantSysctls := []Sysctl{{"expire_nodest_conn", 1}, {"expire_quiescent_template", 1}, {"conn_reuse_mode", 2}}
	if !reflect.DeepEqual(tb.Sysctls, wantSysctls) {
		t.Errorf("sysctls %+v, want %+v", tb.Sysctls, wantSysctls)
	}
}

// TestRulesRoundTrip: what Rules writes, ParseRules reads back into the
// same table: every property of every service and real server, less what
// only the spec knows (names, hosts, the spec's method and tunnel of a
// service).
func TestRulesRoundTrip(t *testing.T) {
	wantRoundTrip(t, Build(optionsSpec(t)))
}

// wantLines reports whether got, what the test produced, is want; where
// not, it fails the test and prints both a line each.
func wantLines(t *testing.T, what string, got, want []string) bool {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return true
	}
	t.Errorf("%s:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	return false
}

// mustParse is the table parse reads from text, a fixture: an error fails
// the test.
func mustParse(t *testing.T, parse func(string) (*Table, error), text string) *Table {
	t.Helper()
	tb, err := parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// wantRoundTrip checks that the rules of built read back into built less
// what only the spec knows: names, hosts, the spec's method and tunnel of
// a service, the address a firewall-mark service's packets are marked for.
func wantRoundTrip(t *testing.T, built *Table) {
	t.Helper()
	parsed := mustParse(t, ParseRules, strings.Join(built.Rules(), "\n"))
	if d := Diff(built, parsed); len(d) > 0 {
		t.Errorf("the parsed rules differ: %v", d)
	}
	for i := range built.Services {
		s := &built.Services[i]
		s.Name, s.Method, s.Tunnel = "", "", TunnelOpts{}
		if s.Mark != 0 {
			s.VIP, s.MarkPorts = netip.Addr{}, nil
		}
		for j := range s.Dests {
			s.Dests[j].Host = ""
		}
	}
	if !reflect.DeepEqual(built.Services, parsed.Services) {
		t.Errorf("round trip:\nbuilt  %+v\nparsed %+v", built.Services, parsed.Services)
	}
}

func TestParseTimeout(t *testing.T) {
	got, err := ParseTimeout("Timeout (tcp tcpfin udp): 900 120 300\n")
	if err != nil || got != (Timeouts{900, 120, 300}) {
		t.Errorf("ParseTimeout = %+v, %v", got, err)
	}
	if args := strings.Join((Timeouts{TCP: 3600}).SetArgs(), " "); args != "--set 3600 0 0" {
		t.Errorf("SetArgs = %s, want --set 3600 0 0 (0 keeps the current value)", args)
	}
	for _, bad := range []string{"", "Timeout (tcp tcpfin udp): 900 120", "Timeout (tcp tcpfin udp): 900 x 300"} {
		if _, err := ParseTimeout(bad); err == nil {
			t.Errorf("ParseTimeout(%q) parsed", bad)
		}
	}
}

// TestParseDaemons reads ipvsadm 1.31's list of the sync daemons, as a
// kernel since 4.3 reports them, and finds each daemon Daemons starts by
// the line's beginning Listed gives.
func TestParseDaemons(t *testing.T) {
	out := "master sync daemon (mcast=eth1, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
		"backup sync daemon (mcast=eth1, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
	got, err := ParseDaemons(out)
	if err != nil {
		t.Fatal(err)
	}
	want := (Sync{Interface: "eth1", SyncID: 9}).Daemons()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
	for _, d := range want {
		if !strings.Contains(out, d.Listed()+",") {
			t.Errorf("%q is not how ipvsadm lists the %s daemon", d.Listed(), d.State)
		}
	}
	if got := strings.Join(want[1].StartArgs(), " "); got != "--start-daemon backup --mcast-interface eth1 --syncid 9" {
		t.Errorf("StartArgs = %s", got)
	}
	if d, err := ParseDaemons("master sync daemon (mcast=eth0, syncid=0)"); err != nil || len(d) != 1 || d[0].Interface != "eth0" {
		t.Errorf("an old kernel's line parsed as %+v, %v", d, err)
	}
	if _, err := ParseDaemons("sync daemon is running"); err == nil {
		t.Error("a line of another form parsed")
	}
}

// TestBuildActiveActive: directors that all forward at once (the bgp
// backend) take up connections another director began, and ICMP errors
// about them: sloppy_tcp and schedule_icmp, and sloppy_sctp with an SCTP
// service. A backend with one active director gets neither.
func TestBuildActiveActive(t *testing.T) {
	base := []Sysctl{{"expire_nodest_conn", 1}, {"expire_quiescent_template", 1}, {"conn_reuse_mode", 1}}
	s := clustertest.Example(t)
	if got := Build(s).Sysctls; !reflect.DeepEqual(got, base) {
		t.Errorf("heartbeat: sysctls %+v, want %+v", got, base)
	}
	s.HA.Backend = cluster.BackendBGP
	want := append(append([]Sysctl(nil), base...), Sysctl{"sloppy_tcp", 1}, Sysctl{"schedule_icmp", 1})
	if got := Build(s).Sysctls; !reflect.DeepEqual(got, want) {
		t.Errorf("bgp: sysctls %+v, want %+v", got, want)
	}
	s.Services[0].Protocol = "sctp"
	want = append(append([]Sysctl(nil), base...), Sysctl{"sloppy_tcp", 1}, Sysctl{"sloppy_sctp", 1}, Sysctl{"schedule_icmp", 1})
	if got := Build(s).Sysctls; !reflect.DeepEqual(got, want) {
		t.Errorf("bgp with sctp: sysctls %+v, want %+v", got, want)
	}
}
