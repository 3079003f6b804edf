package vmtests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/action"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/ipvs"
)

// The scenarios of the live cluster's day 2: status, drain, and changes
// pushed while it serves. They run lvsforge's actions on the VMs exactly
// as `lvsforge status|drain|push --vm` does.
var (
	statusScenario = &Scenario{
		Name: "status",
		Doc:  "lvsforge status on the running cluster: its JSON names the VIP holder, every director's HA daemon running, the live table equal to the spec with rr's connection counts after traffic, exit OK; a virtual service added by hand with ipvsadm on the active director is drift, and the status fails",
		Run:  runStatus,
	}
	drainScenario = &Scenario{
		Name: "drain",
		Doc:  "a long-lived TCP connection to the first real server keeps working while it is drained; 200 new requests all go to the others; drain --wait returns once that connection closes; undrain restores the rr split",
		Spec: withEcho,
		Run:  runDrain,
	}
	liveChangeScenario = &Scenario{
		Name: "live-change",
		Doc:  "with a request every 100 ms through the VIP, push a change to ha.cf (a timing) and to the checker's configuration (a check interval), then one that restarts the real servers' set-up (a second VIP on their lo): 0 failed requests; heartbeat reloads keeping its resources (push restarts it for neither) and no VIP moves",
		Run:  runLiveChange,
	}
	liveChangeKeepalivedScenario = &Scenario{
		Name: "live-change-keepalived",
		Doc:  "live-change on the keepalived cluster: with a request every 100 ms through the VIP, push a check interval change, then a second VIP (a new vrrp_instance address and virtual_server) and on the real servers (each drained on keepalived's side first): keepalived reloads for both, 0 failed requests, and the VIPs stay on their director",
		Spec: keepalivedSpec,
		Run:  runLiveChange,
	}
)

// withEcho adds an echo service on port echoPort of the first VIP: a
// long-lived connection the client can keep open (it echoes every line).
func withEcho(s *cluster.Spec) error {
	s.Services = append(s.Services, cluster.Service{Name: "echo", VIP: s.Services[0].VIP, Port: echoPort, RealPort: echoPort, Protocol: "tcp",
		Scheduler: "rr", Forwarding: s.Services[0].Forwarding, Check: cluster.Check{Type: "connect"}})
	return nil
}

// env is the action environment reaching the scenario's cluster.
func (r *Run) env() (*action.Env, error) { return r.C.Env(r.Spec) }

func runStatus(ctx context.Context, r *Run) error {
	sv := checkedServices(r.Spec)[0]
	if _, err := r.C.Requests(ctx, sv, 20, netip.Addr{}); err != nil {
		return err
	}
	active, err := r.C.ActiveDirector(ctx, sv.VIP)
	if err != nil {
		return err
	}
	env, err := r.env()
	if err != nil {
		return err
	}
	start := time.Now()
	st, err := action.ReadStatus(ctx, env)
	if err != nil {
		return err
	}
	r.Figure("status", time.Since(start).Seconds(), "s")
	js, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if !st.OK() {
		r.Errorf("status of a healthy cluster found problems: %v", st.Problems)
	}
	if want := fmt.Sprintf(`{"vip":%q,"holders":[%q]}`, sv.VIP, active); !strings.Contains(string(js), want) {
		r.Errorf("status JSON does not name %s as the holder of %s (%s):\n%s", active, sv.VIP, want, js)
	}
	if st.Active != active {
		r.Errorf("status's active director is %q, want %s", st.Active, active)
	}
	for _, d := range st.Directors {
		if d.Director == nil || !d.Running {
			r.Errorf("status: director %s's %s is not running: %+v", d.Name, r.Spec.HA.Backend, d)
		}
	}
	key := virtualOf(r.Spec, sv).Key.String()
	conns := 0
	for _, s := range st.Services {
		if s.Service != key {
			continue
		}
		for _, d := range s.Dests {
			conns += d.Active + d.Inactive
			if d.Health != "up" || d.Weight != d.WantWeight {
				r.Errorf("status: %s -> %s: weight %d (spec %d), %s", key, d.Addr, d.Weight, d.WantWeight, d.Health)
			}
		}
	}
	r.Figure("connections counted", float64(conns), "")
	if conns == 0 {
		r.Errorf("status shows no connection for %s after 20 requests", key)
	}

	// A virtual service added by hand: drift.
	extra := netip.AddrPortFrom(netip.MustParseAddr(sv.VIP), 8080)
	if _, err := r.C.Exec(ctx, active, "ipvsadm -A -t "+extra.String()+" -s rr"); err != nil {
		return err
	}
	defer r.C.Exec(context.WithoutCancel(ctx), active, "ipvsadm -D -t "+extra.String())
	st, err = action.ReadStatus(ctx, env)
	if err != nil {
		return err
	}
	found := false
	for _, d := range st.Drift {
		found = found || (d.Kind == ipvs.DriftExtra && d.Service == "tcp "+extra.String())
	}
	if st.OK() || !found {
		r.Errorf("a virtual service added by hand on %s: status OK=%v, drift %v; want the extra tcp %s and a failed status", active, st.OK(), st.Drift, extra)
	}
	return nil
}

