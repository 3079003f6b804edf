package roles

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

// TestRealServerScriptInNetns runs the seed's rendered real-server script
// for real, as root, in a network namespace of its own (a dummy eth0 holding
// rs1's address) with a private /run: start twice is harmless, the VIP sits
// once on lo with ARP suppressed, stop removes it and restores the sysctls.
func TestRealServerScriptInNetns(t *testing.T) {
	ipTool := netnsTools(t)
	ns := fmt.Sprintf("lvsforge-rs-%d", testNonce())
	addNetns(t, ipTool, ns)
	// A veth pair (this kernel may have no dummy driver) with one end as the namespace's eth0.
	outer := fmt.Sprintf("lvsrs%d", testNonce()%100000)
	vethInto(t, ipTool, outer, ns)
	if out, err := exec.Command(ipTool, "link", "set", outer, "up").CombinedOutput(); err != nil {
		t.Fatalf("set veth up: %v: %s", err, out)
	}

	script := filepath.Join(renderTree(t, "seed"), "rs1", "usr", "local", "sbin", "lvs-realserver")
	driver := `set -u
mount -t tmpfs tmpfs /run
ip link set lo up
ip addr add 192.168.7.11/24 dev eth0
ip link set eth0 up
show() {
	echo "vips=$(ip -o addr show dev lo | grep -c ' 192.168.7.110/32 ')"
	echo "arp_ignore=$(cat /proc/sys/net/ipv4/conf/all/arp_ignore)/$(cat /proc/sys/net/ipv4/conf/eth0/arp_ignore)"
	echo "arp_announce=$(cat /proc/sys/net/ipv4/conf/all/arp_announce)/$(cat /proc/sys/net/ipv4/conf/eth0/arp_announce)"
	echo "route=$(ip route show default)"
	"$1" status >/dev/null; echo "status=$?"
}
echo "== before"; show "$1"
"$1" start; echo "start1=$?"
"$1" start; echo "start2=$?"
echo "== started"; show "$1"
"$1" stop; echo "stop=$?"
echo "== stopped"; show "$1"
`
	cmd := exec.Command(ipTool, "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "bash", "-c", driver, "driver", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("driver failed: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"== before\nvips=0\narp_ignore=0/0\narp_announce=0/0\nroute=\nstatus=3\n",
		"start1=0\nstart2=0\n",
		"== started\nvips=1\narp_ignore=1/1\narp_announce=2/2\nroute=default via 192.168.7.254 dev eth0 \nstatus=0\n",
		"stop=0\n== stopped\nvips=0\narp_ignore=0/0\narp_announce=0/0\n",
		"status=3\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in the run:\n%s", want, got)
		}
	}
}

