package vmtests

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/ipvs"
)

// The scenario of several active directors (ha.backend bgp): three
// directors announce the VIP over BGP (BIRD) to a router VM running FRR,
// which spreads the client's connections over them (ECMP); IPVS's mh
// scheduler picks the real server.
var ecmpScenario = &Scenario{
	Name: "ecmp",
	Doc: "three active directors (ha.backend bgp, BIRD) announce the VIP to an FRR router VM: the client's connections spread over every director (IPVS stats) " +
		"and over the real servers (mh with mh-port), all complete; a director whose checks all fail withdraws its route while the others serve; " +
		"a director powered off is withdrawn within the BGP hold time, and long-lived connections through the others keep echoing",
	Spec: ecmpSpec,
	Run:  runECMP,
}

// ecmpHoldTime is the scenario's BGP hold time (ha.bgp.holdTime), in
// seconds: the default, which the power-off's withdrawal is held to.
const ecmpHoldTime = cluster.DefaultHoldTime

// ecmpSpec turns the seed into three bgp directors in front of its two real
// servers: the VIP off the directors' subnet, the seed's gateway the
// directors' one BGP peer (the router VM), directors of different ASes
// (the router needs multipath-relax), mh with mh-port and mh-fallback as
// validation recommends, and the echo service for long-lived connections.
func ecmpSpec(s *cluster.Spec) error {
	if err := withEcho(s); err != nil {
		return err
	}
	for i := range s.Services {
		sv := &s.Services[i]
		sv.VIP = ecmpVIP
		sv.Scheduler, sv.SchedulerFlags = "mh", []string{"mh-port", "mh-fallback"}
		sv.Forwarding = cluster.ForwardDR
		// keepalived's HTTP_GET checks the status code only.
		sv.Check.Receive = ""
	}
	// The router VM boots the directors' kernel and spreads the flows:
	// multipath routes.
	s.Kernel.Director.Options = append(slices.Clone(s.Kernel.Director.Options), "CONFIG_IP_ROUTE_MULTIPATH=y")
	var directors, others []cluster.Host
	for _, h := range s.Hosts {
		if h.Role == cluster.RoleDirector {
			h.Interfaces.Heartbeat, h.Interfaces.HeartbeatAddress = "", ""
			directors = append(directors, h)
		} else {
			others = append(others, h)
		}
	}
	if len(directors) < 2 {
		return fmt.Errorf("ecmp: the spec has %d directors, want 2", len(directors))
	}
	third := directors[1]
	third.Name, third.Address = "linuxha3", "192.168.7.8/24"
	directors = append(directors[:2], third)
	directors[1].BGP = &cluster.HostBGP{AS: 65012}
	directors[2].BGP = &cluster.HostBGP{AS: 65013}
	s.Hosts = append(directors, others...)
	gw := netip.MustParseAddr(directors[0].Gateway)
	s.HA.Backend = cluster.BackendBGP
	s.HA.Media = nil // heartbeat's; the directors have no heartbeat link
	s.HA.BGP = cluster.BGP{AS: 65011, HoldTime: ecmpHoldTime, Peers: []cluster.BGPPeer{{Address: gw.String(), AS: 65000}}}
	return nil
}

// ecmpVIP is the scenario's VIP: off the directors' subnet, reached
// through their host routes.
const ecmpVIP = "10.10.10.10"

func runECMP(ctx context.Context, r *Run) error {
	if err := ecmpSpread(ctx, r); err != nil {
		return err
	}
	if err := ecmpChecksFail(ctx, r); err != nil {
		return err
	}
	return ecmpPowerOff(ctx, r)
}

// ecmpRequests is how many requests the spread check sends, from each of
// ecmpSources source addresses in turn.
const (
	ecmpRequests = 60
	ecmpSources  = 4
)