// echoConn is a long-lived connection of the client's to the echo
// service: a line a second, what comes back kept in a file.
type echoConn struct {
	r    *Run
	name string
}

func openEcho(ctx context.Context, r *Run, vip string, name string) (*echoConn, error) {
	feed := `i=0; while :; do echo "line $i"; i=$((i+1)); sleep 1; done`
	for _, cmd := range []string{
		fmt.Sprintf(`printf '%%s\n' '%s' >/tmp/feed-%s.sh`, feed, name),
		fmt.Sprintf(`sh /tmp/feed-%s.sh | nc %s %d >/tmp/echo-%s.out 2>&1 & echo $! >/tmp/echo-%s.pid`, name, vip, echoPort, name, name),
	} {
		if _, err := r.C.ClientRun(ctx, cmd); err != nil {
			return nil, err
		}
	}
	return &echoConn{r: r, name: name}, nil
}

// lines is how many lines came back so far.
func (e *echoConn) lines(ctx context.Context) (int, error) {
	out, err := e.r.C.ClientRun(ctx, "cat /tmp/echo-"+e.name+".out")
	if err != nil {
		return 0, err
	}
	return strings.Count(out, "line "), nil
}

// close ends the connection: it kills nc (the pipeline's last process,
// whose pid openEcho kept); the feed dies of SIGPIPE at its next line. The
// client's busybox has no pkill.
func (e *echoConn) close(ctx context.Context) {
	e.r.C.ClientRun(ctx, "kill $(cat /tmp/echo-"+e.name+".pid) 2>/dev/null; true")
}

// alive waits until at least n more lines than now come back.
func (e *echoConn) alive(ctx context.Context, n int) error {
	before, err := e.lines(ctx)
	if err != nil {
		return err
	}
	if _, ok := poll(ctx, time.Minute, time.Second, func(ctx context.Context) bool {
		now, err := e.lines(ctx)
		return err == nil && now >= before+n
	}); !ok {
		now, _ := e.lines(ctx)
		return fmt.Errorf("the connection %s stopped echoing: %d lines before, %d a minute later", e.name, before, now)
	}
	return nil
}

// echoServer is the real server the active director sends connection e to.
func (r *Run) echoServer(ctx context.Context, sv *cluster.Service, active string, exclude map[string]bool) (string, error) {
	vs := virtualOf(r.Spec, sv)
	var server string
	if _, ok := poll(ctx, time.Minute, time.Second, func(ctx context.Context) bool {
		out, err := r.C.Exec(ctx, active, "ipvsadm -Lnc")
		if err != nil {
			return false
		}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) == 6 && f[2] == "ESTABLISHED" && f[4] == netip.AddrPortFrom(vs.Addr, vs.Port).String() {
				for _, d := range vs.Dests {
					if f[5] == d.AddrPort() && !exclude[d.Host] {
						server = d.Host
						return true
					}
				}
			}
		}
		return false
	}); !ok {
		return "", fmt.Errorf("no established connection to %s on %s's table", vs.Key, active)
	}
	return server, nil
}

