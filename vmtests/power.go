package vmtests

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/vmtests/guestimage"
	"github.com/lvsforge/lvsforge/vmtests/vlan"
)

// PowerOff pulls a host's plug: QEMU quits, the guest gets no shutdown.
func (c *Cluster) PowerOff(ctx context.Context, host string) error {
	n := c.Nodes[host]
	if n == nil {
		return fmt.Errorf("power off %s: no such VM", host)
	}
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.dropSSH()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return n.VM.PowerOff(ctx)
}

// PowerOn boots a powered-off host again from its disk and waits until it
// is up: what was pushed to it is still there, and the daemons push
// enabled start at boot, as after a real power failure.
func (c *Cluster) PowerOn(ctx context.Context, host string) error {
	n := c.Nodes[host]
	if n == nil {
		return fmt.Errorf("power on %s: no such VM", host)
	}
	if !n.off() {
		return fmt.Errorf("power on %s: it is running", host)
	}
	return c.coldStart(ctx, n, "")
}

// off reports whether the node's QEMU has exited (powered off).
func (n *Node) off() bool {
	select {
	case <-n.VM.Done():
		return true
	default:
		return false
	}
}

// reboot restarts a host that may reboot (WithAllowReboot) and waits until
// it is up again; with via set, the console must show that line first (a
// kernel's panic before the fallback boot). The restart is a clean shutdown
// and a cold start, a power cycle: under TCG, QEMU's warm reset after a
// clean shutdown left the next boot 20 to 140 s between GRUB and the
// kernel's first line, where a cold start takes a second. What the test is
// about, the panicking kernel's own reset (panic=N), stays a warm reset the
// guest does alone.
func (c *Cluster) reboot(ctx context.Context, host, via string) error {
	n := c.Nodes[host]
	// The command's connection dies with the host: its error says nothing.
	c.Exec(ctx, host, "systemctl poweroff")
	n.dropSSH()
	select {
	case <-n.VM.Done():
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("reboot %s: still running 2 minutes after systemctl poweroff\n%s", host, n.diagnose(ctx))
	case <-ctx.Done():
		return fmt.Errorf("reboot %s: %w", host, ctx.Err())
	}
	n.reboots++
	return c.coldStart(ctx, n, via)
}

// dropSSH closes the node's SSH connection, which its power-off kills;
// the next Exec dials a new one.
func (n *Node) dropSSH() {
	n.mu.Lock()
	if n.ssh != nil {
		n.ssh.Close()
		n.ssh = nil
	}
	n.mu.Unlock()
}

// coldStart starts a stopped node's QEMU again and waits until the host is
// up; with via set, the console must show that line first (a kernel's panic
// before the guest's own reset into the fallback kernel).
func (c *Cluster) coldStart(ctx context.Context, n *Node, via string) error {
	n.VM.Close()
	n.mu.Lock()
	n.stopped = false
	n.mu.Unlock()
	if err := c.start(ctx, n); err != nil {
		return err
	}
	bootCtx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if via != "" {
		if err := n.VM.ExpectString(bootCtx, via); err != nil {
			return err
		}
		n.reboots++
	}
	if err := n.VM.ExpectString(bootCtx, guestimage.ReadyMarker); err != nil {
		return err
	}
	if _, err := c.Exec(bootCtx, n.Name, "true"); err != nil {
		return fmt.Errorf("%w\n%s", err, n.diagnose(ctx))
	}
	return nil
}

// Holders returns the directors that hold vip now, asking each running one.
func (c *Cluster) Holders(ctx context.Context, vip string) ([]string, error) {
	var out []string
	for _, d := range c.Spec.HostsByRole(cluster.RoleDirector) {
		if c.Nodes[d.Name].off() {
			continue
		}
		ip, err := c.Exec(ctx, d.Name, heldAddrs)
		if err != nil {
			return nil, err
		}
		if holdsAddr(ip, vip) {
			out = append(out, d.Name)
		}
	}
	return out, nil
}