// linkedNetns creates two network namespaces joined by a veth pair, eth0
// in the first and c0 in the second (a host and its client on one LAN),
// removed when the test ends. It brings up each one's lo and its end of the
// pair, then runs its set-up script (addresses, routes), if any. It returns
// them and a function that runs a bash script in one of them and fails the
// test if it fails.
func linkedNetns(t *testing.T, ipTool, name, hostSetup, clientSetup string) (host, client string, must func(ns, script string, args ...string) string) {
	t.Helper()
	netnsCount++
	host, client = fmt.Sprintf("lvsforge-%s-%d-%d", name, testNonce(), netnsCount), fmt.Sprintf("lvsforge-cl-%d-%d", testNonce(), netnsCount)
	addNetns(t, ipTool, host)
	addNetns(t, ipTool, client)
	if out, err := exec.Command(ipTool, "link", "add", "eth0", "netns", host, "type", "veth", "peer", "name", "c0", "netns", client).CombinedOutput(); err != nil {
		t.Fatalf("create veth: %v: %s", err, out)
	}
	must = func(ns, script string, args ...string) string {
		t.Helper()
		out, err := exec.Command(ipTool, append([]string{"netns", "exec", ns, "bash", "-c", script, "sh"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %s: %v\n%s", ns, script, err, out)
		}
		return string(out)
	}
	up := func(ns, link, setup string) {
		script := "ip link set lo up && ip link set " + link + " up"
		if setup != "" {
			script += " && " + setup
		}
		must(ns, script)
	}
	up(host, "eth0", hostSetup)
	up(client, "c0", clientSetup)
	return host, client, must
}

// TestDirectorScriptMarksInNetns runs a rendered director script for real,
// as root, in a network namespace (the director's eth0, a veth whose other
// end is a client namespace), for an IPv4 firewall-mark service (the
// keepalived variant: iptables) and an IPv6 one (keepalived-dual-stack:
// ip6tables): start twice adds the service's mangle rule once; a client's
// packets to the service's ports on its VIP leave PREROUTING with the
// mark, others do not; stop removes that rule and nothing else.
func TestDirectorScriptMarksInNetns(t *testing.T) {
	for _, tc := range []struct {
		variant, iptables string
		director, client  string // set-up of each namespace
		vip, port, mark   string
		rule              string // as iptables -S lists it
	}{
		{"keepalived", "iptables", "ip addr add 192.168.7.9/24 dev eth0", "ip addr add 192.168.7.200/24 dev c0 && ip route add 192.168.7.111/32 via 192.168.7.9",
			"192.168.7.111", "443", "0x50", "-A PREROUTING -d 192.168.7.111/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0x50/0xffffffff\n"},
		{"keepalived-dual-stack", "ip6tables", "ip addr add 2001:db8:7::2/64 dev eth0 nodad", "ip addr add 2001:db8:7::200/64 dev c0 nodad && ip route add 2001:db8:7::100/128 via 2001:db8:7::2",
			"2001:db8:7::100", "8443", "0x1bb", "-A PREROUTING -d 2001:db8:7::100/128 -p tcp -m multiport --dports 443,8443 -j MARK --set-xmark 0x1bb/0xffffffff\n"},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			ipTool := netnsTools(t)
			testenv.LookPath(t, tc.iptables, "iptables")
			testenv.LookPath(t, "timeout", "coreutils")
			director, client, must := linkedNetns(t, ipTool, "dir", tc.director, tc.client)
			sh := func(ns, script string, args ...string) {
				exec.Command(ipTool, append([]string{"netns", "exec", ns, "bash", "-c", script, "sh"}, args...)...).Run()
			}

			// The script's lock lives in /run: give it a private one that lasts across the steps.
			state := t.TempDir()
			script := filepath.Join(renderTree(t, tc.variant), "linuxha1", "usr", "local", "sbin", "lvs-director")
			if tc.variant != "keepalived" {
				script = filepath.Join(renderTree(t, tc.variant), "lb1", "usr", "local", "sbin", "lvs-director")
			}
			runScript := func(verb string) (string, int) { return runInNetns(t, ipTool, director, state, script, verb) }
			rules := func() string { return must(director, tc.iptables+" -t mangle -S PREROUTING") }

			startTwice(t, runScript)
			if got := rules(); got != "-P PREROUTING ACCEPT\n"+tc.rule {
				t.Fatalf("after two starts, mangle PREROUTING is\n%swant the one marking rule", got)
			}
			if out, code := runScript("status"); code != 0 {
				t.Errorf("status after start: exit %d\n%s", code, out)
			}
			// Count what leaves the script's rule marked: a rule of the test's own,
			// which stop must leave alone.
			must(director, tc.iptables+" -t mangle -A PREROUTING -m mark --mark "+tc.mark)
			marked := func() string {
				out := must(director, tc.iptables+" -t mangle -S PREROUTING -v")
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, "-A PREROUTING -m mark --mark "+tc.mark+" -c ") {
						return strings.Fields(l)[7]
					}
				}
				t.Fatalf("counting rule gone:\n%s", out)
				return ""
			}
			send := func(port string) {
				// Nothing answers (the VIP is keepalived's, which is not running): a SYN or two is all that goes out.
				sh(client, `timeout 1 bash -c 'exec 3<>/dev/tcp/`+tc.vip+`/'"$1"`, port)
			}
			send("22")
			if n := marked(); n != "0" {
				t.Errorf("a packet to port 22, not a service port, was marked (%s packets)", n)
			}
			send(tc.port)
			if n := marked(); n == "0" {
				t.Errorf("packets to %s port %s were not marked:\n%s", tc.vip, tc.port, must(director, tc.iptables+" -t mangle -S PREROUTING -v"))
			}

			for i := 1; i <= 2; i++ {
				if out, code := runScript("stop"); code != 0 {
					t.Fatalf("stop %d: exit %d\n%s", i, code, out)
				}
			}
			if got, want := rules(), "-P PREROUTING ACCEPT\n-A PREROUTING -m mark --mark "+tc.mark+"\n"; got != want {
				t.Errorf("after stop, mangle PREROUTING is\n%swant only the test's own rule", got)
			}
			if out, code := runScript("status"); code != 3 {
				t.Errorf("status after stop: exit %d, want 3\n%s", code, out)
			}
		})
	}
}

