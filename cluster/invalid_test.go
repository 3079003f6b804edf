package cluster

import (
	"os"
	"strings"
	"testing"
)

// invalidSpecs are edits of testdata/base.yaml, each with the exact error
// (file:line:col: field: message) it must produce. Line numbers refer to
// the edited file.
var invalidSpecs = []struct {
	name      string
	old, new  string // replace old with new in base.yaml ("" old: append new)
	wantError string
}{
	{"wrong apiVersion", "apiVersion: lvsforge.dev/v1alpha1", "apiVersion: v1",
		"c.yaml:1:1: apiVersion: invalid value \"v1\": expected lvsforge.dev/v1alpha1"},
	{"unknown top-level field", "kind: Cluster\n", "kind: Cluster\nnodes: []\n",
		`c.yaml:3:1: nodes: unknown field "nodes"; valid fields here: apiVersion, ha, hosts, kernel, kind, metadata, patchSets, services`},
	{"unknown nested field", "    scheduler: rr\n", "    scheduler: rr\n    sched: rr\n",
		`c.yaml:12:5: services[0].sched: unknown field "sched"; valid fields here: check, fallback, forwarding, fwmark, name, persistence, port, protocol, quiescent, realPort, scheduler, vip`},
	{"YAML syntax", "  name: t\n", "  name: [t\n", "c.yaml:3:1: YAML syntax: did not find expected ',' or ']'"},
	{"port is text", "    port: 80", "    port: http",
		`c.yaml:10:11: services[0].port: expected an integer, got "http"`},
	{"port out of range", "    port: 80", "    port: 70000",
		"c.yaml:10:5: services[0].port: 70000 is out of range: expected 1-65535"},
	{"list where a mapping is due", "metadata:\n  name: t\n", "metadata: [t]\n",
		"c.yaml:3:11: metadata: expected a mapping, got a list"},
	{"unknown scheduler", "    scheduler: rr", "    scheduler: fastest",
		`c.yaml:11:5: services[0].scheduler: unknown scheduler "fastest": expected one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos`},
	{"unknown forwarding", "    forwarding: dr", "    forwarding: magic",
		`c.yaml:12:5: services[0].forwarding: invalid value "magic": expected one of dr, tun, nat`},
	{"VIP not an address", "    vip: 192.168.7.110", "    vip: 192.168.7.300",
		`c.yaml:9:5: services[0].vip: invalid IPv4 address "192.168.7.300": expected e.g. 192.168.7.110`},
	{"host address without prefix", "    address: 192.168.7.11/24", "    address: 192.168.7.11",
		`c.yaml:24:5: hosts[2].address: invalid address "192.168.7.11": expected an IPv4 address with prefix length, e.g. 192.168.7.9/24`},
	{"VIP equals a RIP", "    vip: 192.168.7.110", "    vip: 192.168.7.11",
		"c.yaml:9:5: services[0].vip: address 192.168.7.11 is already used by host rs1"},
	{"duplicate DIP", "    address: 192.168.7.10/24", "    address: 192.168.7.9/24",
		"c.yaml:20:5: hosts[1].address: address 192.168.7.9 is already used by host d1"},
	{"DR real server off the VIP subnet", "    address: 192.168.7.11/24", "    address: 10.0.0.11/24",
		`c.yaml:24:5: hosts[2].address: LVS-DR real server rs1 (10.0.0.11/24) must be on the L2 subnet of VIP 192.168.7.110 of service "http"`},
	{"NAT gateway not a director", "    forwarding: dr", "    forwarding: nat",
		"c.yaml:25:5: hosts[2].gateway: a LVS-NAT real server's gateway must be a director address or ha.floatingGateway, not 192.168.7.254"},
	{"duplicate host name", "  - name: d2", "  - name: d1",
		`c.yaml:18:5: hosts[1].name: duplicate host name "d1"`},
	{"invalid host name", "  - name: rs1", "  - name: rs_1",
		`c.yaml:22:5: hosts[2].name: invalid value "rs_1": a host name (uname -n) of letters, digits and -`},
	{"unknown role", "    role: realserver", "    role: backend",
		`c.yaml:23:5: hosts[2].role: invalid value "backend": expected one of director, realserver`},
	{"interface name too long", "heartbeat: eth1, heartbeatAddress: 192.168.0.1/24}", "heartbeat: eth1-heartbeat-link, heartbeatAddress: 192.168.0.1/24}",
		`c.yaml:17:32: hosts[0].interfaces.heartbeat: invalid value "eth1-heartbeat-link": an interface name of at most 15 letters, digits and _ . -`},
	{"weight out of range", "    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    weights: {http: 70000}\n",
		"c.yaml:26:15: hosts[2].weights.http: 70000 is out of range: expected 0-65535"},
	{"weight for an unknown service", "    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    weights: {ftp: 1}\n",
		`c.yaml:26:15: hosts[2].weights.ftp: unknown service "ftp": expected one of http`},
	{"service without real server", "    role: realserver", "    role: director",
		`c.yaml:8:5: services[0]: service "http" has no real server: give a real server a weight for it`},
	{"heartbeat with one director", "  - name: d2\n    role: director", "  - name: d2\n    role: realserver",
		"c.yaml:13:1: hosts: the heartbeat backend needs exactly two directors, found 1"},
	{"deadtime not above keepalive", "  deadtime: 30", "  deadtime: 2",
		"c.yaml:29:3: ha.deadtime: deadtime (2) must be greater than keepalive (2)"},
	{"initdead too short", "  initdead: 120", "  initdead: 45",
		"c.yaml:30:3: ha.initdead: initdead (45) must be at least twice deadtime (30)"},
	{"bad duration", "  keepalive: 2", "  keepalive: soon",
		`c.yaml:28:14: ha.keepalive: invalid duration "soon": use whole seconds (30, 30s) or milliseconds (500ms)`},
	{"heartbeat without authkey", "  authkey: {file: authkey}\n", "",
		"c.yaml:26:1: ha.authkey: heartbeat needs an authkey: set file (a file holding the secret) or env (a variable holding it)"},
	{"authkey from both file and env", "  authkey: {file: authkey}", "  authkey: {file: authkey, env: LVS_KEY}",
		"c.yaml:33:3: ha.authkey: set only one of file and env"},
	{"heartbeat without media", "  media:\n    - {type: bcast, interface: eth1}\n", "",
		"c.yaml:26:1: ha.media: heartbeat needs at least one medium (bcast, ucast, mcast or serial)"},
	{"unknown medium", "{type: bcast, interface: eth1}", "{type: carrier-pigeon, interface: eth1}",
		`c.yaml:32:8: ha.media[0].type: invalid value "carrier-pigeon": expected one of bcast, ucast, mcast, serial`},
	{"serial device not a tty", "{type: bcast, interface: eth1}", "{type: serial, device: /dev/sda}",
		`c.yaml:32:22: ha.media[0].device: invalid value "/dev/sda": a serial device such as /dev/ttyS0`},
	{"unknown primary", "  backend: heartbeat\n", "  backend: heartbeat\n  primary: rs1\n",
		`c.yaml:28:3: ha.primary: unknown director "rs1": expected one of d1, d2`},
	{"bad kernel version", `  version: "6.1.192"`, `  version: latest`,
		`c.yaml:6:3: kernel.version: invalid value "latest": an upstream kernel version such as 6.1.192`},
	{"tarball source without sha256", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  source: {type: tarball, path: /srv/linux.tar.xz}",
		"c.yaml:7:3: kernel.source.sha256: a tarball source must pin its sha256 (sha256sum FILE)"},
	{"bad Kconfig option", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  director: {options: [IP_VS=y]}",
		`c.yaml:7:24: kernel.director.options[0]: invalid value "IP_VS=y": a Kconfig setting such as CONFIG_IP_VS=y, CONFIG_FOO=m, CONFIG_BAR=n, CONFIG_N=64 or CONFIG_S="text"`},
	{"unknown patch set", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  realserver: {patchSets: [hidden]}",
		`c.yaml:7:28: kernel.realserver.patchSets[0]: unknown patch set "hidden": define it under patchSets`},
	{"fwmark service with a port", "    port: 80\n", "    port: 80\n    fwmark: 5\n",
		"c.yaml:10:5: services[0].port: a firewall-mark service has no port: remove port or fwmark"},
	{"keepalived cannot match a body", "  backend: heartbeat", "  backend: keepalived",
		""},
	{"alias", "    port: 80", "    port: &p 80\n    realPort: *p",
		"c.yaml:11:15: services[0].realPort: aliases are not supported; write the value out"},
	{"empty spec", "", "", ""},
}