func runDrain(ctx context.Context, r *Run) error {
	echo := r.Spec.Service("echo")
	vs := virtualOf(r.Spec, echo)
	target := vs.Dests[0].Host
	// The echo server replaces the banner service StartServices put
	// there, until the end of the scenario: the final traffic check, and
	// a later scenario on this cluster, ask for the banner.
	swap := func(ctx context.Context, from, to string) error {
		for _, d := range vs.Dests {
			if _, err := r.C.Exec(ctx, d.Host, fmt.Sprintf("%s stop %s %d; %s start %s %d", guestTestSvc, from, echoPort, guestTestSvc, to, echoPort)); err != nil {
				return err
			}
		}
		return nil
	}
	restored := false
	restore := func(ctx context.Context) error {
		if restored {
			return nil
		}
		restored = true
		return swap(ctx, kindEcho, kindTCP)
	}
	defer restore(context.WithoutCancel(ctx))
	if err := swap(ctx, kindTCP, kindEcho); err != nil {
		return err
	}
	active, err := r.C.ActiveDirector(ctx, echo.VIP)
	if err != nil {
		return err
	}
	// A connection on the real server to drain: rr alternates, so one of
	// the first two connections lands there.
	var conn *echoConn
	seen := map[string]bool{}
	for i := 0; i < len(vs.Dests) && conn == nil; i++ {
		c, err := openEcho(ctx, r, echo.VIP, fmt.Sprint(i))
		if err != nil {
			return err
		}
		server, err := r.echoServer(ctx, echo, active, seen)
		if err != nil {
			return err
		}
		seen[server] = true
		if server == target {
			conn = c
		} else {
			defer c.close(context.WithoutCancel(ctx))
		}
	}
	if conn == nil {
		return fmt.Errorf("no connection landed on %s", target)
	}
	if err := conn.alive(ctx, 2); err != nil {
		return err
	}
	env, err := r.env()
	if err != nil {
		return err
	}
	env.Log = r.log
	r.Logf("drain %s", target)
	start := time.Now()
	if _, err := action.RunDrain(ctx, env, action.DrainRequest{Host: target}); err != nil {
		return err
	}
	r.Figure("drain", time.Since(start).Seconds(), "s")
	// New requests go elsewhere; the drained server's connection lives on.
	sv := checkedServices(r.Spec)[0]
	t, err := r.C.Requests(ctx, sv, 200, netip.Addr{})
	if err != nil {
		return err
	}
	r.Figure("requests to "+target+" while drained", float64(t.By[target]), "")
	if t.By[target] != 0 || t.Failed != 0 {
		r.Errorf("200 requests while %s is drained: %s; want none to it, none failed", target, t)
	}
	if err := conn.alive(ctx, 3); err != nil {
		r.Errorf("the drained server's connection: %v", err)
	}
	// drain --wait returns once the connection closes.
	type waited struct {
		d   time.Duration
		err error
	}
	done := make(chan waited, 1)
	go func() {
		start := time.Now()
		_, err := action.RunDrain(ctx, env, action.DrainRequest{Host: target, Wait: true, Timeout: 3 * time.Minute})
		done <- waited{time.Since(start), err}
	}()
	time.Sleep(5 * time.Second)
	select {
	case w := <-done:
		r.Errorf("drain --wait returned while a connection to %s was open: %v", target, w.err)
	default:
	}
	closed := time.Now()
	conn.close(ctx)
	w := <-done
	if w.err != nil {
		r.Errorf("drain --wait: %v", w.err)
	}
	r.Figure("drain --wait after the connection closed", time.Since(closed).Seconds(), "s")
	// Undrain: the split is back.
	quiesced, err := r.quiesced(ctx, active, target)
	if err != nil {
		return err
	}
	r.Logf("undrain %s", target)
	if _, err := action.RunDrain(ctx, env, action.DrainRequest{Host: target, Undrain: true}); err != nil {
		return err
	}
	if _, err := r.C.waitTable(ctx, active, sv, checkLimit(r.Spec), target+" back at its weight", func(tab map[string]int) bool {
		return tab[target] == weightOf(r.Spec, r.Spec.Host(target), sv)
	}); err != nil {
		return err
	}
	// The undrain's reload gave the server its weight once, when its check
	// passed: not for a moment before, only to quiesce it again (what
	// ldirectord's readdquiescent=no does to every server at weight 0).
	if again, err := r.quiesced(ctx, active, target); err != nil {
		return err
	} else if again != quiesced {
		r.Errorf("ldirectord on %s quiesced %s %d more times during its undrain: a reload flapped its weight", active, target, again-quiesced)
	}
	if err := restore(ctx); err != nil {
		return err
	}
	return trafficCheck(ctx, r, 200, netip.Addr{})
}