// ecmpSpread sends requests from several source addresses (each request
// from its own port) and finds each connection in the directors' tables:
// every one went through exactly one director, every director took some,
// each director sent it to the real server that answered it, and every
// request was answered. The directors' IPVS stats count the same
// connections.
func ecmpSpread(ctx context.Context, r *Run) error {
	sv := r.Spec.Service("http")
	vs := virtualOf(r.Spec, sv)
	directors := r.C.runningDirectors(r.Spec)
	before, err := r.C.allStats(ctx, directors, r.Spec, sv)
	if err != nil {
		return err
	}
	total := Tally{By: map[string]int{}}
	via := map[string]int{}   // director: the client's connections it took
	viaRS := map[string]int{} // real server: the connections the directors sent it
	for _, src := range ClientAddrs[:ecmpSources] {
		t, err := r.C.Requests(ctx, sv, ecmpRequests/ecmpSources, src)
		if err != nil {
			return err
		}
		total.N += t.N
		total.Failed += t.Failed
		total.Seq = append(total.Seq, t.Seq...)
		for k, v := range t.By {
			total.By[k] += v
		}
		// The entries stay in the tables for minutes after the
		// connection closed (FIN_WAIT, TIME_WAIT).
		conns, err := r.C.connsFrom(ctx, directors, vs, src)
		if err != nil {
			return err
		}
		ports := map[uint16]string{}
		for _, d := range directors {
			for _, e := range conns[d] {
				if other, ok := ports[e.Client.Port()]; ok {
					r.Errorf("the connection from %s is in the tables of %s and %s", e.Client, other, d)
				}
				ports[e.Client.Port()] = d
				via[d]++
				viaRS[hostAt(vs, e.Dest)]++
			}
		}
		if len(ports) != t.N {
			r.Errorf("the directors' tables hold %d connections from %s, which sent %d requests", len(ports), src, t.N)
		}
	}
	r.Logf("%d requests from %d addresses: %s; by director %v", total.N, ecmpSources, total, via)
	if total.Failed > 0 {
		r.Errorf("%d of %d requests through the router failed: %s", total.Failed, total.N, total.Sequence())
	}
	for _, d := range directors {
		r.Figure("connections via "+d, float64(via[d]), "")
		if via[d] == 0 {
			r.Errorf("no connection of %d went through %s: the router does not spread the flows over every director\n%s", total.N, d, r.C.routerState(ctx, r.Spec))
		}
	}
	for _, dst := range vs.Dests {
		r.Figure("requests answered by "+dst.Host, float64(total.By[dst.Host]), "")
		if viaRS[dst.Host] != total.By[dst.Host] {
			r.Errorf("the directors sent %s %d connections, and it answered %d requests", dst.Host, viaRS[dst.Host], total.By[dst.Host])
		}
	}
	if msg := expectedSplit(r.Spec, sv, total); msg != "" {
		r.Errorf("%s: %s", sv.Name, msg)
	}

	// IPVS's counters reach what ipvsadm shows through its estimator,
	// every 2 s: wait for them to count every connection.
	var after map[string]ipvsStats
	stats := map[string]int{}
	lag, ok := poll(ctx, statsLimit, time.Second, func(ctx context.Context) bool {
		if after, err = r.C.allStats(ctx, directors, r.Spec, sv); err != nil {
			return false
		}
		sum := 0
		for _, d := range directors {
			stats[d] = after[d].Conns - before[d].Conns
			sum += stats[d]
		}
		return sum >= total.N
	})
	if !ok {
		r.Errorf("within %s the directors' IPVS stats counted %v new connections, for %d requests", statsLimit, stats, total.N)
		return nil
	}
	r.Figure("IPVS stats caught up after the last request", lag.Seconds(), "s")
	for _, d := range directors {
		r.Figure("connections via "+d+" (IPVS stats)", float64(stats[d]), "")
		if stats[d] != via[d] {
			r.Errorf("%s's IPVS stats count %d new connections, its table %d", d, stats[d], via[d])
		}
	}
	return nil
}

// statsLimit bounds the wait for the directors' IPVS stats to count the
// connections their tables hold: the estimator's next turns, on loaded
// emulated CPUs.
const statsLimit = time.Minute

