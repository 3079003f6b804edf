package vmtests

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

// TestFRRConf checks the router's configuration for the ecmp scenario's
// spec with FRR's own checker (vtysh --dryrun), and that it says what the
// README asks of a router that spreads the VIPs over the directors.
func TestFRRConf(t *testing.T) {
	s := derived(t, exampleSpec(t), ecmpSpec)
	conf := frrConf(s)
	for _, want := range []string{
		"router bgp 65000\n", " bgp router-id 192.168.7.254\n", " no bgp ebgp-requires-policy\n",
		" bgp bestpath as-path multipath-relax\n", " timers bgp 3 9\n", "  maximum-paths 16\n",
		" neighbor 192.168.7.9 remote-as 65011\n", " neighbor 192.168.7.10 remote-as 65012\n", " neighbor 192.168.7.8 remote-as 65013\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("frr.conf lacks %q:\n%s", want, conf)
		}
	}
	vtysh := testenv.LookPath(t, "vtysh", "frr")
	file := filepath.Join(t.TempDir(), "frr.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(vtysh, "--dryrun", "--config_dir", filepath.Dir(file), "-f", file).CombinedOutput(); err != nil {
		t.Errorf("vtysh --dryrun: %v\n%s\n%s", err, out, conf)
	}
}

func TestPlanNetworkRouted(t *testing.T) {
	s := derived(t, exampleSpec(t), ecmpSpec)
	p := plannedNetwork(t, s)
	if p.Router != RouterUplink || p.Client != RoutedClient.Addr() || len(p.Legs) != 1 || p.Legs[0].String() != "192.168.7.254/24" {
		t.Errorf("router %v client %v legs %v", p.Router, p.Client, p.Legs)
	}
	setup := strings.Join(p.clientSetup(s, "eth0"), "\n")
	for _, want := range []string{"ip addr add 198.51.100.10/24 dev eth0", "ip route add default via 198.51.100.1",
		"ip route replace 10.10.10.10/32 via 198.51.100.1 dev eth0 src 198.51.100.10"} {
		if !strings.Contains(setup, want) {
			t.Errorf("client setup lacks %q:\n%s", want, setup)
		}
	}
	if strings.Contains(setup, "192.168.7.254") || strings.Contains(setup, "ip_forward") {
		t.Errorf("the client behind the router has a router leg or forwards:\n%s", setup)
	}
	args := strings.Join(p.routerArgs("52:54:00:00:00:07"), " ")
	if args != "lvs.ifname=52:54:00:00:00:07,eth0 lvs.ip=eth0,192.168.7.254/24 lvs.ip=eth0,198.51.100.1/24" {
		t.Errorf("router args %s", args)
	}
	// The router is the one peer, at the hosts' gateway.
	s.HA.BGP.Peers[0].Address = "192.168.7.253"
	if _, err := planNetwork(s); err == nil {
		t.Error("a peer other than the router leg: want an error")
	}
}

func TestRoutePaths(t *testing.T) {
	multi := `10.10.10.10 nhid 27 proto bgp metric 20 
	nexthop via 192.168.7.9 dev eth0 weight 1 
	nexthop via 192.168.7.10 dev eth0 weight 1 
	nexthop via 192.168.7.8 dev eth0 weight 1 
`
	want := []netip.Addr{netip.MustParseAddr("192.168.7.8"), netip.MustParseAddr("192.168.7.9"), netip.MustParseAddr("192.168.7.10")}
	if got := routePaths(multi); !slices.Equal(got, want) {
		t.Errorf("multipath: %v", got)
	}
	if got := routePaths("10.10.10.10 nhid 30 via 192.168.7.10 dev eth0 proto bgp metric 20 \n"); len(got) != 1 || got[0] != want[2] {
		t.Errorf("one path: %v", got)
	}
	if got := routePaths(""); len(got) != 0 {
		t.Errorf("no route: %v", got)
	}
}

func TestParseStats(t *testing.T) {
	out := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.10.10.10:80                     23      138        0     9545        0
  -> 192.168.7.11:80                    14       84        0     5810        0
  -> 192.168.7.12:80                     9       54        0     3735        0
`
	st, err := parseStats(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Conns != 23 || st.Real["192.168.7.11:80"] != 14 || st.Real["192.168.7.12:80"] != 9 || len(st.Real) != 2 {
		t.Errorf("parseStats = %+v", st)
	}
	if _, err := parseStats(strings.Replace(out, " 23 ", " 23K ", 1)); err == nil {
		t.Error("a rounded counter (no --exact): want an error")
	}
	if _, err := parseStats("IP Virtual Server version 1.2.1 (size=4096)\n"); err == nil {
		t.Error("no virtual service: want an error")
	}
}

func TestConnEntries(t *testing.T) {
	out := `IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.51.100.10:41003 10.10.10.10:7     192.168.7.12:7
TCP 01:50  FIN_WAIT    198.51.100.21:41001 10.10.10.10:7     192.168.7.11:7
TCP 14:58  ESTABLISHED 198.51.100.10:41004 10.10.10.10:80    192.168.7.11:80
`
	got := connEntries(out, "10.10.10.10:7")
	want := []connEntry{
		{netip.MustParseAddrPort("198.51.100.10:41003"), "ESTABLISHED", "192.168.7.12:7"},
		{netip.MustParseAddrPort("198.51.100.21:41001"), "FIN_WAIT", "192.168.7.11:7"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("connEntries = %v, want %v", got, want)
	}
}

func TestEchoLines(t *testing.T) {
	got := echoLines("0 101.25 101.31\n1 102.26 102.30\n2 103.2")
	if len(got) != 2 || got[1] != (echoLine{102.26, 102.30}) {
		t.Errorf("echoLines = %v", got)
	}
}

func TestClientPorts(t *testing.T) {
	out := `Active Internet connections (w/o servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State
tcp        0      0 198.51.100.10:50468     10.10.10.10:7           ESTABLISHED
tcp        0      0 198.51.100.10:50470     10.10.10.10:7           SYN_SENT
tcp        0      0 198.51.100.10:50472     10.10.10.10:80          ESTABLISHED
tcp        0      0 198.51.100.10:50474     10.10.10.10:7           ESTABLISHED
tcp        0      0 198.51.100.10:50468     10.10.10.10:7           ESTABLISHED
`
	if got := clientPorts(out, "10.10.10.10:7"); !slices.Equal(got, []int{50468, 50474}) {
		t.Errorf("clientPorts = %v", got)
	}
}
