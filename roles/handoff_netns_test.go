package roles

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

// TestVIPHandoffInNetns runs the seed's lvs-vip for real, in network
// namespaces on a bridge: linuxha1 held the VIPs and keeps them on lo (as
// lvs-director leaves them), serving a client's TCP connection (a socket
// stands in for its IPVS table); linuxha2 takes the VIPs over while
// linuxha1 is up (its lvs-vip start, heartbeat's takeover). Once the
// client's neighbour entry points at linuxha2, the connection's next
// packet reaches linuxha1 through linuxha2's handoff and is answered:
// nothing reset; the handoff began before linuxha2 had the address on
// eth0. linuxha2's stop, or the grace's end, removes the handoff.
func TestVIPHandoffInNetns(t *testing.T) {
	ipTool := netnsTools(t)
	testenv.LookPath(t, "nft", "nftables")
	py := testenv.LookPath(t, "python3", "python3")
	br := fmt.Sprintf("lvsbr%d", testNonce()%100000)
	if out, err := exec.Command(ipTool, "link", "add", br, "type", "bridge").CombinedOutput(); err != nil {
		testenv.Missing(t, "a bridge ("+strings.TrimSpace(string(out))+")", "run as root")
	}
	t.Cleanup(func() { exec.Command(ipTool, "link", "del", br).Run() })
	exec.Command(ipTool, "link", "set", br, "up").Run()
	hosts := map[string]string{"a": "192.168.7.9/24", "b": "192.168.7.10/24", "c": "192.168.7.254/24"}
	ns := map[string]string{}
	for _, h := range []string{"a", "b", "c"} {
		ns[h] = netnsWith(t, ipTool)
		outer := fmt.Sprintf("lvs%s%d", h, testNonce()%100000)
		vethInto(t, ipTool, outer, ns[h])
		exec.Command(ipTool, "link", "set", outer, "master", br, "up").Run()
		in(t, ipTool, ns[h], "sh", "-c", "ip link set lo up && ip link set eth0 up && ip addr add "+hosts[h]+" dev eth0")
	}
	// linuxha1, the old holder: the VIP on lo only, not announced.
	in(t, ipTool, ns["a"], "sh", "-c", "ip addr add 192.168.7.110/32 dev lo && sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1")
	server := exec.Command(ipTool, "netns", "exec", ns["a"], py, "-c", `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.168.7.110", 80)); s.listen(1); print("ready", flush=True)
c, _ = s.accept()
for _ in range(2):
    c.sendall(b"linuxha1 got " + c.recv(100))
c.recv(100)
`)
	if ready, err := testenv.Start(t, server).ReadString('\n'); err != nil || ready != "ready\n" {
		t.Fatalf("server: %q %v", ready, err)
	}

	// linuxha2's lvs-vip, with cl_status saying linuxha1 is up and a grace
	// long enough for the test's steps on a loaded machine, short
	// enough to see it end.
	script := filepath.Join(renderTree(t, "seed"), "linuxha2", "etc", "ha.d", "resource.d", "lvs-vip")
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("HANDOFF_GRACE=300")) {
		t.Fatal("lvs-vip has no HANDOFF_GRACE=300")
	}
	short := filepath.Join(t.TempDir(), "lvs-vip")
	os.WriteFile(short, bytes.Replace(b, []byte("HANDOFF_GRACE=300"), []byte("HANDOFF_GRACE=10"), 1), 0o755)
	bin, state := t.TempDir(), t.TempDir()
	// cl_status also notes whether eth0 held the VIP when the handoff
	// began: it must begin before the address is announced.
	os.WriteFile(filepath.Join(bin, "cl_status"), []byte("#!/bin/sh\nip -4 -o addr show dev eth0 to 192.168.7.110/32 >>/run/held-at-handoff\necho active\n"), 0o755)
	runB := func(script, verb string) string {
		t.Helper()
		return in(t, ipTool, ns["b"], "unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount --bind "$1" /run && mount --bind "$2" /usr/local/sbin && exec "$3" "$4"`, "sh", state, bin, script, verb)
	}
	table := func() bool {
		return strings.Contains(in(t, ipTool, ns["b"], "nft", "list", "tables"), "lvsforge_handoff")
	}

	// The client, its neighbour entry for the VIP on linuxha1.
	mac := func(h string) string {
		return strings.TrimSpace(in(t, ipTool, ns[h], "cat", "/sys/class/net/eth0/address"))
	}
	in(t, ipTool, ns["c"], "ip", "neigh", "replace", "192.168.7.110", "lladdr", mac("a"), "dev", "eth0", "nud", "permanent")
	client := exec.Command(ipTool, "netns", "exec", ns["c"], py, "-u", "-c", `
import socket, sys
s = socket.create_connection(("192.168.7.110", 80), timeout=5)
for line in sys.stdin:
    s.sendall(line.strip().encode()); print(s.recv(100).decode(), flush=True)
`)
	stdin, _ := client.StdinPipe()
	stdout := testenv.Start(t, client)
	ask := func(what string) string {
		t.Helper()
		fmt.Fprintln(stdin, what)
		line, err := stdout.ReadString('\n')
		if err != nil {
			t.Fatalf("client %s: %v", what, err)
		}
		return strings.TrimSpace(line)
	}
	if got := ask("one"); got != "linuxha1 got one" {
		t.Fatalf("before the takeover: %q", got)
	}

	runB(short, "start")
	if !table() {
		t.Fatal("linuxha2 took the VIPs over from a live linuxha1 but hands nothing back")
	}
	if held, err := os.ReadFile(filepath.Join(state, "held-at-handoff")); err != nil || len(held) > 0 {
		t.Errorf("the handoff began after linuxha2 announced the VIP (%q, %v): the connections' first packets there were reset", held, err)
	}
	in(t, ipTool, ns["c"], "ip", "neigh", "replace", "192.168.7.110", "lladdr", mac("b"), "dev", "eth0", "nud", "permanent")
	if got := ask("two"); got != "linuxha1 got two" {
		t.Errorf("after the takeover, the connection's packet went to linuxha2: %q, want linuxha1's answer", got)
	}
	for end := time.Now().Add(time.Minute); table() && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
	}
	if table() {
		t.Error("the handoff outlived its grace")
	}
	runB(script, "start") // the full grace; then a stop ends it
	runB(script, "stop")
	if table() {
		t.Error("the handoff outlived lvs-vip stop")
	}
}

// in runs a command in network namespace ns and returns its output.
func in(t *testing.T, ipTool, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command(ipTool, append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v in %s: %v\n%s", args, ns, err, out)
	}
	return string(out)
}