// ecmpChecksFail makes every check of the first director fail (its packets
// to the real servers dropped, on that director alone): it withdraws its
// route, the others serve every request, and once the checks pass again it
// announces the route again.
func ecmpChecksFail(ctx context.Context, r *Run) error {
	sv := r.Spec.Service("http")
	directors := r.C.runningDirectors(r.Spec)
	victim, others := directors[0], directors[1:]
	block := "nft add table ip lvsforge_ecmp && nft add chain ip lvsforge_ecmp out '{ type filter hook output priority 0; }'"
	for _, rs := range r.Spec.HostsByRole(cluster.RoleRealServer) {
		block += " && nft add rule ip lvsforge_ecmp out ip daddr " + rs.IP() + " drop"
	}
	unblock := "nft delete table ip lvsforge_ecmp"
	r.Logf("%s's checks fail from now on: its packets to the real servers are dropped", victim)
	if _, err := r.C.Exec(ctx, victim, block); err != nil {
		return err
	}
	blocked := true
	defer func() {
		if blocked {
			r.C.Exec(context.WithoutCancel(ctx), victim, unblock)
		}
	}()
	limit := announceLimit(r.Spec)
	d, err := r.C.waitAnnounced(ctx, r.Spec, others, limit)
	if err != nil {
		r.Errorf("%s's checks failed, and its route was not withdrawn: %v\n%s", victim, err, r.C.haState(ctx, r.Spec, victim))
		return nil
	}
	r.Figure(victim+"'s route withdrawn after its checks began to fail", d.Seconds(), "s")
	// From a source address of its own: the tables then hold these
	// requests' connections alone.
	src := ClientAddrs[ecmpSources]
	t, err := r.C.Requests(ctx, sv, 20, src)
	if err != nil {
		return err
	}
	r.Logf("with %s withdrawn: %s", victim, t)
	if t.Failed > 0 {
		r.Errorf("with %s withdrawn, %d of %d requests failed: %s", victim, t.Failed, t.N, t.Sequence())
	}
	conns, err := r.C.connsFrom(ctx, directors, virtualOf(r.Spec, sv), src)
	if err != nil {
		return err
	}
	if n := len(conns[victim]); n > 0 {
		r.Errorf("%s withdrew its route, and still got %d of %d connections", victim, n, t.N)
	}
	for _, o := range others {
		r.Figure("connections via "+o+" with "+victim+" withdrawn", float64(len(conns[o])), "")
	}

	r.Logf("%s's checks pass again", victim)
	if _, err := r.C.Exec(ctx, victim, unblock); err != nil {
		return err
	}
	blocked = false
	if d, err = r.C.waitAnnounced(ctx, r.Spec, directors, limit); err != nil {
		r.Errorf("%s's checks pass again, and its route did not come back: %v", victim, err)
		return nil
	}
	r.Figure(victim+"'s route back after its checks passed", d.Seconds(), "s")
	return nil
}

// ecmpEchoConns is how many long-lived connections the power-off check
// keeps open.
const ecmpEchoConns = 8

// echoLagLimit is the most an echoed line of a connection through a
// surviving director may take, in seconds: a connection the power-off
// touched waits for the hold time and TCP's retransmissions instead.
const echoLagLimit = 3