// TestVIPResourceInNetns runs the seed director's heartbeat resource,
// lvs-vip, for real in a network namespace with a private /run: two starts
// hold the VIP once and report it running to ResourceManager; a new version
// of the script (another VIP, as after a push) run with condrestart
// releases the old address and takes the new one; stop releases it and
// status says stopped with LSB's 3.
func TestVIPResourceInNetns(t *testing.T) {
	ipTool := netnsTools(t)
	ns := fmt.Sprintf("lvsforge-vip-%d", testNonce())
	addNetns(t, ipTool, ns)
	must := func(args ...string) string { t.Helper(); return in(t, ipTool, ns, args...) }
	vethInto(t, ipTool, fmt.Sprintf("lvsvip%d", testNonce()%100000), ns)
	must("sh", "-c", "ip link set lo up && ip addr add 192.168.7.9/24 dev eth0 && ip link set eth0 up")

	state := t.TempDir()
	orig := filepath.Join(renderTree(t, "seed"), "linuxha1", "etc", "ha.d", "resource.d", "lvs-vip")
	b, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(t.TempDir(), "lvs-vip")
	if err := os.WriteFile(moved, bytes.ReplaceAll(b, []byte("192.168.7.110/24"), []byte("192.168.7.120/24")), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(script, verb string) (string, int) { return runInNetns(t, ipTool, ns, state, script, verb) }
	addrs := func() []string {
		var got []string
		for _, f := range strings.Fields(must("ip", "-4", "-o", "addr", "show", "dev", "eth0")) {
			if strings.HasPrefix(f, "192.168.7.") && strings.Contains(f, "/") {
				got = append(got, f)
			}
		}
		return got
	}
	want := func(step string, w ...string) {
		t.Helper()
		if got := addrs(); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("after %s, eth0 holds %v, want %v", step, got, w)
		}
	}

	if out, code := run(orig, "status"); code != 3 || !strings.Contains(out, "stopped") || strings.Contains(out, "running") {
		t.Errorf("status before start: exit %d %q, want 3 and no \"running\" (ResourceManager would take it as held)", code, out)
	}
	startTwice(t, func(verb string) (string, int) { return run(orig, verb) })
	want("two starts", "192.168.7.9/24", "192.168.7.110/24")
	if out, code := run(orig, "status"); code != 0 || !strings.Contains(out, "running") {
		t.Errorf("status after start: exit %d %q, want 0 and \"running\"", code, out)
	}
	if out, code := run(moved, "condrestart"); code != 0 {
		t.Fatalf("condrestart of the new version: exit %d\n%s", code, out)
	}
	want("condrestart of a version with another VIP", "192.168.7.9/24", "192.168.7.120/24")
	if out, code := run(moved, "stop"); code != 0 {
		t.Fatalf("stop: exit %d\n%s", code, out)
	}
	want("stop", "192.168.7.9/24")
	if out, code := run(moved, "condrestart"); code != 0 || len(addrs()) != 1 {
		t.Errorf("condrestart where it is not active: exit %d %q, addresses %v: want nothing taken", code, out, addrs())
	}
}

