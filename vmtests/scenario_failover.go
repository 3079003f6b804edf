package vmtests

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/vmtests/vlan"
)

// The scenarios of director failover: heartbeat's links, power-off failover, keepalived, connection sync.
var (
	failoverScenario = &Scenario{
		Name: "failover",
		Doc:  "a request every 100 ms while the primary director is powered off: the backup takes the VIP and announces it by gratuitous ARP; outage and failed requests are measured; the primary comes back and takes the VIP back (auto_failback on) or stays backup (off, the second half); never do both directors answer ARP for the VIP",
		Run: func(ctx context.Context, r *Run) error {
			if err := failoverCycle(ctx, r, r.Spec, checkedServices(r.Spec)[0], ""); err != nil {
				return err
			}
			// The other auto_failback setting, on the same cluster. Where a
			// director goes back to needs no long deadtime: heartbeat gets
			// short timings for this half, keepalived keeps its adverts.
			flipped, err := deriveSpec(r.Spec, func(s *cluster.Spec) error {
				v := !*s.HA.AutoFailback
				s.HA.AutoFailback = &v
				if s.HA.Backend == cluster.BackendHeartbeat {
					s.HA.Keepalive, s.HA.Warntime = cluster.Duration(time.Second), cluster.Duration(2*time.Second)
					s.HA.Deadtime, s.HA.Initdead = cluster.Duration(5*time.Second), cluster.Duration(10*time.Second)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if _, err := r.C.Converge(ctx, flipped); err != nil {
				return err
			}
			return failoverCycle(ctx, r, flipped, checkedServices(flipped)[0], "auto_failback "+onOff(*flipped.HA.AutoFailback)+", deadtime "+flipped.HA.Deadtime.HeartbeatString()+": ")
		},
	}
	linksScenario = &Scenario{
		Name: "heartbeat-links",
		Doc:  "heartbeat over Ethernet and the serial cable: cutting the Ethernet link alone moves nothing; cutting the serial cable too makes the backup take over; restoring both leaves one director holding the VIP",
		Run:  runHeartbeatLinks,
	}
	keepalivedScenario = &Scenario{
		Name: "keepalived",
		Doc: "the failover and realserver-down checks with the keepalived backend: VRRP moves the VIP, keepalived's own checks keep the table; " +
			"the last real server runs at init: sysv on a sysvinit VM: push enabled its init.d script with rc links, a power cycle starts it from them, and it serves its share",
		Spec: keepalivedSpec,
		Run: func(ctx context.Context, r *Run) error {
			if err := runSysVHosts(ctx, r); err != nil {
				return err
			}
			if err := failoverCycle(ctx, r, r.Spec, checkedServices(r.Spec)[0], ""); err != nil {
				return err
			}
			return runRealServerDown(ctx, r)
		},
	}
	connSyncScenario = &Scenario{
		Name: "conn-sync",
		Doc:  "with IPVS connection synchronisation (keepalived's lvs_sync_daemon), a long-lived TCP connection through the VIP survives the master director's power-off",
		Spec: keepalivedWith(withConnSync),
		Run:  runConnSync,
	}
	connSyncHeartbeatScenario = &Scenario{
		Name: "conn-sync-heartbeat",
		Doc:  "with the heartbeat backend's connection sync (lvs-director runs ipvsadm's master and backup sync daemons on both directors), a long-lived TCP connection through the VIP survives the primary's power-off; the primary is powered on again after",
		Spec: withConnSync,
		Run: func(ctx context.Context, r *Run) error {
			primary, _ := primaryAndBackup(r.Spec)
			err := runConnSync(ctx, r)
			if n := r.C.Nodes[primary]; n != nil && n.off() {
				if perr := r.C.PowerOn(ctx, primary); err == nil {
					err = perr
				}
			}
			return err
		},
	}
)

// withConnSync turns on IPVS connection sync over the directors'
// heartbeat interface (their public one when they have none) and adds the
// echo service, whose long-lived connection the sync scenarios follow.
func withConnSync(s *cluster.Spec) error {
	iface := s.HostsByRole(cluster.RoleDirector)[0].Interfaces.Heartbeat
	if iface == "" {
		iface = s.HostsByRole(cluster.RoleDirector)[0].Interfaces.Public
	}
	s.HA.Sync = cluster.Sync{Enabled: true, Interface: iface, SyncID: 1}
	vip := s.Services[0].VIP
	for i := range s.Hosts {
		if len(s.Hosts[i].Weights) > 0 {
			s.Hosts[i].Weights["echo"] = 1
		}
	}
	s.Services = append(s.Services, cluster.Service{Name: "echo", VIP: vip, Port: echoPort, RealPort: echoPort, Protocol: "tcp",
		Scheduler: "rr", Forwarding: s.Services[0].Forwarding, Check: cluster.Check{Type: "connect", Interval: 5, Timeout: 3}})
	return nil
}

// echoPort is the conn-sync scenario's echo service.
const echoPort = 7

// syncLimit bounds conn-sync's waits: for the backup to learn the
// connection, and for the connection to speak again after the takeover.
const syncLimit = 2 * time.Minute

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// keepalivedSpec moves a spec to the keepalived backend: VRRP instead of
// heartbeat, keepalived's checks instead of ldirectord's; and its last real
// server to init: sysv (see sysvRealServer), which conn-sync, on the same
// cluster, keeps.
func keepalivedSpec(s *cluster.Spec) error {
	sysvRealServer(s)
	s.HA.Backend = cluster.BackendKeepalived
	if s.HA.Keepalived.VirtualRouterID == 0 {
		s.HA.Keepalived.VirtualRouterID = 51
	}
	if s.HA.Keepalived.AdvertInt == 0 {
		s.HA.Keepalived.AdvertInt = 1
	}
	for i := range s.Services {
		// keepalived's HTTP_GET checks the status code only.
		s.Services[i].Check.Receive = ""
	}
	return nil
}

// keepalivedWith is keepalivedSpec, then f: a scenario of the keepalived
// cluster.
func keepalivedWith(f func(*cluster.Spec) error) func(*cluster.Spec) error {
	return func(s *cluster.Spec) error {
		if err := keepalivedSpec(s); err != nil {
			return err
		}
		return f(s)
	}
}

// primaryAndBackup are the director that holds the VIPs when all are up
// and one that takes over from it.
func primaryAndBackup(s *cluster.Spec) (string, string) {
	p := s.HA.Primary
	if p == "" {
		p = s.HostsByRole(cluster.RoleDirector)[0].Name
	}
	return p, otherDirector(s, p)
}

// takeoverLimit bounds the wait for a backup to take over: heartbeat's
// deadtime or VRRP's three missed adverts, plus the resources' start.
func takeoverLimit(s *cluster.Spec) time.Duration {
	switch s.HA.Backend {
	case cluster.BackendKeepalived:
		return time.Duration(3*s.HA.Keepalived.AdvertInt)*time.Second + 90*time.Second
	case cluster.BackendBGP:
		// Nothing takes over: each director announces the VIPs.
		return announceLimit(s)
	}
	return time.Duration(s.HA.Deadtime) + 90*time.Second
}

// failoverCycle powers the primary off under a request to sv every 100
// ms, measures the outage, powers it on again and checks where sv's VIP
// goes.
func failoverCycle(ctx context.Context, r *Run, spec *cluster.Spec, sv *cluster.Service, label string) error {
	vip := sv.VIP
	vipAddr := netip.MustParseAddr(vip)
	announcement := "gratuitous ARP"
	if vipAddr.Is6() {
		announcement = "unsolicited neighbour advertisement"
	}
	primary, backup := primaryAndBackup(spec)
	if err := r.C.holdOn(ctx, spec, primary); err != nil {
		return fmt.Errorf("before the power-off: %w", err)
	}
	probe, err := r.C.StartProbe(ctx, sv, 1)
	if err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	// The backup's clock first: t0 is taken right before the power-off.
	up0, err := r.C.uptime(ctx, backup)
	if err != nil {
		return err
	}
	t0, err := probe.Now(ctx)
	if err != nil {
		return err
	}
	mark := r.C.LAN.Mark()
	r.Logf("%spowering off the primary %s", label, primary)
	if err := r.C.PowerOff(ctx, primary); err != nil {
		return err
	}
	takeover, err := r.C.WaitHolder(ctx, vip, backup, takeoverLimit(spec))
	if err != nil {
		return err
	}
	r.Figure(label+"takeover by "+backup, takeover.Seconds(), "s")
	if tl, events, err := r.C.timeline(ctx, spec, backup, vip, up0); err == nil && len(events) > 0 {
		r.Logf("%s%s's takeover after the power-off:%s", label, backup, tl)
		what := " declared " + primary + " dead"
		if spec.HA.Backend == cluster.BackendKeepalived {
			what = " became VRRP master"
		}
		r.Figure(label+backup+what, events[0].t-up0, "s")
	}
	// The announcement follows the address (lvs-vip and keepalived send it
	// right after adding it): wait for it on the switch. The bound is only
	// for a backup that never sends one: sending it is an arping (a fork
	// and exec) or keepalived's next turn on a loaded emulated CPU.
	backupMAC := r.C.Nodes[backup].MAC
	gctx, cancel := context.WithTimeout(ctx, garpLimit)
	_, err = r.C.LAN.Wait(gctx, mark, func(f vlan.Frame) bool {
		n, ok := f.Neighbour()
		return ok && n.Announce && n.IP == vipAddr && f.Src().String() == backupMAC
	})
	cancel()
	if err != nil {
		r.Errorf("%s%s took %s over without a %s on the switch within %s", label, backup, vip, announcement, garpLimit)
	}
	// Let a few requests through the backup before the primary returns.
	time.Sleep(5 * time.Second)
	var garp int
	for _, f := range r.C.LAN.Announcements(mark, vipAddr) {
		if f.Src().String() == backupMAC {
			garp++
		}
	}
	r.Figure(label+announcement+"s from "+backup, float64(garp), "")

	r.Logf("%spowering the primary %s on again", label, primary)
	if err := r.C.PowerOn(ctx, primary); err != nil {
		return err
	}
	failback := spec.HA.AutoFailback == nil || *spec.HA.AutoFailback
	if failback {
		d, err := r.C.WaitHolder(ctx, vip, primary, takeoverLimit(spec))
		if err != nil {
			r.Errorf("%sauto_failback on: %v\n%s", label, err, r.C.haState(ctx, spec, primary))
		} else {
			r.Figure(label+"failback to "+primary+" after its boot", d.Seconds(), "s")
		}
	} else {
		if err := r.C.waitRejoined(ctx, spec, primary); err != nil {
			return err
		}
		if h, err := r.C.Holders(ctx, vip); err != nil {
			return err
		} else if len(h) != 1 || h[0] != backup {
			r.Errorf("%sauto_failback off: after %s rejoined, the VIP is held by %v, want %s alone", label, primary, h, backup)
		}
	}
	time.Sleep(2 * time.Second)
	lines, err := probe.Stop(ctx)
	if err != nil {
		return err
	}
	last, first, failed, err := Outage(lines, t0)
	if err != nil {
		return err
	}
	r.Figure(label+"outage", first-last, "s")
	r.Figure(label+"failed requests", float64(failed), "")
	r.Figure(label+"requests", float64(len(lines)), "")
	if d := DoubleHolders(r.C.LAN, probe.mark, vipAddr); len(d) > 0 {
		r.Errorf("%sboth directors answered for %s at once: %s", label, vip, strings.Join(d, "; "))
	}
	return nil
}

// garpLimit bounds the wait for a new VIP holder's gratuitous ARP.
const garpLimit = time.Minute

// haDaemon is the unit of spec's HA daemon on the directors: heartbeat, or
// keepalived (also the bgp backend's checker).
func haDaemon(spec *cluster.Spec) string {
	if spec.HA.Backend == cluster.BackendHeartbeat {
		return "heartbeat"
	}
	return "keepalived"
}

// haState is a director's HA daemon status and last log lines, for the
// failure message of a check about where the VIP went.
func (c *Cluster) haState(ctx context.Context, spec *cluster.Spec, host string) string {
	unit := haDaemon(spec)
	cmd := "systemctl --no-pager status " + unit + " | head -4; journalctl --no-pager -b -u " + unit + " | tail -25"
	if spec.HA.Backend == cluster.BackendBGP {
		cmd += "; birdc show protocols; journalctl --no-pager -b -u bird | tail -10"
	}
	out, _ := c.Exec(ctx, host, cmd)
	return host + ":\n\t" + strings.ReplaceAll(strings.TrimSpace(out), "\n", "\n\t")
}

// checkerLog is the health checker's log on a director this boot, with
// precise times: ldirectord's (heartbeat) or keepalived's.
func (c *Cluster) checkerLog(ctx context.Context, spec *cluster.Spec, host string) string {
	what := "-t ldirectord"
	if spec.HA.Backend == cluster.BackendKeepalived {
		what = "-u keepalived"
	}
	out, err := c.Exec(ctx, host, "date -u '+now %H:%M:%S.%N'; journalctl --no-pager -b -o short-precise "+what+" | tail -150")
	if err != nil {
		out += "\n" + err.Error()
	}
	return host + "'s checker log:\n\t" + strings.ReplaceAll(strings.TrimSpace(out), "\n", "\n\t")
}

// waitRejoined waits until a director that came back has joined its peer
// again (heartbeat reports the peer active; keepalived runs and has seen
// a few adverts), so that where the VIP is then is where it stays.
func (c *Cluster) waitRejoined(ctx context.Context, spec *cluster.Spec, host string) error {
	peer := otherDirector(spec, host)
	var err error
	if _, ok := poll(ctx, 3*time.Minute, time.Second, func(ctx context.Context) bool {
		if spec.HA.Backend == cluster.BackendHeartbeat {
			var out string
			out, err = c.Exec(ctx, host, "cl_status nodestatus "+peer)
			if err == nil && strings.TrimSpace(out) != "active" {
				err = fmt.Errorf("peer %s is %q", peer, strings.TrimSpace(out))
			}
		} else {
			_, err = c.Exec(ctx, host, "systemctl is-active -q keepalived")
		}
		return err == nil
	}); !ok {
		return fmt.Errorf("%s did not rejoin %s: %v", host, peer, err)
	}
	// A few more heartbeats or adverts: a takeover would start now.
	time.Sleep(10 * time.Second)
	return nil
}

func runHeartbeatLinks(ctx context.Context, r *Run) error {
	s := r.Spec
	if s.HA.Backend != cluster.BackendHeartbeat || r.C.HB == nil || r.C.Cable == nil {
		r.Logf("needs heartbeat over both an Ethernet link and a serial cable; this spec has not: nothing to check")
		return nil
	}
	vip := s.Services[0].VIP
	primary, backup := primaryAndBackup(s)
	if err := r.C.holdOn(ctx, s, primary); err != nil {
		return err
	}
	deadtime := time.Duration(s.HA.Deadtime)
	iface := s.Host(primary).Interfaces.Heartbeat
	serial := ""
	for _, m := range s.HA.Media {
		if m.Type == cluster.MediumSerial {
			serial = m.Device
		}
	}
	// heartbeat's own view of each link to the peer, or the checks below
	// would prove nothing. Polled: heartbeat marks a link dead or up at its
	// next turn, which on a loaded emulated CPU is not at a fixed time;
	// limit bounds it for a link that never gets there.
	links := func(want string, limit time.Duration) error {
		var got string
		var err error
		if _, ok := poll(ctx, limit, time.Second, func(ctx context.Context) bool {
			var out string
			out, err = r.C.Exec(ctx, primary, fmt.Sprintf("cl_status hblinkstatus %s %s; cl_status hblinkstatus %s %s", backup, iface, backup, serial))
			got = strings.Join(strings.Fields(out), " ")
			return err == nil && got == want
		}); !ok {
			if err != nil {
				return err
			}
			return fmt.Errorf("heartbeat on %s sees the links to %s (%s, %s) %s, want %s (waited %s)", primary, backup, iface, serial, got, want, limit)
		}
		return nil
	}
	if err := links("up up", time.Minute); err != nil {
		return err
	}
	mark := r.C.LAN.Mark()
	r.Logf("cutting the Ethernet heartbeat link of %s for deadtime + 10 s", primary)
	if err := r.C.HB.LinkDown(primary); err != nil {
		return err
	}
	// Nothing may move for deadtime + 10 s (checked below, after it); by
	// then heartbeat should call the link dead, which it is given a minute
	// more for.
	time.Sleep(deadtime + 10*time.Second)
	if err := links("dead up", time.Minute); err != nil {
		r.Errorf("%v", err)
	}
	if h, err := r.C.Holders(ctx, vip); err != nil {
		return err
	} else if len(h) != 1 || h[0] != primary {
		r.Errorf("with only the Ethernet link cut, %s is held by %v, want %s alone", vip, h, primary)
	}
	for _, f := range r.C.LAN.Announcements(mark, netip.MustParseAddr(vip)) {
		if f.Src().String() == r.C.Nodes[backup].MAC {
			r.Errorf("with only the Ethernet link cut, %s announced %s: %s", backup, vip, f)
		}
	}

	r.Logf("cutting the serial cable too")
	r.C.Cable.Cut()
	takeover, err := r.C.waitHolds(ctx, vip, backup, deadtime+90*time.Second)
	if err != nil {
		r.Errorf("with both links cut the backup did not take over: %v", err)
	} else {
		r.Figure("takeover after both links were cut", takeover.Seconds(), "s")
	}

	if h, err := r.C.Holders(ctx, vip); err == nil {
		r.Figure("directors holding the VIP with both links cut", float64(len(h)), "")
	}

	// heartbeat v1 cannot be trusted to heal a split brain by itself: when
	// the links come back both nodes hold the resources, and it restarts one
	// or both (seen here: one then hung in its shutdown with no VIP anywhere).
	// So the links come back the way Linux-HA's documentation says a split
	// brain is mended: heartbeat stopped on the node that gives up, links
	// restored, heartbeat started again.
	r.Logf("stopping heartbeat on %s, restoring both links, starting it again", backup)
	if _, err := r.C.Exec(ctx, backup, "systemctl stop heartbeat"); err != nil {
		return err
	}
	r.C.Cable.Restore()
	if err := r.C.HB.LinkUp(primary); err != nil {
		return err
	}
	t := time.Now()
	if _, err := r.C.Exec(ctx, backup, "systemctl start heartbeat"); err != nil {
		return err
	}
	if err := r.C.waitRejoined(ctx, s, backup); err != nil {
		return err
	}
	if err := links("up up", time.Minute); err != nil {
		r.Errorf("after the links came back: %v", err)
	}
	if h, err := r.C.Holders(ctx, vip); err != nil {
		return err
	} else if len(h) != 1 || h[0] != primary {
		r.Errorf("after the links came back and %s rejoined, %s is held by %v, want %s alone", backup, vip, h, primary)
	}
	r.Figure("rejoin after the links came back", time.Since(t).Seconds(), "s")
	return nil
}

// waitHolds waits until host is among vip's holders.
func (c *Cluster) waitHolds(ctx context.Context, vip, host string, limit time.Duration) (time.Duration, error) {
	var h []string
	d, ok := poll(ctx, limit, 500*time.Millisecond, func(ctx context.Context) bool {
		var err error
		h, err = c.Holders(ctx, vip)
		return err == nil && slices.Contains(h, host)
	})
	if !ok {
		return 0, fmt.Errorf("%s did not take %s within %s (holders %v)", host, vip, limit, h)
	}
	return d, nil
}

func runConnSync(ctx context.Context, r *Run) error {
	sv := r.Spec.Service("echo")
	primary, backup := primaryAndBackup(r.Spec)
	if backup == "" {
		r.Logf("one director: nothing to fail over to")
		return nil
	}
	// failover's second half leaves the VIPs on the backup (auto_failback
	// off): heartbeat's hb_takeover brings them to the primary.
	if err := r.C.holdOn(ctx, r.Spec, primary); err != nil {
		return err
	}
	// The echo server replaces the banner service StartServices put there.
	for _, d := range virtualOf(r.Spec, sv).Dests {
		rs := r.Spec.Host(d.Host)
		if _, err := r.C.Exec(ctx, rs.Name, fmt.Sprintf("%s stop %s %d; %s start %s %d", guestTestSvc, kindTCP, echoPort, guestTestSvc, kindEcho, echoPort)); err != nil {
			return err
		}
	}
	// One connection for the whole scenario: a line a second, timestamped
	// with the client's uptime, and whatever comes back.
	feed := `i=0; while :; do read -r t _ </proc/uptime; echo "$i $t"; i=$((i+1)); sleep 1; done`
	for _, cmd := range []string{
		fmt.Sprintf(`printf '%%s\n' '%s' >/tmp/feed.sh`, feed),
		fmt.Sprintf(`sh /tmp/feed.sh | nc %s %d >/tmp/echo.out 2>&1 & echo $! >/tmp/echo.pid`, sv.VIP, echoPort),
	} {
		if _, err := r.C.ClientRun(ctx, cmd); err != nil {
			return err
		}
	}
	time.Sleep(5 * time.Second)
	// The backup's IPVS must know the connection before the master dies.
	// The sync daemons are kernel threads on two loaded emulated CPUs: the
	// bound is for a backup that never learns it, not a race.
	vipPort := fmt.Sprintf("%s:%d", sv.VIP, echoPort)
	if _, ok := poll(ctx, syncLimit, time.Second, func(ctx context.Context) bool {
		out, err := r.C.Exec(ctx, backup, "ipvsadm -Lnc")
		return err == nil && strings.Contains(out, vipPort) && strings.Contains(out, "ESTABLISHED")
	}); !ok {
		r.Errorf("the backup %s did not learn the connection to %s from the sync daemon within %s", backup, vipPort, syncLimit)
	}
	probeNow := func() (float64, error) {
		out, err := r.C.ClientRun(ctx, "cut -d' ' -f1 /proc/uptime")
		if err != nil {
			return 0, err
		}
		return strconv.ParseFloat(strings.TrimSpace(lastLines(out, 1)), 64)
	}
	t0, err := probeNow()
	if err != nil {
		return err
	}
	r.Logf("powering off the master %s with a connection open", primary)
	if err := r.C.PowerOff(ctx, primary); err != nil {
		return err
	}
	if _, err := r.C.WaitHolder(ctx, sv.VIP, backup, takeoverLimit(r.Spec)); err != nil {
		return err
	}
	t1, err := probeNow()
	if err != nil {
		return err
	}
	// TCP retransmits with a growing timeout (doubling from 200 ms, so the
	// one after an outage of a few seconds comes 6 to 13 s later, and
	// later still if the takeover was slow): wait until a line sent after
	// the takeover has come back through the new director, for as long as
	// several retransmissions take.
	lastBefore, firstAfter := -1.0, -1.0
	var echoes []stamped
	poll(ctx, syncLimit, time.Second, func(ctx context.Context) bool {
		out, err := r.C.ClientRun(ctx, "cat /tmp/echo.out")
		if err != nil {
			return false
		}
		lastBefore, firstAfter = -1, -1
		echoes = stampedLines(out, 1)
		for _, e := range echoes {
			if e.t <= t0 {
				lastBefore = e.t
			}
			if e.t >= t1 && firstAfter < 0 {
				firstAfter = e.t
			}
		}
		return firstAfter >= 0
	})
	if _, err := r.C.ClientRun(ctx, "kill $(cat /tmp/echo.pid) 2>/dev/null; true"); err != nil {
		return err
	}
	r.Figure("lines echoed", float64(len(echoes)), "")
	if lastBefore < 0 || firstAfter < 0 {
		r.Errorf("the connection did not survive the failover: last echo sent at %.1f, power-off at %.1f, takeover at %.1f, none sent after it came back", lastBefore, t0, t1)
		return nil
	}
	r.Figure("connection silent for", firstAfter-lastBefore, "s")
	return nil
}