// ecmpPowerOff powers a director off under the probe (a request every 100
// ms) and long-lived echo connections spread over the directors: the
// router withdraws its routes within the hold time, requests fail only
// until then, connections through the others keep echoing without a
// stall, and those through it resume on the others, on the same real
// server (mh, sloppy_tcp).
func ecmpPowerOff(ctx context.Context, r *Run) error {
	sv := r.Spec.Service("http")
	echo := r.Spec.Service("echo")
	directors := r.C.runningDirectors(r.Spec)
	// The echo server replaces the banner service StartServices put there.
	for _, d := range virtualOf(r.Spec, echo).Dests {
		if _, err := r.C.Exec(ctx, d.Host, fmt.Sprintf("%s stop %s %d; %s start %s %d", guestTestSvc, kindTCP, echoPort, guestTestSvc, kindEcho, echoPort)); err != nil {
			return err
		}
	}
	// Each line carries its sending time; each echo comes back stamped
	// with its receiving time (the client's uptime both).
	feed := `i=0; while :; do read -r t _ </proc/uptime; echo "$i $t"; i=$((i+1)); sleep 1; done`
	stamp := `while read -r i t; do read -r u _ </proc/uptime; echo "$i $t $u"; done`
	if _, err := r.C.ClientRun(ctx, fmt.Sprintf(`printf '%%s\n' '%s' >/tmp/ecmp-feed.sh; printf '%%s\n' '%s' >/tmp/ecmp-stamp.sh`, feed, stamp)); err != nil {
		return err
	}
	// A check of the echo service that came while its server changed
	// set the real server's weight to 0 on that director: wait for the
	// next one, so that no connection below finds every weight at 0.
	time.Sleep(2 * time.Second)
	if err := r.C.waitRules(ctx, r.Spec, checkLimit(r.Spec)); err != nil {
		return err
	}
	// One connection at a time, each known by the client port the
	// client's netstat shows for it: the directors' tables name that port.
	vipPort := netip.AddrPortFrom(netip.MustParseAddr(echo.VIP), uint16(echo.Port)).String()
	files := map[int]int{} // client port: the connection's output file
	// nc's end ends the feed and the stamps (the client has no pkill).
	defer r.C.ClientRun(context.WithoutCancel(ctx), "killall nc; true")
	for i := range ecmpEchoConns {
		if _, err := r.C.ClientRun(ctx, fmt.Sprintf(`(sh /tmp/ecmp-feed.sh | nc %s %d | sh /tmp/ecmp-stamp.sh >/tmp/ecmp-echo-%d.out 2>&1) &`, echo.VIP, echo.Port, i)); err != nil {
			return err
		}
		var ports []int
		if _, ok := poll(ctx, time.Minute, 500*time.Millisecond, func(ctx context.Context) bool {
			out, err := r.C.ClientRun(ctx, "netstat -tn")
			if err != nil {
				return false
			}
			ports = clientPorts(out, vipPort)
			return len(ports) == len(files)+1
		}); !ok {
			return fmt.Errorf("echo connection %d: the client has %d connections to %s, want %d", i, len(ports), vipPort, len(files)+1)
		}
		for _, p := range ports {
			if _, ok := files[p]; !ok {
				files[p] = i
			}
		}
	}
	via, err := r.C.echoDirectors(ctx, r.Spec, echo)
	if err != nil {
		return err
	}
	// The victim: the director with the most connections.
	count := map[string]int{}
	for _, d := range via {
		count[d]++
	}
	victim := directors[0]
	for _, d := range directors {
		if count[d] > count[victim] {
			victim = d
		}
	}
	var survivors []string
	for _, d := range directors {
		if d != victim {
			survivors = append(survivors, d)
		}
	}
	r.Logf("echo connections by client port: %v; powering off %s", via, victim)

	probe, err := r.C.StartProbe(ctx, sv, 2)
	if err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	// The router times the withdrawal itself, from just before the
	// power-off to its FIB's route without the victim.
	victimIP := r.Spec.Host(victim).IP()
	watch := fmt.Sprintf(`rm -f /tmp/withdrawn; nohup sh -c 'while ip -4 route show %s/32 | grep -q "via %s "; do sleep 0.1; done; date +%%s.%%N >/tmp/withdrawn' >/dev/null 2>&1 &`, ecmpVIP, victimIP)
	if _, err := r.C.Exec(ctx, RouterName, watch); err != nil {
		return err
	}
	// The probe's clock (t0), then the router's, right before the
	// power-off; skew is how much later that was.
	before := time.Now()
	t0, err := probe.Now(ctx)
	if err != nil {
		return err
	}
	out, err := r.C.Exec(ctx, RouterName, "date +%s.%N")
	if err != nil {
		return err
	}
	skew := time.Since(before).Seconds()
	if err := r.C.PowerOff(ctx, victim); err != nil {
		return err
	}
	rt0, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		return fmt.Errorf("the router's clock: %w", err)
	}
	var withdrawn float64
	if _, ok := poll(ctx, time.Duration(ecmpHoldTime)*time.Second+2*time.Minute, 500*time.Millisecond, func(ctx context.Context) bool {
		out, err := r.C.Exec(ctx, RouterName, "cat /tmp/withdrawn")
		if err != nil {
			return false
		}
		t, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		withdrawn = t - rt0
		return err == nil
	}); !ok {
		r.Errorf("the router kept its route via %s after its power-off\n%s", victim, r.C.routerState(ctx, r.Spec))
		probe.Stop(ctx)
		return nil
	}
	r.Figure(victim+"'s routes withdrawn after its power-off", withdrawn, "s")
	// The measurement adds the power-off's own time (QMP) and the
	// router's 0.1 s polling: a second's room.
	if withdrawn > float64(ecmpHoldTime)+1 {
		r.Errorf("the router withdrew %s's routes %.1f s after its power-off, more than the hold time (%d s)", victim, withdrawn, ecmpHoldTime)
	}
	if err := r.C.announced(ctx, r.Spec, survivors); err != nil {
		r.Errorf("after %s's power-off: %v\n%s", victim, err, r.C.routerState(ctx, r.Spec))
	}
	// Requests and echoes for a while through the survivors alone.
	time.Sleep(10 * time.Second)
	lines, err := probe.Stop(ctx)
	if err != nil {
		return err
	}
	last, first, _, err := Outage(lines, t0)
	if err != nil {
		return err
	}
	failed, lastFailed := 0, 0.0
	for _, l := range lines {
		if l.T > t0 && l.Server == "" {
			failed++
			lastFailed = max(lastFailed, l.T-t0)
		}
	}
	r.Figure("requests", float64(len(lines)), "")
	r.Figure("failed requests", float64(failed), "")
	r.Figure("last failed request after the power-off", lastFailed, "s")
	r.Figure("outage (longest gap between answers)", first-last, "s")
	// A request started once the route was gone goes to a survivor: on
	// the probe's clock that is at most skew+withdrawn after t0, and a
	// second's room for one under way.
	if lastFailed > skew+withdrawn+1 {
		r.Errorf("a request started %.1f s after the power-off failed, %.1f s after the router withdrew %s's routes", lastFailed, lastFailed-withdrawn, victim)
	}
	return r.checkEchoes(ctx, via, files, victim, t0, withdrawn)
}