// runInNetns runs `script verb [args]` as root in network namespace ns
// with state as its private /run, where the scripts keep their locks, and
// returns its output and exit status.
func runInNetns(t *testing.T, ipTool, ns, state, script string, args ...string) (string, int) {
	t.Helper()
	return outputAndExit(t, exec.Command(ipTool, append([]string{"netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind "$1" /run && shift 2 && exec "$0" "$@"`, script, state, "--"}, args...)...))
}

// startTwice runs a script's start twice, as a second push or a restarted
// heartbeat would: both must succeed.
func startTwice(t *testing.T, run func(verb string) (string, int)) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		if out, code := run("start"); code != 0 {
			t.Fatalf("start %d: exit %d\n%s", i, code, out)
		}
	}
}

// stopReleases runs a script's stop, then wants where (an interface) to
// hold none of the addresses held lists and status to say stopped (LSB's 3).
func stopReleases(t *testing.T, run func(verb string) (string, int), where string, held func() []string) {
	t.Helper()
	if out, code := run("stop"); code != 0 {
		t.Fatalf("stop: exit %d\n%s", code, out)
	}
	if got := held(); len(got) != 0 {
		t.Errorf("after stop %s holds %q", where, got)
	}
	if out, code := run("status"); code != 3 {
		t.Errorf("status after stop: exit %d, want 3\n%s", code, out)
	}
}

// fakeIPVSADM stands in for ipvsadm where this machine's kernel has no
// IPVS (the VM scenarios run the real one): it logs each command that
// changes something to $FAKE/log and keeps the sync daemons in $FAKE/daemons,
// listed as ipvsadm 1.31 lists them on a kernel since 4.3; -S lists
// $FAKE/table, and -R appends what it restores to $FAKE/restored.
const fakeIPVSADM = `#!/bin/bash
FAKE=/run/fake-ipvsadm
mkdir -p "$FAKE"
touch "$FAKE/daemons"
case "$*" in
"-S -n") cat "$FAKE/table" 2>/dev/null || true ;;
"-R") cat >>"$FAKE/restored" ;;
"-L --daemon") cat "$FAKE/daemons" ;;
"-L -n") ;;
--start-daemon*)
	grep -q "^$2 " "$FAKE/daemons" && { echo "ipvsadm: daemon already running" >&2; exit 1; }
	echo "$*" >>"$FAKE/log"
	echo "$2 sync daemon (mcast=$4, syncid=$6, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" >>"$FAKE/daemons"
	;;
--stop-daemon*)
	grep -q "^$2 " "$FAKE/daemons" || exit 1
	echo "$*" >>"$FAKE/log"
	grep -v "^$2 " "$FAKE/daemons" >"$FAKE/d.tmp"; mv "$FAKE/d.tmp" "$FAKE/daemons"
	;;
*) echo "$*" >>"$FAKE/log" ;;
esac
`

// fakeIPVSRunner runs a director script's verb in network namespace ns
// with state as its /run and bin, holding the stand-in ipvsadm, as its
// /usr/local/sbin (the script's PATH starts there).
func fakeIPVSRunner(t *testing.T, ipTool, ns, state, bin string) func(script, verb string) string {
	return func(script, verb string) string {
		t.Helper()
		cmd := exec.Command(ipTool, "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
			"sh", "-c", `mount --bind "$1" /run && mount --bind "$2" /usr/local/sbin && exec "$3" "$4"`, "sh", state, bin, script, verb)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(script), verb, err, out)
		}
		return string(out)
	}
}