func TestInvalidSpecs(t *testing.T) {
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range invalidSpecs {
		t.Run(tc.name, func(t *testing.T) {
			text := string(base)
			switch {
			case tc.name == "empty spec":
				text = "# nothing here\n"
				tc.wantError = "c.yaml:1:1: the spec is empty: start from `lvsforge init`"
			case tc.name == "keepalived cannot match a body":
				text = strings.Replace(text, tc.old, tc.new, 1)
				text = strings.Replace(text, "    forwarding: dr\n", "    forwarding: dr\n    check: {type: http, receive: hello}\n", 1)
				tc.wantError = "c.yaml:13:25: services[0].check.receive: keepalived's HTTP_GET checks the status code, not the body: remove receive, or use the heartbeat backend (ldirectord)"
			default:
				if !strings.Contains(text, tc.old) {
					t.Fatalf("base.yaml has no %q", tc.old)
				}
				text = strings.Replace(text, tc.old, tc.new, 1)
			}
			_, err := Parse([]byte(text), "c.yaml", "testdata")
			if err == nil {
				t.Fatalf("accepted; want %s", tc.wantError)
			}
			if !IsInvalid(err) {
				t.Fatalf("error is not a spec error: %v", err)
			}
			for _, e := range err.(Errors) {
				if e.Error() == tc.wantError {
					return
				}
			}
			t.Errorf("want the error\n  %s\ngot\n  %v", tc.wantError, err)
		})
	}
	if len(invalidSpecs) < 30 {
		t.Errorf("only %d invalid specs; the table must hold at least 30", len(invalidSpecs))
	}
}