// checkEchoes checks the echo connections after the power-off at client
// time t0, whose routes the router withdrew after withdrawn seconds: those
// through a survivor echoed every line within echoLagLimit; those through
// the victim echo again (on a survivor), at most two minutes later.
func (r *Run) checkEchoes(ctx context.Context, via map[int]string, files map[int]int, victim string, t0, withdrawn float64) error {
	ports := slices.Sorted(maps.Keys(via))
	var worst, stalled float64
	for _, port := range ports {
		var lines []echoLine
		resumed := false
		poll(ctx, 2*time.Minute, time.Second, func(ctx context.Context) bool {
			out, err := r.C.ClientRun(ctx, fmt.Sprintf("cat /tmp/ecmp-echo-%d.out", files[port]))
			if err != nil {
				return false
			}
			lines = echoLines(out)
			resumed = len(lines) > 0 && lines[len(lines)-1].sent > t0+withdrawn
			return resumed || via[port] != victim
		})
		lag := 0.0
		for _, l := range lines {
			if l.sent >= t0-1 {
				lag = max(lag, l.recv-l.sent)
			}
		}
		if via[port] == victim {
			stalled = max(stalled, lag)
			if !resumed {
				r.Errorf("the connection from port %d through %s did not echo again within two minutes of the power-off (%d lines echoed)", port, victim, len(lines))
			}
			continue
		}
		worst = max(worst, lag)
		if len(lines) == 0 || lines[len(lines)-1].sent < t0+withdrawn {
			r.Errorf("the connection from port %d through %s echoed nothing sent after the power-off", port, via[port])
		} else if lag > echoLagLimit {
			r.Errorf("the connection from port %d through %s, which stayed up, took %.1f s to echo a line after %s's power-off", port, via[port], lag, victim)
		}
	}
	r.Figure("slowest echo through the other directors", worst, "s")
	r.Figure("stall of the connections through "+victim, stalled, "s")
	return nil
}

// echoLine is one echoed line of an echo connection: when it was sent and
// when it came back, on the client's clock.
type echoLine struct{ sent, recv float64 }

// echoLines parses the "N SENT RECEIVED" lines of an echo connection's
// output; other lines (one cut mid-write) are skipped.
func echoLines(out string) []echoLine {
	var ls []echoLine
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		s, err1 := strconv.ParseFloat(f[1], 64)
		e, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		ls = append(ls, echoLine{s, e})
	}
	return ls
}

// echoDirectors finds the director each echo connection goes through, by
// its client port, in the directors' connection tables.
func (c *Cluster) echoDirectors(ctx context.Context, spec *cluster.Spec, echo *cluster.Service) (map[int]string, error) {
	vip := netip.AddrPortFrom(netip.MustParseAddr(echo.VIP), uint16(echo.Port)).String()
	via := map[int]string{}
	if _, ok := poll(ctx, time.Minute, time.Second, func(ctx context.Context) bool {
		for _, d := range c.runningDirectors(spec) {
			out, err := c.Exec(ctx, d, "ipvsadm -Lnc")
			if err != nil {
				return false
			}
			for _, e := range connEntries(out, vip) {
				if e.State == "ESTABLISHED" && e.Client.Addr() == c.plan.Client {
					via[int(e.Client.Port())] = d
				}
			}
		}
		return len(via) == ecmpEchoConns
	}); !ok {
		return via, fmt.Errorf("the directors' tables list %d of the %d echo connections to %s: %v", len(via), ecmpEchoConns, vip, via)
	}
	return via, nil
}