func runLiveChange(ctx context.Context, r *Run) error {
	sv := checkedServices(r.Spec)[0]
	active, err := r.C.ActiveDirector(ctx, sv.VIP)
	if err != nil {
		return err
	}
	p, err := r.C.StartProbe(ctx, sv, requestTimeout)
	if err != nil {
		return err
	}
	defer p.Stop(context.WithoutCancel(ctx))
	steps := []struct {
		name   string
		change func(*cluster.Spec) error
	}{
		{"a heartbeat timing (heartbeat) and the check interval", func(s *cluster.Spec) error {
			if s.HA.Backend == cluster.BackendHeartbeat {
				s.HA.Warntime += cluster.Duration(time.Second)
			}
			for i := range s.Services {
				s.Services[i].Check.Interval += 2
			}
			return nil
		}},
		{"a second VIP on the real servers", func(s *cluster.Spec) error {
			vip, err := freeVIP(s)
			if err != nil {
				return err
			}
			s.Services = append(s.Services, s.Services[0])
			s.Services[len(s.Services)-1].Name = "second"
			s.Services[len(s.Services)-1].VIP = vip.String()
			return nil
		}},
	}
	spec := r.Spec
	for _, step := range steps {
		next, err := deriveSpec(spec, step.change)
		if err != nil {
			return err
		}
		r.Logf("push: %s", step.name)
		start := time.Now()
		from, _ := p.Now(ctx)
		rep, err := r.C.Push(ctx, next)
		if err != nil {
			return err
		}
		// Neither change needs the HA daemon restarted: heartbeat re-reads
		// ha.cf keeping its resources, keepalived reloads for a check and
		// for a VIP. A restart moves the VIPs to the standby and back.
		restart := haDaemon(next) + " " + string(deploy.OpRestart) // the push's step name
		for _, h := range rep.Hosts {
			for _, st := range h.Steps {
				if st.Name == restart {
					r.Errorf("the push of %s restarted the HA daemon on %s (step %q): it reloads", step.name, h.Host, st.Name)
				}
			}
		}
		to, _ := p.Now(ctx)
		r.Logf("push of %s: client uptime %.2f to %.2f", step.name, from, to)
		r.Figure("push of "+step.name, time.Since(start).Seconds(), "s")
		if err := r.C.waitRules(ctx, next, checkLimit(next)); err != nil {
			return err
		}
		spec = next
	}
	// The last requests end before the probe's lines are read.
	lines, err := p.Stop(ctx)
	if err != nil {
		return err
	}
	failed := r.probeFigures("", lines)
	if failed > 0 || len(lines) == 0 {
		// What the checker did is the first suspect: its log, with the
		// guest's wall clock, next to the failed requests' client uptimes.
		r.Errorf("%d of %d requests failed while the changes were pushed\n%s", failed, len(lines), r.C.checkerLog(ctx, spec, active))
	}
	holder, err := r.C.ActiveDirector(ctx, sv.VIP)
	if err != nil {
		return err
	}
	if holder != active {
		r.Errorf("the VIP moved from %s to %s: a change of ha.cf must not move it", active, holder)
	}
	// The reload put the second VIP where the first is, and it serves.
	second := spec.Service("second")
	if holder, err = r.C.ActiveDirector(ctx, second.VIP); err != nil {
		r.Errorf("the second VIP after the push: %v", err)
	} else if holder != active {
		r.Errorf("the second VIP is on %s, the first on %s", holder, active)
	}
	t, err := r.C.Requests(ctx, second, 4, netip.Addr{})
	if err != nil {
		return err
	}
	if t.Failed > 0 {
		r.Errorf("requests to the second VIP %s: %s (%s)", second.VIP, t, t.Sequence())
	}
	// The cluster is left on the last spec: the next scenario converges
	// from it.
	r.C.Spec = spec
	return nil
}

// probeFigures records a probe's requests, failed requests (each logged
// with its client uptime), those that took over a second and the slowest,
// each figure's name after prefix; it returns the failed count.
func (r *Run) probeFigures(prefix string, lines []ProbeLine) int {
	failed, slow, slowest := 0, 0, 0.0
	for _, l := range lines {
		if l.Server == "" {
			failed++
			r.Logf("request at client uptime %.2f failed after %.2f s", l.T, l.Took)
		}
		if l.Took > 1 {
			slow++
		}
		slowest = max(slowest, l.Took)
	}
	r.Figure(prefix+"requests", float64(len(lines)), "")
	r.Figure(prefix+"failed requests", float64(failed), "")
	r.Figure(prefix+"requests that took over 1 s", float64(slow), "")
	r.Figure(prefix+"slowest request", slowest, "s")
	return failed
}

// freeVIP is an address of the first VIP's subnet that no host, VIP or the
// VM harness uses.
func freeVIP(s *cluster.Spec) (netip.Addr, error) {
	taken := map[netip.Addr]bool{netip.MustParseAddr("192.168.7.254"): true}
	for _, h := range s.Hosts {
		taken[h.Prefix().Addr()] = true
	}
	for _, v := range s.VIPs() {
		taken[netip.MustParseAddr(v)] = true
	}
	d := s.HostsByRole(cluster.RoleDirector)[0].Prefix()
	for a := netip.MustParseAddr(s.Services[0].VIP).Next(); d.Contains(a); a = a.Next() {
		if !taken[a] && !isBroadcast(d, a) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address for a second VIP in %s", d)
}

// quiesced counts the lines of ldirectord's log on director d (0 for a
// checker other than ldirectord) that set host's weight to 0.
func (r *Run) quiesced(ctx context.Context, d, host string) (int, error) {
	if r.Spec.HA.Backend != cluster.BackendHeartbeat {
		return 0, nil
	}
	out, err := r.C.Exec(ctx, d, fmt.Sprintf("journalctl --no-pager -b -t ldirectord | grep -c 'Quiescent real server: %s:' || true", r.Spec.Host(host).IP()))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(lastLines(out, 1)))
}