// WaitHolder waits until exactly director want holds vip (and no other
// does), and returns how long that took.
func (c *Cluster) WaitHolder(ctx context.Context, vip, want string, limit time.Duration) (time.Duration, error) {
	var got []string
	d, ok := poll(ctx, limit, 500*time.Millisecond, func(ctx context.Context) bool {
		var err error
		got, err = c.Holders(ctx, vip)
		return err == nil && len(got) == 1 && got[0] == want
	})
	if !ok {
		return 0, fmt.Errorf("%s did not become the only holder of %s within %s (holders: %v)", want, vip, limit, got)
	}
	return d, nil
}

// waitSettled waits until the directors' pair is at rest, as it is after
// a push that restarted heartbeat (a changed ha.cf), which moves the VIPs
// to the peer and, with auto_failback, back again: every running director's
// daemon is up and heartbeat's sees its running peers, none is in a
// resource transition, one director holds every VIP, and all of that
// twice, a poll apart, so that nothing measured after it races a takeover.
// Which director that is depends on the order the two restarts took:
// heartbeat, even with auto_failback on, may leave the VIPs on the backup.
//
// With the bgp backend every director serves at once: at rest, the router
// sends every VIP to every running director.
func (c *Cluster) waitSettled(ctx context.Context, spec *cluster.Spec, limit time.Duration) error {
	if spec.HA.Backend == cluster.BackendBGP {
		_, err := c.waitAnnounced(ctx, spec, c.runningDirectors(spec), limit)
		return err
	}
	var running []string
	for _, d := range spec.HostsByRole(cluster.RoleDirector) {
		if !c.Nodes[d.Name].off() {
			running = append(running, d.Name)
		}
	}
	var holder string
	settled := func(ctx context.Context) error {
		for _, d := range running {
			cmd := "systemctl is-active -q keepalived"
			if spec.HA.Backend == cluster.BackendHeartbeat {
				cmd = "cl_status rscstatus"
				for _, p := range running {
					if p != d {
						cmd += "; cl_status nodestatus " + p
					}
				}
			}
			out, err := c.Exec(ctx, d, cmd)
			if err != nil {
				return fmt.Errorf("%s: %w", d, err)
			}
			if f := strings.Fields(out); spec.HA.Backend == cluster.BackendHeartbeat && (len(f) == 0 || f[0] == "transition" || slices.ContainsFunc(f[1:], func(s string) bool { return s != "active" })) {
				return fmt.Errorf("heartbeat on %s: resources, peers: %s", d, strings.Join(f, " "))
			}
		}
		addrs := map[string]string{}
		for _, d := range running {
			out, err := c.Exec(ctx, d, heldAddrs)
			if err != nil {
				return err
			}
			addrs[d] = out
		}
		holder = ""
		for _, vip := range spec.VIPs() {
			var h []string
			for _, d := range running {
				if holdsAddr(addrs[d], vip) {
					h = append(h, d)
				}
			}
			switch {
			case len(h) != 1:
				return fmt.Errorf("%s is held by %d directors %v", vip, len(h), h)
			case holder != "" && h[0] != holder:
				return fmt.Errorf("%s is held by %s, other VIPs by %s", vip, h[0], holder)
			}
			holder = h[0]
		}
		return nil
	}
	var err error
	row := 0
	if d, ok := poll(ctx, limit, time.Second, func(ctx context.Context) bool {
		e := settled(ctx)
		if e != nil {
			row = 0
			if ctx.Err() == nil || err == nil {
				err = e // not the poll's own deadline cutting a command
			}
			return false
		}
		row++
		return row == 2
	}); !ok {
		return fmt.Errorf("the directors did not settle within %s: %v", limit, err)
	} else if d > 2*time.Second {
		c.opts.logf("converge: the directors settled after %.1f s, %s holding the VIPs", d.Seconds(), holder)
	}
	return nil
}

