package roles

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/internal/clustertest"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// routerConf is the BGP peer of TestBGPAnnouncementInNetns: a BIRD that
// takes linuxha1's routes and retries at once when a session drops.
const routerConf = `router id 192.168.7.254;
protocol device {
}
protocol bgp linuxha1 {
    local 192.168.7.254 as 65000;
    neighbor 192.168.7.9 as 65011;
    direct;
    connect delay time 1;
    connect retry time 1;
    error wait time 1, 2;
    ipv4 {
        import all;
        export none;
    };
}
`

// TestBGPAnnouncementInNetns runs the bgp variant's linuxha1 for real, as
// root: its rendered BIRD configuration and lvs-bgp script in a director
// namespace, with a BIRD router as its peer in another. The router learns
// a VIP exactly while lvs-bgp has been told that one of the VIP's
// services is up (keepalived's quorum scripts), and the VIPs are held; the
// announcements outlive a restart of BIRD and of lvs-bgp; keepalived's
// "forget" (its start and stop) withdraws everything; a new version of the
// script without a service withdraws its VIP and takes it off lo; a route
// of someone else's in the table is neither announced nor removed.
func TestBGPAnnouncementInNetns(t *testing.T) {
	ipTool := netnsTools(t)
	testenv.LookPath(t, "flock", "util-linux")
	bird := testenv.LookPath(t, "bird", "bird2")
	birdc := testenv.LookPath(t, "birdc", "bird2")
	director, router := fmt.Sprintf("lvsforge-bgpd-%d", testNonce()), fmt.Sprintf("lvsforge-bgpr-%d", testNonce())
	addNetns(t, ipTool, director)
	addNetns(t, ipTool, router)
	if out, err := exec.Command(ipTool, "link", "add", "eth0", "netns", director, "type", "veth", "peer", "name", "r0", "netns", router).CombinedOutput(); err != nil {
		t.Fatalf("create veth: %v: %s", err, out)
	}
	in(t, ipTool, director, "sh", "-c", "ip link set lo up && ip addr add 192.168.7.9/24 dev eth0 && ip link set eth0 up")
	in(t, ipTool, router, "sh", "-c", "ip link set lo up && ip addr add 192.168.7.254/24 dev r0 && ip link set r0 up")

	dir := t.TempDir()
	startBird := func(ns, name, conf string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(ipTool, "netns", "exec", ns, bird, "-f", "-c", conf, "-s", filepath.Join(dir, name+".ctl"), "-P", filepath.Join(dir, name+".pid"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s's bird: %v", name, err)
		}
		return cmd
	}
	stopBird := func(cmd *exec.Cmd) {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	if err := os.WriteFile(filepath.Join(dir, "router.conf"), []byte(routerConf), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startBird(router, "router", filepath.Join(dir, "router.conf"))
	t.Cleanup(func() { stopBird(r) })

	tree := renderTree(t, "bgp")
	d := startBird(director, "director", filepath.Join(tree, "linuxha1", "etc", "bird", "bird.conf"))
	t.Cleanup(func() { stopBird(d) })

	state := t.TempDir()
	first := filepath.Join(tree, "linuxha1", "usr", "local", "sbin", "lvs-bgp")
	script := &first
	lvsBGP := func(args ...string) {
		t.Helper()
		if out, code := runInNetns(t, ipTool, director, state, *script, args...); code != 0 {
			t.Fatalf("lvs-bgp %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	// learned is what the router has learned, once it has settled there
	// on want (or after a minute, what it has then).
	learned := func(want ...string) []string {
		t.Helper()
		var got []string
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			out, err := exec.Command(birdc, "-s", filepath.Join(dir, "router.ctl"), "show", "route").CombinedOutput()
			if err != nil {
				t.Fatalf("birdc show route: %v\n%s", err, out)
			}
			got = nil
			for _, f := range strings.Fields(string(out)) {
				if strings.HasSuffix(f, "/32") {
					got = append(got, f)
				}
			}
			slices.Sort(got)
			if slices.Equal(got, want) || time.Now().After(deadline) {
				return got
			}
		}
	}
	expect := func(step string, want ...string) {
		t.Helper()
		if got := learned(want...); !slices.Equal(got, want) {
			t.Errorf("after %s the router learned %v, want %v", step, got, want)
		}
	}
	table := func() string {
		return in(t, ipTool, director, ipTool, "-o", "route", "show", "table", fmt.Sprint(BGPTable))
	}
	onLo := func() string {
		var got []string
		for _, f := range strings.Fields(in(t, ipTool, director, ipTool, "-o", "-4", "addr", "show", "dev", "lo")) {
			if strings.HasPrefix(f, "10.10.10.") {
				got = append(got, f)
			}
		}
		return strings.Join(got, " ")
	}

	// Someone else's route in the table: never announced, never removed.
	in(t, ipTool, director, ipTool, "route", "add", "blackhole", "10.10.10.99", "table", fmt.Sprint(BGPTable))
	lvsBGP("start")
	lvsBGP("start")
	if got := onLo(); got != "10.10.10.10/32 10.10.10.11/32" {
		t.Errorf("after two starts lo holds %q, want the two VIPs once", got)
	}
	lvsBGP("up", "http")
	expect("http up", "10.10.10.10/32")
	lvsBGP("up", "telnet")
	lvsBGP("down", "http")
	if !strings.Contains(table(), "10.10.10.10 proto 211") {
		t.Errorf("with telnet still up, 10.10.10.10 is not announced: table\n%s", table())
	}
	lvsBGP("down", "telnet")
	expect("http and telnet down")
	lvsBGP("up", "dns")
	expect("dns up", "10.10.10.11/32")

	// BIRD restarted: it learns the announcements again from the table.
	stopBird(d)
	expect("the director's BIRD stopped")
	d = startBird(director, "director", filepath.Join(tree, "linuxha1", "etc", "bird", "bird.conf"))
	expect("the director's BIRD restarted", "10.10.10.11/32")

	// lvs-bgp restarted: withdrawn while stopped, announced again after.
	lvsBGP("stop")
	expect("lvs-bgp stopped")
	if got := onLo(); got != "" {
		t.Errorf("after stop lo holds %q, want no VIP", got)
	}
	lvsBGP("start")
	expect("lvs-bgp started again", "10.10.10.11/32")

	// keepalived started or stopped: its checks start over.
	lvsBGP("forget")
	expect("forget")

	// A version without dns (and its VIP): reload withdraws it, takes it
	// off lo and drops dns's report.
	lvsBGP("up", "dns")
	lvsBGP("up", "http")
	expect("dns and http up", "10.10.10.10/32", "10.10.10.11/32")
	newer := filepath.Join(t.TempDir(), "lvs-bgp")
	s := loadVariant(t, "bgp")
	s.Services = s.Services[:2]
	hosts, err := Render(clustertest.Valid(t, s))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range hosts[0].Files {
		if f.Path == "/usr/local/sbin/lvs-bgp" {
			os.WriteFile(newer, f.Data, 0o755)
		}
	}
	script = &newer
	lvsBGP("reload")
	expect("reload without dns", "10.10.10.10/32")
	if got := onLo(); got != "10.10.10.10/32" {
		t.Errorf("after the reload lo holds %q, want 10.10.10.10/32 alone", got)
	}
	if _, err := os.Stat(filepath.Join(state, "lvs-bgp", "up", "dns")); err == nil {
		t.Error("the reload kept dns's report")
	}
	if out, code := runInNetns(t, ipTool, director, state, newer, "up", "dns"); code != 2 {
		t.Errorf("up of a service the script does not know: exit %d, want 2\n%s", code, out)
	}
	if out, code := runInNetns(t, ipTool, director, state, newer, "status"); code != 0 || !strings.Contains(out, "services up: http\nannounced: 10.10.10.10\n") {
		t.Errorf("status: exit %d, want 0 and http up and announced:\n%s", code, out)
	}
	lvsBGP("stop")
	if got := table(); got != "blackhole 10.10.10.99 \n" {
		t.Errorf("after stop the table holds\n%swant the route the test added alone", got)
	}
	expect("the last stop")
}
