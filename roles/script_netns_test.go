package roles

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

// TestRealServerScriptInNetns runs the seed's rendered real-server script
// for real, as root, in a network namespace of its own (a dummy eth0 holding
// rs1's address) with a private /run: start twice is harmless, the VIP sits
// once on lo with ARP suppressed, stop removes it and restores the sysctls.
func TestRealServerScriptInNetns(t *testing.T) {
	testenv.Root(t)
	ipTool := testenv.LookPath(t, "ip", "iproute2")
	testenv.LookPath(t, "unshare", "util-linux")
	ns := fmt.Sprintf("lvsforge-rs-%d", testNonce())
	if out, err := exec.Command(ipTool, "netns", "add", ns).CombinedOutput(); err != nil {
		testenv.Missing(t, "network namespaces ("+strings.TrimSpace(string(out))+")", "run as root on a kernel with netns")
	}
	t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns).Run() })
	// A veth pair (this kernel may have no dummy driver) with one end as the namespace's eth0.
	outer := fmt.Sprintf("lvsrs%d", testNonce()%100000)
	if out, err := exec.Command(ipTool, "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns).CombinedOutput(); err != nil {
		t.Fatalf("create veth: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ipTool, "link", "del", outer).Run() })
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