// TestDirectorScriptLoadsNewVirtuals runs the seed director's lvs-director
// over the stand-in ipvsadm: a reload whose rules have a virtual service
// the live table lacks (a push that adds a VIP or a port) loads that one,
// with its real servers, and leaves the live ones as they are (a real
// server ldirectord quiesced stays at 0). Without it ldirectord's restart
// took the shared real servers of the live service down for a second
// (live-change's refused requests, seen in ldirectord's log).
func TestDirectorScriptLoadsNewVirtuals(t *testing.T) {
	ipTool := netnsTools(t)
	ns := netnsWith(t, ipTool, "eth0")
	bin, state, dir := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "ipvsadm"), []byte(fakeIPVSADM), 0o755); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(renderTree(t, "seed"), "linuxha1")
	rules, err := os.ReadFile(filepath.Join(tree, "etc", "ipvsadm.rules"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(tree, "usr", "local", "sbin", "lvs-director"))
	if err != nil {
		t.Fatal(err)
	}
	// The script reads the rules at their path on a host: here, the test's.
	script, rulesFile := filepath.Join(dir, "lvs-director"), filepath.Join(dir, "ipvsadm.rules")
	b = bytes.Replace(b, []byte("RULES=/etc/ipvsadm.rules\n"), []byte("RULES="+rulesFile+"\n"), 1)
	for f, data := range map[string][]byte{script: b, rulesFile: rules} {
		if err := os.WriteFile(f, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fake := filepath.Join(state, "fake-ipvsadm")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	// The live table: the telnet service only, rs1 quiesced by its check.
	live := "-A -t 192.168.7.110:23 -s rr\n-a -t 192.168.7.110:23 -r 192.168.7.11:23 -g -w 0\n-a -t 192.168.7.110:23 -r 192.168.7.12:23 -g -w 1\n"
	if err := os.WriteFile(filepath.Join(fake, "table"), []byte(live), 0o644); err != nil {
		t.Fatal(err)
	}
	restored := func() string {
		b, _ := os.ReadFile(filepath.Join(fake, "restored"))
		os.Remove(filepath.Join(fake, "restored"))
		return string(b)
	}
	run := fakeIPVSRunner(t, ipTool, ns, state, bin)
	run(script, "start")
	if got := restored(); got != "" {
		t.Fatalf("start over a live table restored\n%swant nothing", got)
	}
	run(script, "reload")
	var want string
	for _, l := range strings.SplitAfter(string(rules), "\n") {
		if strings.Contains(l, "192.168.7.110:80 ") {
			want += l
		}
	}
	if got := restored(); got != want || want == "" {
		t.Errorf("reload restored\n%swant the http service the live table lacks:\n%s", got, want)
	}
	// Once the table has every service, a reload loads nothing.
	if err := os.WriteFile(filepath.Join(fake, "table"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	run(script, "reload")
	if got := restored(); got != "" {
		t.Errorf("a reload with every service live restored\n%swant nothing", got)
	}
}

// TestDirectorScriptSyncDaemons runs the heartbeat-sync variant's
// lvs-director, as root in a network namespace with a private /run, over
// a stand-in ipvsadm (this kernel has no IPVS): start sets the timeouts and
// starts the master and the backup sync daemon with the spec's interface
// and sync ID, a second start starts nothing; a new version with another
// sync ID restarts both on reload; one without sync stops them on reload;
// stop stops the daemons it started.
func TestDirectorScriptSyncDaemons(t *testing.T) {
	ipTool := netnsTools(t)
	ns := netnsWith(t, ipTool, "eth0", "eth1")
	bin, state := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "ipvsadm"), []byte(fakeIPVSADM), 0o755); err != nil {
		t.Fatal(err)
	}
	orig := filepath.Join(renderTree(t, "heartbeat-sync"), "lb1", "usr", "local", "sbin", "lvs-director")
	b, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	// A new version with another sync ID, and one without sync (the seed's).
	resynced := filepath.Join(t.TempDir(), "lvs-director")
	b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("syncid 12"), []byte("syncid 13")), []byte("syncid=12"), []byte("syncid=13"))
	if err := os.WriteFile(resynced, b, 0o755); err != nil {
		t.Fatal(err)
	}
	unsynced := filepath.Join(renderTree(t, "seed"), "linuxha1", "usr", "local", "sbin", "lvs-director")
	run := fakeIPVSRunner(t, ipTool, ns, state, bin)
	logged := func() string {
		b, _ := os.ReadFile(filepath.Join(state, "fake-ipvsadm", "log"))
		os.Remove(filepath.Join(state, "fake-ipvsadm", "log"))
		return string(b)
	}
	run(orig, "start")
	run(orig, "start")
	if got, want := logged(), "--set 1800 30 60\n"+
		"--start-daemon master --mcast-interface eth1 --syncid 12\n"+
		"--start-daemon backup --mcast-interface eth1 --syncid 12\n"+
		"--set 1800 30 60\n"; got != want {
		t.Errorf("two starts ran\n%swant the timeouts set twice, each daemon started once:\n%s", got, want)
	}
	if out := run(orig, "status"); !strings.Contains(out, "master sync daemon (mcast=eth1, syncid=12,") || !strings.Contains(out, "backup sync daemon") {
		t.Errorf("status does not list the sync daemons:\n%s", out)
	}
	run(resynced, "reload")
	if got, want := logged(), "--set 1800 30 60\n"+
		"--stop-daemon master\n--start-daemon master --mcast-interface eth1 --syncid 13\n"+
		"--stop-daemon backup\n--start-daemon backup --mcast-interface eth1 --syncid 13\n"; got != want {
		t.Errorf("a reload with another sync ID ran\n%swant both daemons restarted:\n%s", got, want)
	}
	run(unsynced, "reload")
	if got, want := logged(), "--stop-daemon master\n--stop-daemon backup\n"; got != want {
		t.Errorf("a reload of a version without sync ran\n%swant both daemons stopped:\n%s", got, want)
	}
	run(resynced, "reload")
	logged()
	run(resynced, "stop")
	if got, want := logged(), "--stop-daemon master\n--stop-daemon backup\n-C\n"; got != want {
		t.Errorf("stop ran\n%swant the daemons stopped, the table cleared:\n%s", got, want)
	}
}