// clientPorts are the local ports of the client's established TCP
// connections to vipPort, in busybox `netstat -tn` output, each once:
// netstat reads /proc/net/tcp in pieces, and lists a connection twice when
// the table changed in between.
func clientPorts(out, vipPort string) []int {
	var ports []int
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 6 || f[0] != "tcp" || f[4] != vipPort || f[5] != "ESTABLISHED" {
			continue
		}
		if ap, err := netip.ParseAddrPort(f[3]); err == nil && !slices.Contains(ports, int(ap.Port())) {
			ports = append(ports, int(ap.Port()))
		}
	}
	return ports
}

// connEntry is one entry of a director's connection table: the client's
// address and port, the state, and the real server it goes to.
type connEntry struct {
	Client netip.AddrPort
	State  string
	Dest   string // address:port
}

// connEntries are the entries to vip (address:port) in `ipvsadm -Lnc`
// output.
func connEntries(out, vip string) []connEntry {
	var es []connEntry
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 6 || f[4] != vip {
			continue
		}
		if ap, err := netip.ParseAddrPort(f[3]); err == nil {
			es = append(es, connEntry{Client: ap, State: f[2], Dest: f[5]})
		}
	}
	return es
}

// connsFrom are the entries of each director's connection table for vs
// from the client address src.
func (c *Cluster) connsFrom(ctx context.Context, directors []string, vs *ipvs.Service, src netip.Addr) (map[string][]connEntry, error) {
	vip := netip.AddrPortFrom(vs.Addr, vs.Port).String()
	out := map[string][]connEntry{}
	for _, d := range directors {
		o, err := c.Exec(ctx, d, "ipvsadm -Lnc")
		if err != nil {
			return nil, err
		}
		for _, e := range connEntries(o, vip) {
			if e.Client.Addr() == src {
				out[d] = append(out[d], e)
			}
		}
	}
	return out, nil
}

// hostAt names the real server of vs at dest (address:port), or dest.
func hostAt(vs *ipvs.Service, dest string) string {
	for _, d := range vs.Dests {
		if d.AddrPort() == dest {
			return d.Host
		}
	}
	return dest
}

// ipvsStats are one virtual service's counters on a director: the
// connections it scheduled, in all and by real server's host.
type ipvsStats struct {
	Conns int
	Real  map[string]int
}

// allStats reads sv's IPVS counters on each director.
func (c *Cluster) allStats(ctx context.Context, directors []string, spec *cluster.Spec, sv *cluster.Service) (map[string]ipvsStats, error) {
	vs := virtualOf(spec, sv)
	out := map[string]ipvsStats{}
	for _, d := range directors {
		o, err := c.Exec(ctx, d, "ipvsadm -L -n --stats --exact "+vs.Rule())
		if err != nil {
			return nil, err
		}
		st, err := parseStats(o)
		if err != nil {
			return nil, fmt.Errorf("%s's IPVS stats: %w", d, err)
		}
		byHost := map[string]int{}
		for _, dst := range vs.Dests {
			byHost[dst.Host] = st.Real[dst.AddrPort()]
		}
		out[d] = ipvsStats{Conns: st.Conns, Real: byHost}
	}
	return out, nil
}

// parseStats reads `ipvsadm -L -n --stats --exact` of one virtual service:
// its connections (Conns, the first counter) and each real server's, by
// address:port.
func parseStats(out string) (ipvsStats, error) {
	st := ipvsStats{Real: map[string]int{}}
	seen := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "->":
			if f[1] == "RemoteAddress:Port" {
				continue
			}
			n, err := strconv.Atoi(f[2])
			if err != nil {
				return st, fmt.Errorf("real server line %q: %w", l, err)
			}
			st.Real[f[1]] = n
		case len(f) >= 3 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP" || f[0] == "FWM"):
			n, err := strconv.Atoi(f[2])
			if err != nil {
				return st, fmt.Errorf("virtual service line %q: %w", l, err)
			}
			if seen {
				return st, fmt.Errorf("more than one virtual service:\n%s", out)
			}
			st.Conns, seen = n, true
		}
	}
	if !seen {
		return st, fmt.Errorf("no virtual service in:\n%s", out)
	}
	return st, nil
}
