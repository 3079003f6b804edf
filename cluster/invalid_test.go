package cluster

import (
	"os"
	"strings"
	"testing"
)

// heartbeatHA is base.yaml's ha section: what a case switching to
// keepalived replaces (keepalived uses none of it).
const heartbeatHA = "  backend: heartbeat\n  keepalive: 2\n  deadtime: 30\n  initdead: 120\n  media:\n    - {type: bcast, interface: eth1}\n  authkey: {file: authkey}\n"

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
		`c.yaml:3:1: nodes: unknown field "nodes"; valid fields here: apiVersion, ha, hosts, ipvs, kernel, kind, metadata, patchSets, services`},
	{"unknown nested field", "    scheduler: rr\n", "    scheduler: rr\n    sched: rr\n",
		"c.yaml:12:5: services[0].sched: unknown field \"sched\"; valid fields here: check, fallback, forwarding, fwmark, fwmarkPorts, name, ops, persistence, port, protocol, quiescent, realPort, scheduler, schedulerFlags, tunnel, vip"},
	{"YAML syntax", "  name: t\n", "  name: [t\n", "c.yaml:4:9: YAML syntax: this [ is never closed: end the list with ]"},
	// YAML syntax: the offending line, and what is wrong in words.
	{"tab indents a line", "    role: director\n", "\trole: director\n",
		"c.yaml:15:1: YAML syntax: a tab indents this line: YAML indents with spaces"},
	{"unclosed flow mapping", "  name: t\n", "  name: {t\n", "c.yaml:4:9: YAML syntax: this { is never closed: end the mapping with }"},
	{"unclosed double quote", "  name: t\n", "  name: \"t\n", `c.yaml:4:9: YAML syntax: this " is never closed: end the string with "`},
	{"unclosed single quote", "  name: t\n", "  name: 't\n", "c.yaml:4:9: YAML syntax: this ' is never closed: end the string with '"},
	{"bracket closed by the other kind", "    - {type: bcast, interface: eth1}\n", "    - {type: bcast, interface: eth1]\n",
		"c.yaml:32:7: YAML syntax: this { is never closed: the ] at line 32, column 36 comes first; close the { with } before it"},
	{"line indented deeper than its sibling", "    port: 80\n", "      port: 80\n",
		`c.yaml:10:7: YAML syntax: this line is indented 6 spaces, deeper than the entry above (4), which already has a value: indent it 4 spaces, or nest it under a key that ends with ":"`},
	{"line indented between two levels", "  - name: rs1\n", " - name: rs1\n",
		"c.yaml:22:2: YAML syntax: this line is indented 1 space, but the entries above it are at 0, 2 or 4: indent it as far as the entries it belongs with"},
	{"control character", "  name: t\n", "  name: t\x07\n", `c.yaml:4:10: YAML syntax: character '\a' is not allowed in a YAML file: remove it`},
	{"second YAML document", "  name: t\n", "  name: t\n---\nkind: Cluster\n",
		"c.yaml:5:1: a second YAML document starts here: a spec is one document; remove this --- and what follows it"},
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
		`c.yaml:9:5: services[0].vip: invalid address "192.168.7.300": expected an IPv4 address such as 192.168.7.110 or an IPv6 one such as 2001:db8::110`},
	{"host address without prefix", "    address: 192.168.7.11/24", "    address: 192.168.7.11",
		`c.yaml:24:5: hosts[2].address: invalid address "192.168.7.11": expected an address with prefix length, e.g. 192.168.7.9/24 or 2001:db8::9/64`},
	{"VIP equals a RIP", "    vip: 192.168.7.110", "    vip: 192.168.7.11",
		"c.yaml:9:5: services[0].vip: address 192.168.7.11 is already used by host rs1"},
	{"duplicate DIP", "    address: 192.168.7.10/24", "    address: 192.168.7.9/24",
		"c.yaml:20:5: hosts[1].address: address 192.168.7.9 is already used by host d1"},
	{"DR real server off the VIP subnet", "    address: 192.168.7.11/24", "    address: 10.0.0.11/24",
		`c.yaml:24:5: hosts[2].address: LVS-DR real server rs1 (10.0.0.11/24) must be on the L2 subnet of VIP 192.168.7.110 of service "http"`},
	{"VIP on no director's subnet", "    vip: 192.168.7.110", "    vip: 10.0.0.110",
		"c.yaml:9:5: services[0].vip: VIP 10.0.0.110 of service \"http\" is on no director's subnet (192.168.7.0/24): a director brings the VIP up on its public interface; use an address of that subnet\n" +
			"c.yaml:24:5: hosts[2].address: LVS-DR real server rs1 (192.168.7.11/24) must be on the L2 subnet of VIP 10.0.0.110 of service \"http\""},
	{"one director off the VIP's subnet", "    address: 192.168.7.10/24", "    address: 10.0.0.10/24",
		"c.yaml:20:5: hosts[1].address: director d2 (10.0.0.10/24) is not on the subnet of VIP 192.168.7.110 of service \"http\": the VIP is brought up on its public interface"},
	{"VIP is a network address", "    vip: 192.168.7.110", "    vip: 192.168.7.0",
		"c.yaml:9:5: services[0].vip: 192.168.7.0 is the network address of 192.168.7.0/24, which no host can have: use an address from 192.168.7.1 to 192.168.7.254"},
	{"RIP is a broadcast address", "    address: 192.168.7.11/24", "    address: 192.168.7.255/24",
		"c.yaml:24:5: hosts[2].address: 192.168.7.255 is the broadcast address of 192.168.7.0/24, which no host can have: use an address from 192.168.7.1 to 192.168.7.254"},
	{"heartbeat address is a network address", "heartbeatAddress: 192.168.0.1/24}", "heartbeatAddress: 192.168.0.0/24}",
		"c.yaml:17:49: hosts[0].interfaces.heartbeatAddress: 192.168.0.0 is the network address of 192.168.0.0/24, which no host can have: use an address from 192.168.0.1 to 192.168.0.254"},
	{"gateway is a broadcast address", "    gateway: 192.168.7.254\n", "    gateway: 192.168.7.255\n",
		"c.yaml:25:5: hosts[2].gateway: 192.168.7.255 is the broadcast address of 192.168.7.0/24, which no host can have: use an address from 192.168.7.1 to 192.168.7.254"},
	{"floating gateway is a broadcast address", "  initdead: 120\n", "  initdead: 120\n  floatingGateway: 192.168.7.255/24\n",
		"c.yaml:31:3: ha.floatingGateway: 192.168.7.255 is the broadcast address of 192.168.7.0/24, which no host can have: use an address from 192.168.7.1 to 192.168.7.254"},
	{"NAT gateway not a director", "    forwarding: dr", "    forwarding: nat",
		"c.yaml:25:5: hosts[2].gateway: a LVS-NAT real server's gateway must be a director address or ha.floatingGateway, not 192.168.7.254"},
	{"duplicate host name", "  - name: d2", "  - name: d1",
		"c.yaml:18:5: hosts[1].name: duplicate host name \"d1\"\n" +
			"c.yaml:20:5: hosts[1].address: address 192.168.7.10 is already used by host d1"},
	{"invalid host name", "  - name: rs1", "  - name: rs_1",
		`c.yaml:22:5: hosts[2].name: invalid value "rs_1": a host name (uname -n) such as linuxha1 or linuxha1.example.com: labels of letters, digits and -, joined by dots, at most 64 characters`},
	{"host name longer than uname -n", "  - name: rs1", "  - name: rs1." + strings.Repeat("a", 61),
		`c.yaml:22:5: hosts[2].name: invalid value "rs1.` + strings.Repeat("a", 61) + `": a host name (uname -n) such as linuxha1 or linuxha1.example.com: labels of letters, digits and -, joined by dots, at most 64 characters`},
	{"host name ending in a dot", "  - name: rs1", "  - name: rs1.example.com.",
		`c.yaml:22:5: hosts[2].name: invalid value "rs1.example.com.": a host name (uname -n) such as linuxha1 or linuxha1.example.com: labels of letters, digits and -, joined by dots, at most 64 characters`},
	{"unknown role", "    role: realserver", "    role: backend",
		"c.yaml:8:5: services[0]: service \"http\" has no real server: add a host with role realserver\n" +
			"c.yaml:23:5: hosts[2].role: invalid value \"backend\": expected one of director, realserver"},
	{"interface name too long", "heartbeat: eth1, heartbeatAddress: 192.168.0.1/24}", "heartbeat: eth1-heartbeat-link, heartbeatAddress: 192.168.0.1/24}",
		"c.yaml:17:32: hosts[0].interfaces.heartbeat: invalid value \"eth1-heartbeat-link\": an interface name of at most 15 letters, digits and _ . -\n" +
			"c.yaml:32:21: ha.media[0].interface: director d1 has no interface \"eth1\" (it has eth0, eth1-heartbeat-link): heartbeat sends the bcast medium from every director; use an interface all of them have, or name it in the director's interfaces"},
	{"weight out of range", "    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    weights: {http: 70000}\n",
		"c.yaml:26:15: hosts[2].weights.http: 70000 is out of range: expected 0-65535"},
	{"weight for an unknown service", "    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    weights: {ftp: 1}\n",
		"c.yaml:26:15: hosts[2].weights.ftp: unknown service \"ftp\": expected one of http"},
	// A real server serves every service unless its weight for it is 0.
	{"every real server's weight 0", "    gateway: 192.168.7.254\n", "    gateway: 192.168.7.254\n    weights: {http: 0}\n",
		"c.yaml:8:5: services[0]: service \"http\" has no real server: every real server's weight for it is 0; give one of them a weight above 0 (or remove its entry: the default is 1)"},
	{"service without real server", "    role: realserver", "    role: director",
		"c.yaml:8:5: services[0]: service \"http\" has no real server: add a host with role realserver\n" +
			"c.yaml:13:1: hosts: the heartbeat backend needs exactly two directors, found 3\n" +
			"c.yaml:32:21: ha.media[0].interface: director rs1 has no interface \"eth1\" (it has eth0): heartbeat sends the bcast medium from every director; use an interface all of them have, or name it in the director's interfaces"},
	{"heartbeat with one director", "  - name: d2\n    role: director", "  - name: d2\n    role: realserver",
		"c.yaml:13:1: hosts: the heartbeat backend needs exactly two directors, found 1"},
	{"deadtime not above keepalive", "  deadtime: 30", "  deadtime: 2",
		"c.yaml:26:1: ha.warntime: warntime (10) must lie between keepalive (2) and deadtime (2)\n" +
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
	{"tarball source without sha256", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  source: {type: tarball, path: linux-6.1.192.tar.xz}",
		"c.yaml:7:3: kernel.source.sha256: a tarball source must pin its sha256 (sha256sum FILE)"},
	{"bad Kconfig option", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  director: {options: [IP_VS=y]}",
		`c.yaml:7:24: kernel.director.options[0]: invalid value "IP_VS=y": a Kconfig setting such as CONFIG_IP_VS=y, CONFIG_FOO=m, CONFIG_BAR=n, CONFIG_N=64 or CONFIG_S="text"`},
	{"patch for an unknown role", `  version: "6.1.192"`, "  version: \"6.1.192\"\npatchSets:\n  - name: hidden\n    patches:\n      - {file: hidden.diff, sha256: " + strings.Repeat("a", 64) + ", roles: [backend]}",
		`c.yaml:10:111: patchSets[0].patches[0].roles[0]: invalid value "backend": expected one of director, realserver`},
	{"tar.sign on a pinned tarball", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  source: {type: tarball, path: linux-6.1.192.tar.xz, sha256: " + strings.Repeat("a", 64) + ", verifyTarSign: true}",
		`c.yaml:7:129: kernel.source.verifyTarSign: only a kernel.org source has a .tar.sign to verify; a tarball source is trusted by its pinned sha256`},
	{"build farm host in pump mode", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  buildFarm: {engine: distcc, hosts: [\"b1:3632/8,lzo\", \"b2/4,cpp,lzo\"]}",
		`c.yaml:7:56: kernel.buildFarm.hosts[1]: invalid value "b2/4,cpp,lzo": host[:port][/jobs][,lzo], e.g. builder1:3632/8,lzo (no ,cpp: lvsforge runs distcc without pump mode)`},
	{"unknown patch set", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  realserver: {patchSets: [hidden]}",
		`c.yaml:7:28: kernel.realserver.patchSets[0]: unknown patch set "hidden": define it under patchSets`},
	{"fwmark service with a port", "    port: 80\n", "    port: 80\n    fwmark: 5\n",
		"c.yaml:8:5: services[0].fwmarkPorts: a firewall-mark service needs the ports whose tcp packets to 192.168.7.110 get mark 5, e.g. fwmarkPorts: [80, 443]\n" +
			"c.yaml:8:5: services[0].check.port: a firewall-mark service has no port to check: set check.port, or check.type off\n" +
			"c.yaml:10:5: services[0].port: a firewall-mark service has no port: remove port or fwmark"},
	{"keepalived cannot match a body", heartbeatHA, "  backend: keepalived\n",
		""},
	{"alias", "    port: 80", "    port: &p 80\n    realPort: *p",
		"c.yaml:11:15: services[0].realPort: aliases are not supported; write the value out"},
	{"empty spec", "", "", ""},
	// Firewall-mark services.
	{"fwmark service without marked ports", "    port: 80\n", "    fwmark: 5\n    check: {port: 80}\n",
		"c.yaml:8:5: services[0].fwmarkPorts: a firewall-mark service needs the ports whose tcp packets to 192.168.7.110 get mark 5, e.g. fwmarkPorts: [80, 443]"},
	{"marked ports without fwmark", "    port: 80\n", "    port: 80\n    fwmarkPorts: [80]\n",
		"c.yaml:11:5: services[0].fwmarkPorts: only a firewall-mark service marks ports: set fwmark instead of port, or remove fwmarkPorts"},
	{"marked port out of range", "    port: 80\n", "    fwmark: 5\n    fwmarkPorts: [80, 0]\n    check: {port: 80}\n",
		"c.yaml:11:23: services[0].fwmarkPorts[1]: 0 is out of range: expected 1-65535"},
	{"mark used twice", "    forwarding: dr\n", "    forwarding: dr\n  - {name: a, vip: 192.168.7.110, fwmark: 5, fwmarkPorts: [443], check: {port: 443}}\n  - {name: b, vip: 192.168.7.111, fwmark: 5, fwmarkPorts: [443], check: {port: 443}}\n",
		"c.yaml:14:35: services[2].fwmark: mark 5 is already the mark of service \"a\": each firewall-mark service needs a mark of its own"},
	{"marked port already a service", "    forwarding: dr\n", "    forwarding: dr\n  - {name: a, vip: 192.168.7.110, fwmark: 5, fwmarkPorts: [443, 80], check: {port: 443}}\n",
		"c.yaml:13:65: services[1].fwmarkPorts[1]: tcp 192.168.7.110:80 is already service \"http\": a destination belongs to one service"},
	// Strings that must not reach a command line.
	{"IPv6 zone with shell text", "    address: 192.168.7.9/24\n", "    address: 192.168.7.9/24\n    ssh: {address: \"fe80::1%eth0$(reboot)\"}\n",
		"c.yaml:17:11: hosts[0].ssh.address: invalid address \"fe80::1%eth0$(reboot)\": invalid zone \"eth0$(reboot)\": expected an interface name of at most 15 letters, digits and _ . -"},
	{"path that reads as an option", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  config: {base: -oops}",
		"c.yaml:7:12: kernel.config.base: invalid path \"-oops\": a path must not start with \"-\" (a command would take it for an option): write ./-oops"},
	{"request path with a space", "    forwarding: dr\n", "    forwarding: dr\n    check: {type: http, request: /a b}\n",
		"c.yaml:13:25: services[0].check.request: invalid value \"/a b\": a request path of letters, digits and . _ , = : / + % ? ~ - (no spaces: write %20)"},
	// The heartbeat secret, read at validation.
	{"authkey file missing", "  authkey: {file: authkey}", "  authkey: {file: no-such-authkey}",
		"c.yaml:33:13: ha.authkey.file: authkey file testdata/no-such-authkey does not exist: write the heartbeat secret into it (lvsforge init writes a random one), or use env"},
	{"authkey variable unset", "  authkey: {file: authkey}", "  authkey: {env: LVSFORGE_TEST_UNSET}",
		"c.yaml:33:13: ha.authkey.env: environment variable LVSFORGE_TEST_UNSET is not set: export it holding the heartbeat secret, or use file"},
	{"authkey secret too short", "  authkey: {file: authkey}", "  authkey: {env: LVSFORGE_TEST_SHORT}",
		"c.yaml:33:13: ha.authkey.env: the secret in $LVSFORGE_TEST_SHORT is not valid: expected 8-256 printable ASCII characters without spaces"},
	{"authkey secret with a space", "  authkey: {file: authkey}", "  authkey: {env: LVSFORGE_TEST_SPACE}",
		"c.yaml:33:13: ha.authkey.env: the secret in $LVSFORGE_TEST_SPACE is not valid: expected 8-256 printable ASCII characters without spaces"},
	{"authkey file others can read", "  authkey: {file: authkey}", "  authkey: {file: authkey-open}",
		"c.yaml:33:13: ha.authkey.file: authkey file testdata/authkey-open can be read or written by group or other (mode 0644): a heartbeat secret must be private, as heartbeat demands of its authkeys file; chmod 600 testdata/authkey-open"},
	{"authkey file the group can read", "  authkey: {file: authkey}", "  authkey: {file: authkey-group}",
		"c.yaml:33:13: ha.authkey.file: authkey file testdata/authkey-group can be read or written by group or other (mode 0640): a heartbeat secret must be private, as heartbeat demands of its authkeys file; chmod 600 testdata/authkey-group"},
	// The other files a spec names on this machine.
	{"kernel tarball missing", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  source: {type: tarball, path: linux-6.1.999.tar.xz, sha256: " + strings.Repeat("a", 64) + "}",
		"c.yaml:7:27: kernel.source.path: kernel tarball testdata/linux-6.1.999.tar.xz does not exist: copy the tarball there, or give its url instead"},
	{"distro tarball missing", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  source: {type: distro, path: /usr/src/linux-source-0.1.tar.xz, sha256: " + strings.Repeat("a", 64) + "}",
		"c.yaml:7:26: kernel.source.path: kernel tarball /usr/src/linux-source-0.1.tar.xz does not exist: install the distro's kernel source package (Debian: apt-get install linux-source-6.1), or correct the path"},
	{"kernel tarball a directory", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  source: {type: tarball, path: keys, sha256: " + strings.Repeat("a", 64) + "}",
		"c.yaml:7:27: kernel.source.path: kernel tarball testdata/keys is a directory, not a regular file: copy the tarball there, or give its url instead"},
	{"ssh key missing", "    address: 192.168.7.9/24\n", "    address: 192.168.7.9/24\n    ssh: {key: keys/d9}\n",
		"c.yaml:17:11: hosts[0].ssh.key: ssh key testdata/keys/d9 does not exist: create it (ssh-keygen -f FILE) or correct the path; without ssh.key, push uses the agent and ~/.ssh/config"},
	{"ssh key missing from home", "    address: 192.168.7.9/24\n", "    address: 192.168.7.9/24\n    ssh: {key: ~/.ssh/id_lvs}\n",
		"c.yaml:17:11: hosts[0].ssh.key: ssh key /nonexistent/home/.ssh/id_lvs does not exist: create it (ssh-keygen -f FILE) or correct the path; without ssh.key, push uses the agent and ~/.ssh/config"},
	{"ssh key in home without one", "    address: 192.168.7.9/24\n", "    address: 192.168.7.9/24\n    ssh: {key: ~/.ssh/id_lvs}\n",
		"c.yaml:17:11: hosts[0].ssh.key: ~/.ssh/id_lvs starts with ~/ but there is no home directory to find it in ($HOME is not set): write the key's full path"},
	// Timings.
	{"duration overflow", "  keepalive: 2", "  keepalive: 9999999999999",
		"c.yaml:28:14: ha.keepalive: duration \"9999999999999\" is longer than 1h: use at most 3600 seconds"},
	{"duration above 1h", "  initdead: 120", "  initdead: 2h", "c.yaml:30:13: ha.initdead: duration \"2h\" is longer than 1h: use at most 3600 seconds"},
	// A check must give up before the next one is due.
	{"check timeout as long as its interval", "    forwarding: dr\n", "    forwarding: dr\n    check: {interval: 5, timeout: 5}\n",
		"c.yaml:13:26: services[0].check.timeout: check timeout 5 is not below its interval 5: a check must give up before the next one is due; make the timeout shorter than the interval (defaults: interval 10, timeout 5)"},
	{"check interval below the default timeout", "    forwarding: dr\n", "    forwarding: dr\n    check: {interval: 3}\n",
		"c.yaml:13:13: services[0].check.interval: check timeout 5 is not below its interval 3: a check must give up before the next one is due; make the timeout shorter than the interval (defaults: interval 10, timeout 5)"},
	// A 0 the default would silently replace is refused as -5 would be.
	{"heartbeat time 0", "  deadtime: 30", "  deadtime: 0",
		`c.yaml:29:13: ha.deadtime: invalid duration "0": a heartbeat time must be above 0: use whole seconds (30, 30s) or milliseconds (500ms)`},
	{"service numbers 0", "    forwarding: dr\n", "    forwarding: dr\n    realPort: 0\n    check: {port: 0, interval: 0, timeout: 0}\n    fallback: {address: 192.168.7.50, port: 0}\n",
		"c.yaml:13:5: services[0].realPort: 0 is out of range: expected 1-65535\n" +
			"c.yaml:14:13: services[0].check.port: 0 is out of range: expected 1-65535\n" +
			"c.yaml:14:22: services[0].check.interval: 0 is out of range: expected 1-3600\n" +
			"c.yaml:14:35: services[0].check.timeout: 0 is out of range: expected 1-3600\n" +
			"c.yaml:15:39: services[0].fallback.port: 0 is out of range: expected 1-65535"},
	{"ssh port 0", "    address: 192.168.7.9/24\n", "    address: 192.168.7.9/24\n    ssh: {port: 0}\n",
		"c.yaml:17:11: hosts[0].ssh.port: 0 is out of range: expected 1-65535"},
	{"heartbeat numbers 0", "  initdead: 120\n", "  initdead: 120\n  udpPort: 0\n  baud: 0\n",
		"c.yaml:31:3: ha.udpPort: 0 is out of range: expected 1-65535\n" +
			"c.yaml:32:3: ha.baud: unsupported baud rate 0: expected one of 9600, 19200, 38400, 57600, 115200, 230400"},
	{"keepalived numbers 0", heartbeatHA, "  backend: keepalived\n  keepalived: {virtualRouterID: 0, advertInt: 0}\n",
		"c.yaml:28:16: ha.keepalived.virtualRouterID: 0 is out of range: expected 1-255\n" +
			"c.yaml:28:36: ha.keepalived.advertInt: 0 is out of range: expected 1-255"},
	{"fwmark 0", "    port: 80\n", "    port: 80\n    fwmark: 0\n", "c.yaml:11:5: services[0].fwmark: 0 is out of range: expected 1-2147483647"},
	{"panic timeout 0", `  version: "6.1.192"`, "  version: \"6.1.192\"\n  panicTimeout: 0", "c.yaml:7:3: kernel.panicTimeout: 0 is out of range: expected 1-3600"},
	// What a backend does not read.
	{"heartbeat fields with keepalived", "  backend: heartbeat\n", "  backend: keepalived\n",
		"c.yaml:28:3: ha.keepalive: the keepalived backend does not use ha.keepalive: remove it, or set ha.backend to heartbeat\n" +
			"c.yaml:29:3: ha.deadtime: the keepalived backend does not use ha.deadtime: remove it, or set ha.backend to heartbeat\n" +
			"c.yaml:30:3: ha.initdead: the keepalived backend does not use ha.initdead: remove it, or set ha.backend to heartbeat\n" +
			"c.yaml:31:3: ha.media: the keepalived backend does not use ha.media: remove it, or set ha.backend to heartbeat\n" +
			"c.yaml:33:3: ha.authkey: the keepalived backend does not use ha.authkey: remove it, or set ha.backend to heartbeat"},
	{"more heartbeat fields with keepalived", "  backend: heartbeat\n  keepalive: 2\n  deadtime: 30\n  initdead: 120\n  media:\n    - {type: bcast, interface: eth1}\n  authkey: {file: authkey}\n",
		"  backend: keepalived\n  warntime: 10\n  udpPort: 694\n  baud: 19200\n  ping: [192.168.7.254]\n",
		"c.yaml:28:3: ha.warntime: the keepalived backend does not use ha.warntime: remove it, or set ha.backend to heartbeat\n" +
			"c.yaml:29:3: ha.udpPort: the keepalived backend does not use ha.udpPort: remove it, or set ha.backend to heartbeat\n" +
			"c.yaml:30:3: ha.baud: the keepalived backend does not use ha.baud: remove it, or set ha.backend to heartbeat\n" +
			"c.yaml:31:3: ha.ping: the keepalived backend does not use ha.ping: remove it, or set ha.backend to heartbeat"},
	{"keepalived fields with heartbeat", "  initdead: 120\n", "  initdead: 120\n  keepalived: {virtualRouterID: 7, unicast: true}\n",
		"c.yaml:31:3: ha.keepalived: the heartbeat backend does not use ha.keepalived: remove it, or set ha.backend to keepalived"},
	// Interfaces every director must have.
	{"bcast interface missing on a director", "heartbeat: eth1, heartbeatAddress: 192.168.0.2/24}", "heartbeat: eth2, heartbeatAddress: 192.168.0.2/24}",
		"c.yaml:32:21: ha.media[0].interface: director d2 has no interface \"eth1\" (it has eth0, eth2): heartbeat sends the bcast medium from every director; use an interface all of them have, or name it in the director's interfaces"},
	{"sync interface missing on a director", heartbeatHA, "  backend: keepalived\n  sync: {enabled: true, interface: eth2}\n",
		"c.yaml:28:25: ha.sync.interface: director d1 has no interface \"eth2\" (it has eth0, eth1): keepalived's lvs_sync_daemon runs on every director; use an interface all of them have, or name it in the director's interfaces\n" +
			"c.yaml:28:25: ha.sync.interface: director d2 has no interface \"eth2\" (it has eth0, eth1): keepalived's lvs_sync_daemon runs on every director; use an interface all of them have, or name it in the director's interfaces"},
	// What keepalived -t or the kernel would refuse.
	{"DR sorry server on another port", "    forwarding: dr\n", "    forwarding: dr\n    fallback: {address: 192.168.7.50, port: 8080}\n",
		"c.yaml:13:39: services[0].fallback.port: with dr forwarding the sorry server gets the packets unchanged: the port must be the virtual port 80, or be left out"},
	{"NAT gateway is one director's own address", "    gateway: 192.168.7.254\n", "    gateway: 192.168.7.9\n",
		"c.yaml:25:5: hosts[2].gateway: 192.168.7.9 is director d1's own address, but with 2 directors the real servers' gateway must move with the VIP: set ha.floatingGateway and use its address here"},
}

// Edits shared by the option cases: the keepalived backend instead of
// heartbeat, and base.yaml's service line after which options go.
const (
	toKeepalived = "  backend: keepalived\n"
	svcOpts      = "    forwarding: dr\n"
	tunOpts      = "    forwarding: tun\n"
)

// invalidOptionSpecs are edits of testdata/base.yaml for the IPVS,
// check and keepalived options: pairs of old and new text, replaced in
// order, each case with the exact errors it must produce.
var invalidOptionSpecs = []struct {
	name      string
	edits     []string
	wantError string
}{
	// IPVS per service.
	{"ops on a tcp service", []string{svcOpts, svcOpts + "    ops: true\n"},
		"c.yaml:13:5: services[0].ops: one-packet scheduling is for udp services (IPVS then schedules each datagram on its own); a tcp service keeps its connections: remove ops"},
	{"ops on a firewall-mark service with heartbeat", []string{"    port: 80\n", "    fwmark: 5\n    fwmarkPorts: [53]\n    protocol: udp\n    ops: true\n    check: {type: off}\n"},
		"c.yaml:13:5: services[0].ops: ldirectord sets one-packet scheduling on udp services with a port only, not on firewall-mark ones: use ha.backend keepalived, or a udp service with a port"},
	{"scheduler flags of a scheduler without flags", []string{svcOpts, svcOpts + "    schedulerFlags: [mh-port]\n"},
		"c.yaml:13:22: services[0].schedulerFlags[0]: scheduler rr takes no flags; only mh (mh-fallback, mh-port) and sh (sh-fallback, sh-port) do: remove schedulerFlags"},
	{"scheduler flag of another scheduler", []string{"    scheduler: rr\n", "    scheduler: sh\n    schedulerFlags: [sh-port, mh-port, sh-port]\n"},
		"c.yaml:12:31: services[0].schedulerFlags[1]: invalid value \"mh-port\": scheduler sh takes sh-fallback, sh-port\n" +
			"c.yaml:12:40: services[0].schedulerFlags[2]: flag sh-port is listed twice"},
	{"tunnel options on a DR service", []string{svcOpts, svcOpts + "    tunnel: {type: ipip}\n"},
		"c.yaml:13:5: services[0].tunnel: tunnel options are for forwarding tun, not dr: remove tunnel, or set forwarding: tun"},
	{"gue tunnel without its port", []string{heartbeatHA, toKeepalived, svcOpts, tunOpts + "    tunnel: {type: gue}\n"},
		"c.yaml:13:5: services[0].tunnel.port: a gue tunnel needs the UDP port the real servers decapsulate on, e.g. port: 6080"},
	{"port on a gre tunnel", []string{heartbeatHA, toKeepalived, svcOpts, tunOpts + "    tunnel: {type: gre, port: 6080}\n"},
		"c.yaml:13:25: services[0].tunnel.port: only a gue tunnel has a port: remove port, or set type gue"},
	{"gue port 0", []string{heartbeatHA, toKeepalived, svcOpts, tunOpts + "    tunnel: {type: gue, port: 0}\n"},
		"c.yaml:13:25: services[0].tunnel.port: 0 is out of range: expected 1-65535"},
	{"gre tunnel with checksums", []string{heartbeatHA, toKeepalived, svcOpts, tunOpts + "    tunnel: {type: gre, checksum: csum}\n"},
		"c.yaml:13:25: services[0].tunnel.checksum: the real servers decapsulate GRE on gre0, the keyless fallback tunnel, which drops packets that carry a checksum: use checksum nocsum, or type gue"},
	{"checksum of an ipip tunnel", []string{svcOpts, tunOpts + "    tunnel: {checksum: remcsum}\n"},
		"c.yaml:13:14: services[0].tunnel.checksum: an ipip tunnel has no checksum option: remove checksum, or use type gue"},
	{"unknown tunnel type", []string{svcOpts, tunOpts + "    tunnel: {type: vxlan}\n"},
		"c.yaml:13:14: services[0].tunnel.type: invalid value \"vxlan\": expected one of ipip, gue, gre"},
	{"gue tunnel with heartbeat", []string{svcOpts, tunOpts + "    tunnel: {type: gue, port: 6080}\n"},
		"c.yaml:13:14: services[0].tunnel.type: ldirectord adds and re-weights real servers as ipip tunnels, which would undo gue: a gue tunnel needs ha.backend keepalived"},
	{"sctp service with heartbeat", []string{svcOpts, svcOpts + "    protocol: sctp\n    check: {type: off}\n"},
		"c.yaml:13:5: services[0].protocol: ldirectord balances tcp and udp services only: an sctp service needs ha.backend keepalived"},
	{"sctp service with keepalived's TCP check", []string{heartbeatHA, toKeepalived, svcOpts, svcOpts + "    protocol: sctp\n"},
		"c.yaml:8:5: services[0].check.type: keepalived's TCP_CHECK cannot check a sctp service: use type external (a program of yours) or off"},
	{"unknown protocol", []string{svcOpts, svcOpts + "    protocol: dccp\n"},
		"c.yaml:13:5: services[0].protocol: invalid value \"dccp\": expected one of tcp, udp, sctp"},
	// Checks.
	{"external check without its command", []string{svcOpts, svcOpts + "    check: {type: external}\n"},
		"c.yaml:13:5: services[0].check.command: an external check needs the program to run, e.g. command: /usr/local/bin/check-lvs (it gets the virtual address, virtual port, real address and real port)"},
	{"external check command with arguments", []string{svcOpts, svcOpts + "    check: {type: external, command: /usr/local/bin/check --fast}\n"},
		"c.yaml:13:29: services[0].check.command: invalid command \"/usr/local/bin/check --fast\": an absolute path of letters, digits and . _ / + - (no arguments: the check gets the virtual address, virtual port, real address and real port), e.g. /usr/local/bin/check-lvs"},
	{"external check command not absolute", []string{svcOpts, svcOpts + "    check: {type: external, command: check-lvs}\n"},
		"c.yaml:13:29: services[0].check.command: invalid command \"check-lvs\": an absolute path of letters, digits and . _ / + - (no arguments: the check gets the virtual address, virtual port, real address and real port), e.g. /usr/local/bin/check-lvs"},
	{"command without an external check", []string{svcOpts, svcOpts + "    check: {type: connect, command: /usr/local/bin/check-lvs}\n"},
		"c.yaml:13:28: services[0].check.command: only an external check runs a command: set check.type external, or remove command"},
	{"retries of a check that is off", []string{svcOpts, svcOpts + "    check: {type: off, retries: 2}\n"},
		"c.yaml:13:24: services[0].check.retries: a service with check.type off is never checked, so nothing is retried: remove retries"},
	{"retries out of range", []string{svcOpts, svcOpts + "    check: {retries: 101}\n"},
		"c.yaml:13:13: services[0].check.retries: 101 is out of range: expected 0-100"},
	{"negotiate smtp with keepalived", []string{heartbeatHA, toKeepalived, svcOpts, svcOpts + "    check: {type: negotiate, service: smtp}\n"},
		"c.yaml:13:30: services[0].check.service: with keepalived, negotiate checks speak http (HTTP_GET) and https (SSL_GET) only; use type connect, external or off for \"smtp\""},
	// keepalived's VRRP options.
	{"unicast VRRP with one director", []string{"  - name: d2\n    role: director", "  - name: d2\n    role: realserver", heartbeatHA, toKeepalived + "  keepalived: {unicast: true}\n"},
		"c.yaml:28:16: ha.keepalived.unicast: unicast VRRP sends to the other directors' addresses, and there is no other director: remove unicast"},
	{"tracking the VRRP interface", []string{heartbeatHA, toKeepalived + "  keepalived: {trackInterfaces: [eth1, eth0, eth1]}\n"},
		"c.yaml:28:40: ha.keepalived.trackInterfaces[1]: eth0 is the VRRP interface (the directors' public one), which keepalived tracks by itself: list other interfaces\n" +
			"c.yaml:28:46: ha.keepalived.trackInterfaces[2]: interface eth1 is listed twice"},
	{"tracked interface missing on a director", []string{"heartbeat: eth1, heartbeatAddress: 192.168.0.2/24}", "heartbeat: eth2, heartbeatAddress: 192.168.0.2/24}", heartbeatHA, toKeepalived + "  keepalived: {trackInterfaces: [eth1]}\n"},
		"c.yaml:28:34: ha.keepalived.trackInterfaces[0]: director d2 has no interface \"eth1\" (it has eth0, eth2): keepalived tracks it on every director; use an interface all of them have, or name it in the director's interfaces"},
	{"track script without a command", []string{heartbeatHA, toKeepalived + "  keepalived:\n    trackScript: {interval: 0, weight: 300}\n"},
		"c.yaml:29:5: ha.keepalived.trackScript.command: a track script needs the command to run, e.g. command: /usr/local/bin/check-lvs\n" +
			"c.yaml:29:19: ha.keepalived.trackScript.interval: 0 is out of range: expected 1-3600\n" +
			"c.yaml:29:32: ha.keepalived.trackScript.weight: 300 is out of range: expected -253-253"},
	{"track script not an absolute path", []string{heartbeatHA, toKeepalived + "  keepalived:\n    trackScript: {command: pidof haproxy}\n"},
		"c.yaml:29:19: ha.keepalived.trackScript.command: invalid command \"pidof haproxy\": an absolute path, then arguments of letters, digits and . _ , = : / + - separated by single spaces, e.g. /usr/local/bin/check-lvs --quiet"},
	{"notify command with two spaces", []string{heartbeatHA, toKeepalived + "  keepalived:\n    notify: {master: /usr/bin/logger  master}\n"},
		"c.yaml:29:14: ha.keepalived.notify.master: invalid command \"/usr/bin/logger  master\": an absolute path, then arguments of letters, digits and . _ , = : / + - separated by single spaces, e.g. /usr/local/bin/check-lvs --quiet"},
	{"gratuitous ARP refresh 0", []string{heartbeatHA, toKeepalived + "  keepalived: {garpMasterRefresh: 0}\n"},
		"c.yaml:28:16: ha.keepalived.garpMasterRefresh: 0 is out of range: expected 1-3600"},
	// Connection sync with heartbeat, IPVS settings.
	{"heartbeat sync interface missing on a director", []string{"heartbeat: eth1, heartbeatAddress: 192.168.0.2/24}", "heartbeat: eth2, heartbeatAddress: 192.168.0.2/24}", "  initdead: 120\n", "  initdead: 120\n  sync: {enabled: true, interface: eth1}\n"},
		"c.yaml:31:25: ha.sync.interface: director d2 has no interface \"eth1\" (it has eth0, eth2): lvs-director runs IPVS's sync daemons on both directors; use an interface all of them have, or name it in the director's interfaces\n" +
			"c.yaml:33:21: ha.media[0].interface: director d2 has no interface \"eth1\" (it has eth0, eth2): heartbeat sends the bcast medium from every director; use an interface all of them have, or name it in the director's interfaces"},
	{"IPVS settings out of range", []string{"kind: Cluster\n", "kind: Cluster\nipvs:\n  timeouts: {tcp: 2678401, tcpFin: 0}\n  connReuseMode: 4\n"},
		"c.yaml:4:14: ipvs.timeouts.tcp: 2678401 is out of range: expected 1-2678400\n" +
			"c.yaml:4:28: ipvs.timeouts.tcpFin: 0 is out of range: expected 1-2678400\n" +
			"c.yaml:5:3: ipvs.connReuseMode: 4 is out of range: expected 0-3"},
}

// invalidEnv sets (NAME=value) or unsets (NAME) variables for a case.
var invalidEnv = map[string][]string{
	"authkey variable unset":      {"LVSFORGE_TEST_UNSET"},
	"authkey secret too short":    {"LVSFORGE_TEST_SHORT=short"},
	"authkey secret with a space": {"LVSFORGE_TEST_SPACE=long enough but spaced"},
	"ssh key missing from home":   {"HOME=/nonexistent/home"},
	"ssh key in home without one": {"HOME"},
}

func TestInvalidSpecs(t *testing.T) {
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range invalidSpecs {
		t.Run(tc.name, func(t *testing.T) {
			for _, kv := range invalidEnv[tc.name] {
				name, value, set := strings.Cut(kv, "=")
				t.Setenv(name, value)
				if !set {
					os.Unsetenv(name)
				}
			}
			text := string(base)
			switch {
			case tc.name == "empty spec":
				text = "# nothing here\n"
				tc.wantError = "c.yaml:1:1: the spec is empty: start from `lvsforge init`"
			case tc.name == "keepalived cannot match a body":
				text = strings.Replace(text, tc.old, tc.new, 1)
				text = strings.Replace(text, "    forwarding: dr\n", "    forwarding: dr\n    check: {type: connect, receive: hello}\n", 1)
				tc.wantError = "c.yaml:13:28: services[0].check.receive: keepalived matches a response body (the regex of HTTP_GET and SSL_GET) in http and https checks only: remove receive, or use check.type http"
			case tc.name == "NAT gateway is one director's own address":
				text = strings.Replace(text, "    forwarding: dr\n", "    forwarding: nat\n", 1)
				fallthrough
			default:
				if !strings.Contains(text, tc.old) {
					t.Fatalf("base.yaml has no %q", tc.old)
				}
				text = strings.Replace(text, tc.old, tc.new, 1)
			}
			wantInvalid(t, text, tc.wantError)
		})
	}
	for _, tc := range invalidOptionSpecs {
		t.Run(tc.name, func(t *testing.T) {
			wantInvalid(t, edited(t, tc.edits), tc.wantError)
		})
	}
	if n := len(invalidSpecs) + len(invalidOptionSpecs); n < 30 {
		t.Errorf("only %d invalid specs; the tables must hold at least 30", n)
	}
}

// wantInvalid parses text and checks it fails with exactly want.
func wantInvalid(t *testing.T, text, want string) {
	t.Helper()
	_, err := Parse([]byte(text), "c.yaml", "testdata")
	if err == nil {
		t.Fatalf("accepted; want %s", want)
	}
	if !IsInvalid(err) {
		t.Fatalf("error is not a spec error: %v", err)
	}
	var got []string
	for _, e := range err.(Errors) {
		got = append(got, e.Error())
	}
	if g := strings.Join(got, "\n"); g != want {
		t.Errorf("want exactly\n%s\ngot\n%s", want, g)
	}
}