// TestRealServerScriptIPv6InNetns runs the dual-stack variant's rendered
// real-server script (web1: an IPv4 and an IPv6 LVS-DR service) for real,
// as root, in a network namespace whose eth0 is a veth to a client
// namespace. Two starts hold the IPv6 VIP once on lo, as a deprecated /128.
// From the client, a neighbour solicitation for the VIP gets no answer,
// while one for the real server's own address does (so the solicitations
// do reach it); a packet sent as the director sends it (to the real
// server's MAC) reaches the VIP and is answered. Stop removes the VIP.
func TestRealServerScriptIPv6InNetns(t *testing.T) {
	ipTool := netnsTools(t)
	ndisc6 := testenv.LookPath(t, "ndisc6", "ndisc6")
	testenv.LookPath(t, "timeout", "coreutils")
	rs, client, must := linkedNetns(t, ipTool, "rs6", "ip addr add 10.7.0.21/24 dev eth0 && ip addr add 2001:db8:7::21/64 dev eth0 nodad", "ip addr add 2001:db8:7::200/64 dev c0 nodad")
	mac := strings.TrimSpace(must(rs, "cat /sys/class/net/eth0/address"))

	state := t.TempDir()
	script := filepath.Join(renderTree(t, "dual-stack"), "web1", "usr", "local", "sbin", "lvs-realserver")
	run := func(verb string) (string, int) { return runInNetns(t, ipTool, rs, state, script, verb) }
	const vip = "2001:db8:7::100"
	held := func() []string {
		var got []string
		for _, l := range strings.Split(must(rs, "ip -6 -o addr show dev lo"), "\n") {
			if strings.Contains(l, " "+vip+"/") {
				got = append(got, strings.Join(strings.Fields(l)[3:], " "))
			}
		}
		return got
	}
	solicit := func(target string) (string, bool) {
		out, err := exec.Command(ipTool, "netns", "exec", client, ndisc6, "-r", "2", "-w", "500", target, "c0").CombinedOutput()
		return string(out), err == nil
	}

	if out, answered := solicit(vip); answered {
		t.Fatalf("before start, %s is answered for already:\n%s", vip, out)
	}
	startTwice(t, run)
	if got := held(); len(got) != 1 || !strings.HasPrefix(got[0], vip+"/128 scope global deprecated") {
		t.Errorf("after two starts lo holds %q, want the VIP once, /128 and deprecated", got)
	}
	if out, code := run("status"); code != 0 {
		t.Errorf("status after start: exit %d\n%s", code, out)
	}
	if out, answered := solicit("2001:db8:7::21"); !answered {
		t.Fatalf("the real server's own address is not answered for: the solicitations prove nothing\n%s", out)
	}
	if out, answered := solicit(vip); answered {
		t.Errorf("the real server answered a neighbour solicitation for the VIP %s on lo:\n%s", vip, out)
	}
	// The director forwards to the real server's MAC: so does the client
	// here. A connection to a port nothing listens on is refused at once if
	// the real server takes the VIP as its own (its kernel answers with a
	// reset), and times out if it drops the packet.
	must(client, "ip -6 neigh replace "+vip+" lladdr "+mac+" dev c0 nud permanent")
	out, _ := exec.Command(ipTool, "netns", "exec", client, "timeout", "10", "bash", "-c", "exec 3<>/dev/tcp/"+vip+"/9").CombinedOutput()
	if !strings.Contains(string(out), "Connection refused") {
		t.Errorf("a packet to the VIP, sent to the real server's MAC, is not answered:\n%s", out)
	}
	stopReleases(t, run, "lo", held)
}