// holdOn brings the VIPs to the director want before a scenario that
// starts from there, and waits until it holds them alone. A push that
// restarted heartbeat on both directors may have left them on the other
// one (see waitSettled): heartbeat's hb_takeover on want asks for them,
// as an operator would. keepalived's VRRP settles where priority and
// preemption say, which is the primary where a scenario needs it.
func (c *Cluster) holdOn(ctx context.Context, spec *cluster.Spec, want string) error {
	vip := spec.Services[0].VIP
	h, err := c.Holders(ctx, vip)
	if err != nil {
		return err
	}
	if spec.HA.Backend == cluster.BackendHeartbeat && len(h) == 1 && h[0] != want {
		c.opts.logf("%s holds %s: hb_takeover on %s", h[0], vip, want)
		if _, err := c.Exec(ctx, want, "/usr/share/heartbeat/hb_takeover all"); err != nil {
			return err
		}
	}
	_, err = c.WaitHolder(ctx, vip, want, takeoverLimit(spec))
	return err
}

// otherDirector is the director of a pair that is not name.
func otherDirector(s *cluster.Spec, name string) string {
	for _, d := range s.HostsByRole(cluster.RoleDirector) {
		if d.Name != name {
			return d.Name
		}
	}
	return ""
}

// Probe is a background request loop on the client: a request to one
// service started every 100 ms, whether or not the one before has ended
// (each gives up after its timeout), each line "UPTIME NAME END" or
// "UPTIME - END" for a failure, UPTIME when it started and END when it
// ended; and an ARP request (IPv6: a neighbour solicitation) for the VIP
// every half second, whose answers the switch records.
type Probe struct {
	stopped bool
	c       *Cluster
	sv      *cluster.Service
	file    string
	mark    int
	timeout int
}

// StartProbe starts the client's probe loops for sv, each request given
// timeout seconds: one where the gap in service is measured (a failover),
// requestTimeout where a request counts as failed only if it never ends
// (a rolling change, where one that waits for a retransmitted SYN under an
// emulated CPU still serves its client).
func (c *Cluster) StartProbe(ctx context.Context, sv *cluster.Service, timeout int) (*Probe, error) {
	p := &Probe{c: c, sv: sv, file: "/tmp/probe-" + sv.Name, mark: c.LAN.Mark(), timeout: timeout}
	// Each loop is a script of its own, started in the background with
	// its pid kept, so Stop can end it.
	loops := map[string]string{
		"req": fmt.Sprintf(`while :; do (read -r t _ </proc/uptime; r=$(%s); read -r e _ </proc/uptime; echo "$t ${r:--} $e") & sleep 0.1; done`, requestCmd(sv, timeout)),
		"arp": fmt.Sprintf(`while :; do arping -q -c 1 -w 1 -I eth0 %s; sleep 0.5; done`, sv.VIP),
	}
	if netip.MustParseAddr(sv.VIP).Is6() {
		// IPv6 has no arping: forgetting the neighbour makes the next
		// packet ask anew (a multicast solicitation).
		loops["arp"] = fmt.Sprintf(`while :; do ip -6 neigh flush to %s dev eth0; ping6 -q -c 1 -W 1 %s; sleep 0.5; done`, sv.VIP, sv.VIP)
	}
	for _, name := range []string{"req", "arp"} {
		script := "/tmp/probe-" + name + ".sh"
		out := "/dev/null"
		if name == "req" {
			out = p.file
		}
		for _, cmd := range []string{
			fmt.Sprintf(`printf '%%s\n' '%s' >%s`, loops[name], script),
			fmt.Sprintf(`: >%s; sh %s >>%s 2>/dev/null & echo $! >%s.pid`, out, script, out, script),
		} {
			if _, err := c.ClientRun(ctx, cmd); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// Now is the client's uptime, the probe's clock.
func (p *Probe) Now(ctx context.Context) (float64, error) {
	out, err := p.c.ClientRun(ctx, "cut -d' ' -f1 /proc/uptime")
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(lastLines(out, 1)), 64)
}

// ProbeLine is one request of the probe.
type ProbeLine struct {
	T      float64
	Server string // "" for a failed request
	// Took is how long the request took, in seconds.
	Took float64
}

// Stop ends the loops and returns the requests made; once stopped, it
// returns nothing, so a scenario may also defer it for its error paths.
func (p *Probe) Stop(ctx context.Context) ([]ProbeLine, error) {
	if p.stopped {
		return nil, nil
	}
	p.stopped = true
	// The requests under way end within their timeout.
	if _, err := p.c.ClientRun(ctx, fmt.Sprintf("kill $(cat /tmp/probe-req.sh.pid /tmp/probe-arp.sh.pid) 2>/dev/null; sleep %d.5; true", p.timeout)); err != nil {
		return nil, err
	}
	out, err := p.c.ClientRun(ctx, "cat "+p.file)
	if err != nil {
		return nil, err
	}
	lines := probeLines(out)
	// A line is written when its request ends: in the order they started.
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].T < lines[j].T })
	return lines, nil
}