// TestVIPResourceIPv6InNetns runs the dual-stack director's heartbeat
// resource, lvs-vip, for real in a network namespace whose eth0 is a veth
// to a client namespace: two starts hold each IPv6 VIP once, a /128 without
// duplicate address detection and deprecated (never the source of the
// director's own connections), beside the IPv4 VIP; the client sees
// unsolicited neighbour advertisements for each IPv6 VIP with the
// director's MAC and the override flag (tcpdump); status answers as
// ResourceManager reads it; stop releases every address.
func TestVIPResourceIPv6InNetns(t *testing.T) {
	ipTool := netnsTools(t)
	testenv.LookPath(t, "send_ua", "heartbeat")
	tcpdump := testenv.LookPath(t, "tcpdump", "tcpdump")
	testenv.LookPath(t, "timeout", "coreutils")
	director, client, must := linkedNetns(t, ipTool, "vip6", "ip addr add 10.7.0.2/24 dev eth0 && ip addr add 2001:db8:7::2/64 dev eth0 nodad", "")
	mac := strings.TrimSpace(must(director, "cat /sys/class/net/eth0/address"))

	// Capture the neighbour advertisements (ICMPv6 type 136) the client
	// sees: send_ua sends 5 for each of the two IPv6 VIPs.
	capture := exec.Command(ipTool, "netns", "exec", client, "timeout", "30", tcpdump, "-i", "c0", "-n", "-v", "-l", "-c", "10", "icmp6 and ip6[40] == 136")
	var captured bytes.Buffer
	capture.Stdout = &captured
	stderr, err := capture.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	// Start the resource only once tcpdump listens.
	var listening []byte
	for buf := make([]byte, 256); !bytes.Contains(listening, []byte("listening on c0")); {
		n, err := stderr.Read(buf)
		if err != nil {
			t.Fatalf("tcpdump: %v: %s", err, listening)
		}
		listening = append(listening, buf[:n]...)
	}
	go io.Copy(io.Discard, stderr)

	state := t.TempDir()
	script := filepath.Join(renderTree(t, "dual-stack"), "lb1", "etc", "ha.d", "resource.d", "lvs-vip")
	run := func(verb string) (string, int) { return runInNetns(t, ipTool, director, state, script, verb) }
	addrs := func() []string {
		var got []string
		for _, l := range strings.Split(must(director, "ip -o addr show dev eth0"), "\n") {
			if f := strings.Fields(l); len(f) > 3 && (strings.HasPrefix(f[3], "10.7.0.1") || strings.HasPrefix(f[3], "2001:db8:7::1")) {
				got = append(got, strings.Join(f[3:], " "))
			}
		}
		return got
	}

	if out, code := run("status"); code != 3 || strings.Contains(out, "running") {
		t.Errorf("status before start: exit %d %q, want 3 and no \"running\"", code, out)
	}
	startTwice(t, run)
	got := addrs()
	sort.Strings(got) // ip lists the newest IPv6 address first
	want := []string{"10.7.0.100/24 brd 10.7.0.255 scope global secondary eth0", "2001:db8:7::100/128 scope global nodad deprecated", "2001:db8:7::101/128 scope global nodad deprecated"}
	if len(got) != len(want) {
		t.Errorf("after two starts eth0 holds %q, want each VIP once: %q", got, want)
	} else {
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Errorf("after two starts eth0 holds %q, want %q", got[i], want[i])
			}
		}
	}
	if out, code := run("status"); code != 0 || !strings.Contains(out, "running") {
		t.Errorf("status after start: exit %d %q, want 0 and \"running\"", code, out)
	}
	if err := capture.Wait(); err != nil {
		t.Errorf("tcpdump did not see 10 neighbour advertisements: %v\n%s", err, captured.String())
	}
	for _, v := range []string{"2001:db8:7::100", "2001:db8:7::101"} {
		if !strings.Contains(captured.String(), "neighbor advertisement, length 32, tgt is "+v+", Flags [override]\n\t  destination link-address option (2), length 8 (1): "+mac) {
			t.Errorf("no unsolicited neighbour advertisement for %s with the director's MAC %s and the override flag:\n%s", v, mac, captured.String())
		}
	}
	stopReleases(t, run, "eth0", addrs)
}