// probeLines parses the probe's "START SERVER END" lines (SERVER "-" for
// a failure); other lines (a loop cut mid-write) are skipped.
func probeLines(out string) []ProbeLine {
	var lines []ProbeLine
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		t, err1 := strconv.ParseFloat(f[0], 64)
		e, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		pl := ProbeLine{T: t, Took: e - t}
		if f[1] != "-" {
			pl.Server = f[1]
		}
		lines = append(lines, pl)
	}
	return lines
}

// stamped is a two-field line of a client loop's log: a time (the
// client's uptime) and the other field.
type stamped struct {
	t     float64
	other string
}

// stampedLines parses the two-field lines of out whose field timeCol (0
// or 1) is a time; other lines (a loop cut mid-write) are skipped.
func stampedLines(out string, timeCol int) []stamped {
	var ls []stamped
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		t, err := strconv.ParseFloat(f[timeCol], 64)
		if err != nil {
			continue
		}
		ls = append(ls, stamped{t, f[1-timeCol]})
	}
	return ls
}

// Outage measures the gap in service that follows t0 (the probe's clock
// just before the fault): the longest time between two consecutive
// answered requests, the first of them the last answer at or before t0
// or a later one, and the failed requests in it. The longest gap, not
// the first: requests may still be answered between t0 and the fault.
func Outage(lines []ProbeLine, t0 float64) (last, first float64, failed int, err error) {
	prev := -1.0 // the last answer so far
	before := false
	last, first = -1, -1
	for _, l := range lines {
		if l.Server == "" {
			continue
		}
		if l.T <= t0 {
			before = true
		} else if before && (first < 0 || l.T-prev > first-last) {
			last, first = prev, l.T
		}
		prev = l.T
	}
	if last < 0 || first < 0 {
		return last, first, 0, fmt.Errorf("no answered request both at or before and after t=%.2f among %d requests", t0, len(lines))
	}
	for _, l := range lines {
		if l.T > last && l.T < first && l.Server == "" {
			failed++
		}
	}
	return last, first, failed, nil
}

// DoubleHolders returns the ARP requests for ip since mark that more than
// one MAC answered: two hosts held the address at the same moment.
func DoubleHolders(sw *vlan.Switch, mark int, ip netip.Addr) []string {
	var out []string
	var req *vlan.Frame
	macs := map[string]bool{}
	flush := func() {
		if req != nil && len(macs) > 1 {
			var m []string
			for k := range macs {
				m = append(m, k)
			}
			out = append(out, fmt.Sprintf("%s answered by %s", req, strings.Join(m, " and ")))
		}
		macs = map[string]bool{}
	}
	for _, f := range sw.FramesSince(mark) {
		n, ok := f.Neighbour()
		if !ok || f.Dropped || n.IP != ip || n.Announce {
			continue
		}
		if n.Answer {
			macs[n.MAC.String()] = true
		} else {
			flush()
			fr := f
			req = &fr
		}
	}
	flush()
	return out
}
